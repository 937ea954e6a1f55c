#!/usr/bin/env bash
# Makes the Debian base images the Dockerfiles start from, locally, for machines that cannot
# pull from a registry: debootstrap a bookworm root from Debian's mirror and `podman import` it.
#   deploy/docker/base-images.sh            -> localhost/debian:12 and localhost/debian:12-slim
# "debian:12-slim" is the same minbase root with dpkg told to skip documentation, man pages and
# locales (as Docker's slim images do). Skips an image that already exists.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), CONTAINERS_CONF.
set -euo pipefail
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/podman/containers.conf}"
log() { printf '[base-images] %s\n' "$*" >&2; }

have() { podman image exists "$1"; }

make_root() {  # DIR SLIM
  local dir="$1" slim="$2"
  if [ "$slim" = 1 ]; then
    mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
    cat > "$dir/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  fi
  debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >&2
  # The same sources as Debian's images: the release, its updates and security.
  rm -f "$dir/etc/apt/sources.list"
  cat > "$dir/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log
  if [ "$slim" = 1 ]; then rm -rf "$dir"/usr/share/doc/*/[!c]* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*; fi
}

for spec in "debian:12 0" "debian:12-slim 1"; do
  read -r name slim <<<"$spec"
  if have "localhost/$name"; then log "localhost/$name exists"; continue; fi
  dir="$(mktemp -d /var/tmp/smolserve-rootfs.XXXXXX)"
  log "debootstrap bookworm (minbase$([ "$slim" = 1 ] && echo ', slim')) into $dir"
  make_root "$dir" "$slim"
  tar -C "$dir" -c . | podman import --change 'CMD ["bash"]' - "localhost/$name" >/dev/null
  rm -rf "$dir"
  log "localhost/$name: $(podman image inspect --format '{{.Size}}' "localhost/$name") bytes"
done
