#!/usr/bin/env bash
# Installs the clients others wrote that the integration tests drive against the front (called
# by `./smolserve setup`; idempotent; downloads nothing when the cache is complete):
#   $TOOLS/openai-node/node_modules/openai   the `openai` npm package, pinned by
#                                            tests/integration/node/package-lock.json
# where TOOLS=${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/tools}.
# curl and openssl come from Debian (PACKAGES in ./smolserve).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/tools}"
SRC="$ROOT/tests/integration/node"
DIR="$TOOLS/openai-node"
log() { printf '[smolserve] %s\n' "$*" >&2; }

want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ -d "$DIR/node_modules/openai" ] && [ "$(cat "$DIR/.stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  log "installing nodejs + npm (Debian) for the HTTP API tests"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
log "installing the openai npm package into $DIR"
mkdir -p "$DIR"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --silent --no-audit --no-fund --ignore-scripts --omit=dev >/dev/null)
echo "$want" > "$DIR/.stamp"
