#!/usr/bin/env bash
# Prints the Debian packages that own the shared libraries the given binaries load
# (ldd, so the full transitive closure), one per line, sorted. Used by the Dockerfiles'
# build stage so that the slim runtime stage installs exactly the runtime .so packages.
#   deploy/docker/runtime-packages.sh BINARY... > runtime-packages.txt
# Names only, no versions: the build stage and the runtime stage install from the same
# archive minutes apart, and pinning the build machine's versions breaks on packages that
# came with the base image (often older than the archive's current version).
# Fails when a library is not found or belongs to no package (for example a library from
# a Bazel output folder), so that the runtime image can't silently miss something.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
libs=()
for b in "$@"; do
  if ldd "$b" | grep -q 'not found'; then
    ldd "$b" | grep 'not found' >&2
    echo "runtime-packages: unresolved libraries in $b" >&2
    exit 1
  fi
  while read -r l; do libs+=("$l"); done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
# Candidate paths per library: as given, resolved (alternatives, soname links), and with
# /lib <-> /usr/lib swapped (merged-/usr systems register either).
candidates() {
  local p="$1" r; r="$(readlink -f "$p")"
  printf '%s\n' "$p" "$r" "${p#/usr}" "/usr$p" "${r#/usr}" "/usr$r"
}
declare -A owner=()
# One dpkg-query call for all paths (one call per path takes minutes).
while IFS= read -r line; do
  pkgs="${line%%: /*}"; path="/${line#*: /}"
  owner["$path"]="$pkgs"
done < <(for l in "${libs[@]}"; do candidates "$l"; done | sort -u | xargs dpkg-query -S 2>/dev/null || true)
missing=0
out=()
for l in "${libs[@]}"; do
  found=""
  while read -r c; do
    if [ -n "${owner[$c]:-}" ]; then found="${owner[$c]}"; break; fi
  done < <(candidates "$l")
  if [ -z "$found" ]; then
    echo "runtime-packages: no Debian package owns $l" >&2; missing=1; continue
  fi
  out+=("$found")
done
printf '%s\n' "${out[@]}" | sed 's/, /\n/g' | sed 's/:amd64$//; s/:arm64$//' | sort -u
exit "$missing"
