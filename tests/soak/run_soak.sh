#!/usr/bin/env bash
# Soak: the three stages as processes on loopback under a long closed-loop mixed load, their
# memory and file descriptors sampled from /proc and their queues read at the end.
#   tests/soak/run_soak.sh [--model DIR|tiny|256m] [--duration S] [--concurrency N]
#                          [--mix text=2,image=1,images2=1,video=1] [--new-tokens T] [--out F.jsonl]
# Prints the bench point (JSON) with "soak": per stage RSS at start/after warm-up/middle/end,
# the RSS drift after warm-up, open fds, and num_requests_running/waiting after the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MODEL=tiny DURATION=600 CONCURRENCY=64 MIX="text=2,image=1,images2=1,video=1" NEW_TOKENS=16 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --mix) MIX="$2"; shift 2 ;;
    --new-tokens) NEW_TOKENS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
BAZEL="$(command -v bazel || echo bazel-4)"
"$BAZEL" build //services/preprocess:preprocess_server //services/vision:vision_server \
  //services/decoder:decoder_server //tools/smolvlm:smolvlm >&2
BIN="$("$BAZEL" info bazel-bin 2>/dev/null)"
case "$MODEL" in
  tiny) MODEL="$ROOT/tests/golden/models/tiny-smolvlm2-256m-geometry" ;;
  256m) MODEL="${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/models/smolvlm2-256m-random-seed0"
        [ -f "$MODEL/model.safetensors" ] || "$BIN/tools/smolvlm/smolvlm" make-model --preset 256m --seed 0 --out "$MODEL" >&2 ;;
esac
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
RUN="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() {  # name binary args...
  local name="$1" bin="$2"; shift 2
  "$bin" --host=127.0.0.1 --port=0 --port_file="$RUN/$name.port" --metrics_port=0 --model="$MODEL" "$@" 2>"$RUN/$name.log" &
  PIDS+=($!)
  eval "PID_$name=$!"
  for _ in $(seq 600); do [ -s "$RUN/$name.port" ] && break; sleep 0.2; done
  for _ in $(seq 600); do grep -q '"event":"serving"' "$RUN/$name.log" && return 0; sleep 0.2; done
  echo "$name did not start" >&2; cat "$RUN/$name.log" >&2; exit 1
}
start vision "$BIN/services/vision/vision_server" --threads=1
start decoder "$BIN/services/decoder/decoder_server" --threads=1
start front "$BIN/services/preprocess/preprocess_server" --http_port=-1 \
  --vision_target="127.0.0.1:$(cat "$RUN/vision.port")" --decoder_target="127.0.0.1:$(cat "$RUN/decoder.port")"
metrics() { echo "127.0.0.1:$(cat "$RUN/$1.port.metrics")"; }
WATCH="front=$PID_front@$(metrics front),vision=$PID_vision@$(metrics vision),decoder=$PID_decoder@$(metrics decoder)"
ARGS=(bench --target "127.0.0.1:$(cat "$RUN/front.port")" --concurrency "$CONCURRENCY" --duration "$DURATION"
      --mix "$MIX" --new-tokens "$NEW_TOKENS" --unique-media --image tests/golden/media/fruits.jpg,tests/golden/media/baboon.jpg
      --video tests/golden/media/Megamind.avi --watch "$WATCH" --sample-interval 5 --deadline-s 120 --label soak)
[ -n "$OUT" ] && ARGS+=(--out "$OUT")
"$BIN/tools/smolvlm/smolvlm" "${ARGS[@]}"
grep -c '"status":"OK"' "$RUN/front.log" | sed 's/^/front log lines with status OK: /' >&2
