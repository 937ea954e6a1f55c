#!/usr/bin/env bash
# Builds the three stage images with podman from the Dockerfiles as they are (BuildKit-style
# cache mount for Bazel's output base, shared by the three builds) and prints each image's size
# and build time. On machines without a registry the Debian base images come from
# base-images.sh (debootstrap + podman import); elsewhere set DEBIAN_IMAGE / RUNTIME_IMAGE.
#   deploy/docker/build-images.sh [STAGE...]          (./smolserve images calls this)
# Environment: IMAGE_REPOSITORY (default localhost/smolserve: images are REPO-STAGE:TAG, as the
# chart expects), IMAGE_TAG (0.1.0), BAZEL_JOBS (2), DEBIAN_IMAGE, RUNTIME_IMAGE,
# CONTAINERS_CONF (default: podman/containers.conf next to this script).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/podman/containers.conf}"
REPO="${IMAGE_REPOSITORY:-localhost/smolserve}"
TAG="${IMAGE_TAG:-0.1.0}"
JOBS="${BAZEL_JOBS:-2}"
log() { printf '[images] %s\n' "$*" >&2; }

command -v podman >/dev/null || { log "podman is not installed (apt-get install podman runc)"; exit 2; }
stages=("$@")
((${#stages[@]})) || stages=(preprocess vision decoder)
for s in "${stages[@]}"; do
  [ -f "$HERE/Dockerfile.$s" ] || { log "unknown stage '$s'"; exit 2; }
done
if [ -z "${DEBIAN_IMAGE:-}" ]; then
  "$HERE/base-images.sh"
  DEBIAN_IMAGE=localhost/debian:12
  RUNTIME_IMAGE="${RUNTIME_IMAGE:-localhost/debian:12-slim}"
fi
RUNTIME_IMAGE="${RUNTIME_IMAGE:-debian:12-slim}"

cd "$ROOT"
summary=()
for s in "${stages[@]}"; do
  image="$REPO-$s:$TAG"
  log "building $image (base $DEBIAN_IMAGE, runtime $RUNTIME_IMAGE, BAZEL_JOBS=$JOBS)"
  start=$(date +%s)
  podman build --layers --network host \
    --ignorefile "deploy/docker/Dockerfile.$s.dockerignore" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE" \
    --build-arg "BAZEL_JOBS=$JOBS" \
    -f "deploy/docker/Dockerfile.$s" -t "$image" . >&2
  secs=$(( $(date +%s) - start ))
  bytes=$(podman image inspect --format '{{.Size}}' "$image")
  pkgs=$(podman run --rm --entrypoint /bin/sh "$image" -c 'dpkg-query -W | wc -l')
  summary+=("$(printf '%-40s %6d MB  %4d Debian packages  built in %ds' "$image" $((bytes / 1000000)) "$pkgs" "$secs")")
done
printf '%s\n' "${summary[@]}"
