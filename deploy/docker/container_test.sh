#!/usr/bin/env bash
# Runs the three stage images as the chart runs them and checks them end to end:
#  - host network, the tiny test model mounted read-only, uid 10001, read-only root filesystem
#    with a /tmp tmpfs, all capabilities dropped, no new privileges (the chart's
#    podSecurityContext / securityContext);
#  - waits until the front's /health is 200 (it checks both stages' gRPC health);
#  - a chat through the front's HTTP API (an image as a data: URI), plain and streamed;
#  - scrapes each stage's /metrics for the series that chat must have moved;
#  - SIGTERM to the front while an answer streams: the answer completes ([DONE]), the front logs
#    its shutdown and exits 0 within the grace period; then vision and decoder exit 0.
# Prints one line per check and ends with "container test: N passed, N failed".
#   deploy/docker/container_test.sh            (./smolserve container-test; images from ./smolserve images)
# Environment: IMAGE_REPOSITORY (localhost/smolserve), IMAGE_TAG (0.1.0), CONTAINER_TEST_PORT_BASE
# (51150: gRPC BASE+1..3, metrics BASE+11..13, HTTP BASE+21), CONTAINERS_CONF.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/podman/containers.conf}"
REPO="${IMAGE_REPOSITORY:-localhost/smolserve}"
TAG="${IMAGE_TAG:-0.1.0}"
BASE="${CONTAINER_TEST_PORT_BASE:-51150}"
MODEL="$ROOT/tests/golden/models/tiny-smolvlm2-256m-geometry"
PRE_PORT=$((BASE + 1)) VIS_PORT=$((BASE + 2)) DEC_PORT=$((BASE + 3))
PRE_METRICS=$((BASE + 11)) VIS_METRICS=$((BASE + 12)) DEC_METRICS=$((BASE + 13))
HTTP_PORT=$((BASE + 21))
GRACE=20
WORK="$(mktemp -d)"
passed=0 failed=0

ok() { echo "PASS $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
cleanup() {
  for s in preprocess vision decoder; do podman rm -f "smolserve-ct-$s" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for s in preprocess vision decoder; do
  podman image exists "$REPO-$s:$TAG" || { echo "missing image $REPO-$s:$TAG (./smolserve images)" >&2; exit 2; }
done
cleanup; WORK="$(mktemp -d)"
# The test model's tokenizer files are links into models/: mount a resolved copy.
cp -rL "$MODEL" "$WORK/model" && chmod -R a+rX "$WORK" && MODEL="$WORK/model"

run_stage() {  # STAGE ARGS...
  local s="$1"; shift
  podman run -d --name "smolserve-ct-$s" --network host \
    --user 10001:10001 --read-only --tmpfs /tmp:rw,size=256m \
    --cap-drop ALL --security-opt no-new-privileges \
    -v "$MODEL:/models/tiny:ro" \
    "$REPO-$s:$TAG" "$@" >/dev/null
}
common=(--model=/models/tiny --shutdown_grace_s=$GRACE)
run_stage vision "${common[@]}" --port=$VIS_PORT --metrics_port=$VIS_METRICS --threads=1 --dtype=f32
run_stage decoder "${common[@]}" --port=$DEC_PORT --metrics_port=$DEC_METRICS --threads=1 --dtype=f32
run_stage preprocess "${common[@]}" --port=$PRE_PORT --metrics_port=$PRE_METRICS --http_port=$HTTP_PORT \
  --vision_target=127.0.0.1:$VIS_PORT --decoder_target=127.0.0.1:$DEC_PORT

healthy() {
  for _ in $(seq 1 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/health")" = 200 ] && return 0
    sleep 0.5
  done
  return 1
}
check "the three containers start and the front's /health reports both stages serving" healthy
for s in preprocess vision decoder; do
  user="$(podman exec "smolserve-ct-$s" id -u 2>/dev/null)"
  check "$s runs as uid 10001 on a read-only root" \
    bash -c "[ '$user' = 10001 ] && ! podman exec smolserve-ct-$s sh -c 'touch /usr/x' 2>/dev/null"
done

model_id="$(curl -s "http://127.0.0.1:$HTTP_PORT/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
image_uri="data:image/png;base64,$(base64 -w0 "$ROOT/tests/golden/media/opencv-logo-white.png")"
body() {  # STREAM MAX_TOKENS
  python3 - "$image_uri" "$1" "$2" "$model_id" <<'PY'
import json, sys
uri, stream, max_tokens, model = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
print(json.dumps({"model": model, "max_tokens": max_tokens, "temperature": 0, "stream": stream,
                  "messages": [{"role": "user", "content": [
                      {"type": "image_url", "image_url": {"url": uri}},
                      {"type": "text", "text": "What is in this image?"}]}]}))
PY
}
chat() {
  body 0 16 > "$WORK/chat.json"
  curl -s -f -H 'Content-Type: application/json' --data-binary "@$WORK/chat.json" \
    "http://127.0.0.1:$HTTP_PORT/v1/chat/completions" > "$WORK/answer.json" ||
    { echo "    $(cat "$WORK/answer.json")"; return 1; }
  python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); c=a["choices"][0]; assert c["message"]["content"] and a["usage"]["completion_tokens"] == 16, a; print("    answer:", json.dumps(c["message"]["content"])[:120])' "$WORK/answer.json"
}
check "a chat with an image through the front's HTTP API (16 tokens)" chat

metric_positive() {  # PORT NAME
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"({|$)" && $2 > 0 {found=1} END {exit !found}'
}
check "preprocess /metrics counts the HTTP request" metric_positive $PRE_METRICS 'smolserve:http_requests_total'
check "vision /metrics counts encoded tiles" metric_positive $VIS_METRICS 'smolserve:tiles_encoded_total'
check "decoder /metrics counts generated tokens" metric_positive $DEC_METRICS 'smolserve:generation_tokens_total'

# Drain: an answer is streaming when the front gets SIGTERM.
body 1 400 > "$WORK/stream.json"
curl -s -N -H 'Content-Type: application/json' --data-binary "@$WORK/stream.json" \
  "http://127.0.0.1:$HTTP_PORT/v1/chat/completions" > "$WORK/stream.out" &
curl_pid=$!
for _ in $(seq 1 200); do grep -q '"content"' "$WORK/stream.out" 2>/dev/null && break; sleep 0.05; done
streaming_at_stop=$(grep -c '^data: \[DONE\]' "$WORK/stream.out")
start=$(date +%s.%N)
podman stop -t $((GRACE + 10)) smolserve-ct-preprocess >/dev/null
stop_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
wait "$curl_pid"
check "SIGTERM came while the answer was streaming" [ "$streaming_at_stop" = 0 ]
check "the answer streaming during SIGTERM completes ($(grep -c '"content"' "$WORK/stream.out") chunks, [DONE])" \
  grep -q '^data: \[DONE\]' "$WORK/stream.out"
code="$(podman inspect -f '{{.State.ExitCode}}' smolserve-ct-preprocess)"
check "the front logs its shutdown and exits 0 after SIGTERM (${stop_s}s, grace ${GRACE}s)" \
  bash -c "[ '$code' = 0 ] && podman logs smolserve-ct-preprocess 2>&1 | grep -q '\"event\":\"shutdown\"'"
for s in vision decoder; do
  podman stop -t $((GRACE + 10)) "smolserve-ct-$s" >/dev/null
  code="$(podman inspect -f '{{.State.ExitCode}}' "smolserve-ct-$s")"
  check "$s exits 0 after SIGTERM" [ "$code" = 0 ]
done
if ((failed)); then
  for s in preprocess vision decoder; do echo "--- $s log (last 20 lines)"; podman logs "smolserve-ct-$s" 2>&1 | tail -20; done
fi
echo "container test: $passed passed, $failed failed"
((failed == 0))
