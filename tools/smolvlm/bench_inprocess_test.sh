#!/usr/bin/env bash
# //tools/smolvlm:bench_inprocess_test: `smolvlm bench --in-process` on the tiny test model
# serves every request and reports consistent numbers (one point), and `--sweep 1,2`
# prints two points, writes them to --out and ends with a table (distinct PNGs per image
# request with --unique-media, Media.id set with --media-id).
set -uo pipefail
WS="${TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/${TEST_WORKSPACE:-smolserve}"
[ -d "$WS/tools/smolvlm" ] || WS="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$WS"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
BIN="${SMOLVLM:-$WS/tools/smolvlm/smolvlm}"
[ -x "$BIN" ] || BIN="$WS/bazel-bin/tools/smolvlm/smolvlm"
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)"
MODEL=tests/golden/models/tiny-smolvlm2-256m-geometry
fail() { echo "FAIL: $*" >&2; exit 1; }

# One point: 2 workers, 4 requests (2 text, 2 image with seed 0), 4 tokens each.
"$BIN" bench --in-process --model "$MODEL" --threads 1 --concurrency 2 --requests 4 --new-tokens 4 \
    --mix text=1,image=1 --image tests/golden/media/fruits.jpg --label one \
    > "$TMP/one.out" 2> "$TMP/one.err" || { tail -50 "$TMP/one.err" >&2; fail "bench exited $?"; }
cat "$TMP/one.out"
"$PY" - "$TMP/one.out" <<'PY' || fail "single point checks"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 1, f"want one JSON line, got {len(lines)}"
p = json.loads(lines[0])
def check(cond, what):
    if not cond:
        sys.exit(f"{what}: {json.dumps(p)}")
check(p["label"] == "one" and p["mode"] == "in-process", "label/mode")
check(p["concurrency"] == 2 and p["requests"] == 4, "concurrency/requests")
check(p["ok"] == 4, "ok == 4")
check(p["failed"] == 0 and p["first_error"] == "", "failed == 0")
check(p["output_tokens"] == 16, "output_tokens == 16 (4 x 4, ignore_eos)")
check(p["ok_by_kind"].get("image", 0) >= 1 and p["ok_by_kind"].get("text", 0) >= 1, "both kinds drawn")
for k in ("p50", "p95", "p99", "mean"):
    check(p["ttft_ms"].get(k, 0) > 0, f"ttft_ms.{k} > 0")
check(p["ttft_ms"]["p50"] <= p["ttft_ms"]["p95"] <= p["ttft_ms"]["p99"], "ttft percentiles ordered")
check(p["itl_ms"]["p50"] > 0 and p["itl_ms"]["p95"] >= p["itl_ms"]["p50"], "itl_ms")
check(p["e2e_ms"]["p50"] > 0 and p["e2e_ms"]["p95"] >= p["e2e_ms"]["p50"], "e2e_ms")
check(p["wall_s"] > 0 and p["requests_per_s"] > 0 and p["output_tokens_per_s"] > 0, "rates")
check(p["prompt_tokens"] > 0, "prompt_tokens > 0")
check(p["tiles"] > 0 and p["tiles_per_s"] > 0, "tiles > 0")
check(0 <= p["cache_hit_rate"] <= 1, "cache_hit_rate in [0, 1]")
b = p["stage_busy_ms"]
check(b["vision"] > 0 and b["prefill"] > 0 and b["decode"] > 0, "stage busy times")
check(abs(p["stage_busy_frac"]["vision"] - b["vision"] / (p["wall_s"] * 1e3)) < 0.01, "busy fraction")
PY

# A sweep: two points, both in --out, then the table.
OUT="$TMP/points.jsonl"
"$BIN" bench --in-process --model "$MODEL" --threads 1 --sweep 1,2 --requests 2 --new-tokens 2 \
    --mix image=1 --image tests/golden/media/synthetic_rgba_97x64.png --unique-media --media-id \
    --out "$OUT" --label sweep > "$TMP/sweep.out" 2> "$TMP/sweep.err" \
    || { tail -50 "$TMP/sweep.err" >&2; fail "bench --sweep exited $?"; }
cat "$TMP/sweep.out"
"$PY" - "$TMP/sweep.out" "$OUT" <<'PY' || fail "sweep checks"
import json, sys
text = open(sys.argv[1]).read().splitlines()
points = [json.loads(l) for l in text if l.startswith("{")]
assert [p["concurrency"] for p in points] == [1, 2], points
for p in points:
    assert p["ok"] == 2 and p["failed"] == 0, p
    assert p["output_tokens"] == 4 and p["ok_by_kind"] == {"image": 2} and p["tiles"] > 0, p
    assert p["cached_tiles"] == 0, ("--unique-media: no cache may hit", p)
    assert p["unique_media"] and p["media_id"] and p["label"] == "sweep", p
saved = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert saved == points, "the --out file holds the printed points"
rest = [l for l in text if not l.startswith("{")]
header = [i for i, l in enumerate(rest) if "req/s" in l and "TTFT p50" in l and "cache%" in l]
assert len(header) == 1, rest
rows = [l.split() for l in rest[header[0] + 1:] if l.strip() and l.split()[0].isdigit()]
assert [r[0] for r in rows] == ["1", "2"], rest
PY
echo PASS
