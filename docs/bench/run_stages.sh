#!/bin/bash
# usage: docs/bench/run_stages.sh LABEL BIN_ROOT OUT.jsonl text|image|hit
# BIN_ROOT: a bazel-bin with the three stage binaries (e.g. of a git worktree at an older
# commit, to measure before and after). OUT is relative to the repository root.
# Starts the three stage binaries from BIN_ROOT on loopback, runs one bench scenario, stops them.
set -u
LABEL=$1; BIN=$2; OUT=$3; SCEN=$4
M=${MODEL:-$HOME/.cache/smolserve/models/smolvlm2-256m-random-seed0}
SMOLVLM=${SMOLVLM:-$(cd "$(dirname "$0")/../.." && pwd)/bazel-bin/tools/smolvlm/smolvlm}
D=$(mktemp -d)
export OMP_WAIT_POLICY=PASSIVE
start() { # name binary args...
  local name=$1 bin=$2; shift 2
  $bin --host=127.0.0.1 --port=0 --port_file=$D/$name.port --metrics_port=0 "$@" > $D/$name.log 2>&1 &
  echo $! > $D/$name.pid
  for i in $(seq 1 600); do
    grep -q serving $D/$name.log 2>/dev/null && break
    sleep 0.2
  done
}
start vision $BIN/services/vision/vision_server --model=$M
start decoder $BIN/services/decoder/decoder_server --model=$M
start front $BIN/services/preprocess/preprocess_server --model=$M --vision_target=127.0.0.1:$(cat $D/vision.port) --decoder_target=127.0.0.1:$(cat $D/decoder.port) --workers=32 --max_queue=64
T=127.0.0.1:$(cat $D/front.port)
cd "$(dirname "$0")/../.."
case $SCEN in
  text) $SMOLVLM bench --target $T --label $LABEL --mix text=1 --new-tokens 64 --sweep 1,4,16 --warmup 1 --out $OUT ;;
  image) $SMOLVLM bench --target $T --label $LABEL --mix image=1 --image examples/media/aero1.jpg --unique-media --new-tokens 16 --sweep 1,4 --requests 4 --out $OUT ;;
  hit) $SMOLVLM bench --target $T --label $LABEL --mix image=1 --image examples/media/aero1.jpg --new-tokens 16 --concurrency 1 --requests 3 --warmup 1 --out $OUT ;;
  *) echo "unknown scenario"; exit 2 ;;
esac
rc=$?
for s in front vision decoder; do kill $(cat $D/$s.pid) 2>/dev/null; done
sleep 1
echo "stage logs: $D" >&2
exit $rc
