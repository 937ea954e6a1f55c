#!/usr/bin/env bash
# //tools/smolvlm:plot_bench_test: plot_bench.py renders the checked-in sample points into a
# real PNG (magic bytes, non-trivial size), and refuses input without points.
set -uo pipefail
WS="${TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/${TEST_WORKSPACE:-smolserve}"
[ -d "$WS/tools/smolvlm" ] || WS="$(cd "$(dirname "$0")/../.." && pwd)"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
# Debian's interpreter: python3-matplotlib is installed for it (./smolserve setup).
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)"
export PYTHONDONTWRITEBYTECODE=1 MPLCONFIGDIR="$TMP/mpl"
SCRIPT="$WS/tools/smolvlm/plot_bench.py"
SAMPLE="$WS/tools/smolvlm/testdata/bench_sample.jsonl"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$PY" -c 'import matplotlib' || fail "matplotlib missing for $PY (./smolserve setup installs python3-matplotlib)"

OUT="$TMP/plot.png"
rm -f "$OUT"
"$PY" "$SCRIPT" "$SAMPLE" "$OUT" || fail "plot_bench.py exited $?"
[ -s "$OUT" ] || fail "no PNG written"
magic="$(head -c 8 "$OUT" | od -An -tx1 | tr -d ' \n')"
[ "$magic" = "89504e470d0a1a0a" ] || fail "not a PNG (magic $magic)"
size=$(stat -c %s "$OUT")
[ "$size" -gt 10000 ] || fail "PNG suspiciously small ($size bytes)"
# The image is 1100x420 (figsize 11x4.2 at 100 dpi): width and height from the IHDR chunk.
dims="$(head -c 24 "$OUT" | tail -c 8 | od -An -tu1 | tr -s ' ' | sed 's/^ //')"
read -r w0 w1 w2 w3 h0 h1 h2 h3 <<<"$dims"
w=$(( (w0 << 24) | (w1 << 16) | (w2 << 8) | w3 )); h=$(( (h0 << 24) | (h1 << 16) | (h2 << 8) | h3 ))
[ "$w" -eq 1100 ] && [ "$h" -eq 420 ] || fail "unexpected size ${w}x${h}"

# No points: an error, and no image.
: > "$TMP/empty.jsonl"
if "$PY" "$SCRIPT" "$TMP/empty.jsonl" "$TMP/empty.png" 2>/dev/null; then fail "accepted an empty file"; fi
[ ! -e "$TMP/empty.png" ] || fail "wrote a PNG for an empty file"
# A line that is not a bench point: an error.
echo '{"concurrency": 1}' > "$TMP/bad.jsonl"
if "$PY" "$SCRIPT" "$TMP/bad.jsonl" "$TMP/bad.png" 2>/dev/null; then fail "accepted a line without the metrics"; fi
echo "PASS: $OUT ($size bytes, ${w}x${h})"
