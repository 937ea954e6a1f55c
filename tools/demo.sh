#!/usr/bin/env bash
# ./smolserve demo [--model DIR|org/name] [--max-new-tokens N]
# Builds the stages, starts them as three processes on free loopback ports, runs the
# example requests through the front with streaming, prints the answers and per-stage
# timings, then stops the stages with SIGTERM.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL=""
NEW_TOKENS=24
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --model=*) MODEL="${1#--model=}"; shift ;;
    --max-new-tokens) NEW_TOKENS="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
BAZEL="$(command -v bazel || echo bazel-4)"
BAZEL_FLAGS=()
[ "${CI:-}" = "true" ] && BAZEL_FLAGS+=(--config=ci)

say "building the stages and the CLI"
"$BAZEL" build "${BAZEL_FLAGS[@]}" //services/preprocess:preprocess_server //services/vision:vision_server \
  //services/decoder:decoder_server //tools/smolvlm:smolvlm
BIN="$("$BAZEL" info "${BAZEL_FLAGS[@]}" bazel-bin 2>/dev/null)"
CLI="$BIN/tools/smolvlm/smolvlm"

if [ -z "$MODEL" ]; then
  MODEL="${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/models/smolvlm2-256m-random-seed0"
  if [ ! -f "$MODEL/model.safetensors" ]; then
    say "creating the embedded default model (SmolVLM2-256M shapes, random weights)"
    "$CLI" make-model --preset 256m --seed 0 --out "$MODEL"
  fi
  cat <<TXT

  NOTE: the embedded default model has the real SmolVLM2-256M shapes and tokenizer but
  RANDOM weights, so its answers are meaningless words. The pipeline, the timings and the
  wire traffic are real. To use a real checkpoint:
      ./smolserve demo --model /path/to/SmolVLM2-256M-Video-Instruct
      ./smolserve demo --model HuggingFaceTB/SmolVLM2-256M-Video-Instruct   (from the local HF cache)
TXT
fi

# Three LibTorch processes share these cores: OpenMP threads that spin after their work
# would steal the CPU the next stage needs, so they sleep instead.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

RUN_DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

start_stage() {  # name binary args...
  local name="$1" bin="$2"; shift 2
  "$bin" --host=127.0.0.1 --port=0 --port_file="$RUN_DIR/$name.port" --metrics_port=0 --model="$MODEL" "$@" \
    2>"$RUN_DIR/$name.log" &
  PIDS+=($!)
}
wait_serving() {  # name
  for _ in $(seq 600); do
    if grep -q '"event":"serving"' "$RUN_DIR/$1.log" 2>/dev/null; then return 0; fi
    if ! kill -0 "${PIDS[-1]}" 2>/dev/null && ! grep -q serving "$RUN_DIR/$1.log"; then :; fi
    sleep 0.2
  done
  echo "stage $1 did not become ready:" >&2; cat "$RUN_DIR/$1.log" >&2; exit 1
}

say "starting the vision and decoder stages (loading the model)"
start_stage vision "$BIN/services/vision/vision_server"
start_stage decoder "$BIN/services/decoder/decoder_server"
wait_serving vision
wait_serving decoder
VPORT="$(cat "$RUN_DIR/vision.port")"; DPORT="$(cat "$RUN_DIR/decoder.port")"
start_stage preprocess "$BIN/services/preprocess/preprocess_server" \
  --vision_target="127.0.0.1:$VPORT" --decoder_target="127.0.0.1:$DPORT" --http_port=0
wait_serving preprocess
FRONT="127.0.0.1:$(cat "$RUN_DIR/preprocess.port")"
HTTP="http://127.0.0.1:$(cat "$RUN_DIR/preprocess.port.http")"
echo "preprocess (front) $FRONT (HTTP API $HTTP)   vision 127.0.0.1:$VPORT   decoder 127.0.0.1:$DPORT"
echo "metrics: http://127.0.0.1:$(cat "$RUN_DIR/preprocess.port.metrics")/metrics" \
     "http://127.0.0.1:$(cat "$RUN_DIR/vision.port.metrics")/metrics" \
     "http://127.0.0.1:$(cat "$RUN_DIR/decoder.port.metrics")/metrics"

for example in image video batch; do
  say "example: $example ($(basename examples/$example.json))"
  "$CLI" chat --target "$FRONT" --request "examples/$example.json" --max-new-tokens "$NEW_TOKENS" --stream
done

say "the OpenAI-compatible HTTP API, with curl"
IMAGE_B64="$(base64 -w0 examples/media/fruits.jpg)"
cat <<TXT
curl -sS $HTTP/v1/chat/completions -H 'Content-Type: application/json' -d '{
  "model": "$MODEL",
  "max_tokens": $NEW_TOKENS,
  "messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,\$IMAGE_B64"}},
    {"type": "text", "text": "Can you describe this image?"}]}]}'
TXT
BODY="$RUN_DIR/http_request.json"
printf '{"model": "%s", "max_tokens": %s, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,%s"}}, {"type": "text", "text": "Can you describe this image?"}]}]}' \
  "$MODEL" "$NEW_TOKENS" "$IMAGE_B64" > "$BODY"
echo "answer:"
curl -sS --noproxy '*' "$HTTP/v1/chat/completions" -H 'Content-Type: application/json' --data-binary "@$BODY" \
  | python3 -m json.tool
echo "(add \"stream\": true for Server-Sent Events; any OpenAI client works with base_url $HTTP/v1)"

say "per-request log lines of the stages"
grep -h '"rpc"\|"transport"' "$RUN_DIR/preprocess.log" "$RUN_DIR/vision.log" "$RUN_DIR/decoder.log" || true

say "stopping the stages (SIGTERM)"
cleanup
trap - EXIT
echo "done."
