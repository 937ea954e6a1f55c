#!/usr/bin/env bash
# Builds every fuzz target with --config=fuzz (clang-14, libFuzzer + ASan + UBSan) in its own
# Bazel output base and runs each for SECONDS (default 60) on a writable copy of its corpus,
# with its dictionary. Ends with exactly one line "fuzz: N targets, N execs, N crashes" and
# exits non-zero when a target crashed, leaked, timed out or ran out of memory.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (./smolserve fuzz calls this)
#
# Environment: SMOLSERVE_SANITIZER_OUTPUT_BASE (default ~/.cache/smolserve/bazel-sanitizers),
# SMOLSERVE_FUZZ_OUT (corpora, crash artifacts and logs; default ~/.cache/smolserve/fuzz: the
# corpora grow from run to run), SMOLSERVE_FUZZ_JOBS (targets run at once; default: the CPUs,
# at most 2).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${1:-60}"
shift || true
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
  echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi

# target | dictionary | max_len | per-input timeout (s) | extra seed files (globs)
TARGETS=(
  "image_decode_fuzzer|image.dict|65536|10|tests/golden/media/opencv-logo-white.png tests/golden/media/synthetic_rgba_97x64.png"
  "video_decode_fuzzer|video.dict|65536|30|services/preprocess/core/video/testdata/*"
  "request_fuzzer|json.dict|16384|10|examples/*.json"
  "chat_template_fuzzer|chat_template.dict|4096|10|"
  "tokenizer_fuzzer|tokenizer.dict|4096|10|"
  "safetensors_fuzzer|safetensors.dict|8192|10|"
  "tensor_proto_fuzzer||8192|10|"
  "media_source_fuzzer|media_source.dict|4096|10|"
  "openai_api_fuzzer|openai.dict|16384|10|"
  "front_chat_fuzzer||8192|10|"
  "vision_encode_fuzzer||65536|60|"
  "decoder_generate_fuzzer||16384|60|"
)

if (($#)); then
  selected=()
  for want in "$@"; do
    found=""
    for t in "${TARGETS[@]}"; do [ "${t%%|*}" = "$want" ] && selected+=("$t") && found=1; done
    [ -n "$found" ] || { echo "unknown fuzz target '$want'" >&2; exit 2; }
  done
  TARGETS=("${selected[@]}")
fi

OUTPUT_BASE="${SMOLSERVE_SANITIZER_OUTPUT_BASE:-$HOME/.cache/smolserve/bazel-sanitizers}"
OUT="${SMOLSERVE_FUZZ_OUT:-$HOME/.cache/smolserve/fuzz}"
JOBS="${SMOLSERVE_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
((JOBS > 2)) && JOBS=2
BAZEL="$(command -v bazel || command -v bazel-4)"

log() { printf '[fuzz] %s\n' "$*" >&2; }

labels=()
for t in "${TARGETS[@]}"; do labels+=("//tests/fuzz:${t%%|*}"); done
log "building ${#labels[@]} targets (--config=fuzz, output base $OUTPUT_BASE)"
if ! "$BAZEL" --output_base="$OUTPUT_BASE" build --config=fuzz --symlink_prefix=/ "${labels[@]}" >&2; then
  echo "fuzz: ${#TARGETS[@]} targets, 0 execs, 0 crashes (build failed)"
  exit 1
fi
BIN="$("$BAZEL" --output_base="$OUTPUT_BASE" info --config=fuzz bazel-bin 2>/dev/null)"

# LibTorch, OpenCV, FFmpeg and the other system libraries are not instrumented; what their
# startup trips is suppressed for their code only (tests/sanitizers/*.supp, with reasons).
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1:strict_string_checks=1:handle_abort=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/sanitizers/ubsan.supp"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export SMOLSERVE_FUZZ_ROOT="$ROOT"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

run_target() {
  local spec="$1" name dict max_len timeout seeds
  IFS='|' read -r name dict max_len timeout seeds <<<"$spec"
  local corpus="$OUT/corpus/$name" artifacts="$OUT/artifacts/$name" logf="$OUT/logs/$name.log"
  mkdir -p "$corpus" "$artifacts" "$OUT/logs"
  cp -n "$ROOT/tests/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
  local f
  for f in $seeds; do [ -f "$f" ] && cp -n "$f" "$corpus/" 2>/dev/null; done
  # Failures leave crash-, leak-, timeout- or oom- artifacts; slow-unit- files (inputs slower
  # than -report_slow_units, e.g. on a busy machine) are reported but are not failures.
  failures() { find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
  local before; before="$(failures)"
  local args=("-max_total_time=$SECONDS_PER_TARGET" "-timeout=$timeout" "-rss_limit_mb=3072"
              "-max_len=$max_len" "-print_final_stats=1" "-artifact_prefix=$artifacts/")
  [ -n "$dict" ] && args+=("-dict=$ROOT/tests/fuzz/dict/$dict")
  # Hard bound: start-up (model loading under ASan) plus the run plus a slow last input.
  timeout --kill-after=10 "$((SECONDS_PER_TARGET + timeout + 120))" \
    "$BIN/tests/fuzz/$name" "${args[@]}" "$corpus" >"$logf" 2>&1
  local rc=$?
  local after; after="$(failures)"
  local crashes=$((after - before))
  ((rc != 0 && crashes == 0)) && crashes=1  # died without an artifact (e.g. in start-up)
  local execs rate
  execs="$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$logf" | tail -1 | grep -o '[0-9]*$')"
  [ -n "$execs" ] || execs="$(grep -a -o '^#[0-9]*' "$logf" | tail -1 | tr -d '#')"
  rate="$(grep -a -o 'stat::average_exec_per_sec: *[0-9]*' "$logf" | tail -1 | grep -o '[0-9]*$')"
  echo "$name ${execs:-0} ${rate:-0} $crashes $(find "$corpus" -type f | wc -l) $rc" >"$OUT/logs/$name.result"
}

log "running each target for ${SECONDS_PER_TARGET}s, $JOBS at a time; corpora, artifacts, logs: $OUT"
running=0
for t in "${TARGETS[@]}"; do
  rm -f "$OUT/logs/${t%%|*}.result"
  run_target "$t" &
  running=$((running + 1))
  if ((running >= JOBS)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

total_execs=0 total_crashes=0
for t in "${TARGETS[@]}"; do
  name="${t%%|*}"
  if [ -f "$OUT/logs/$name.result" ]; then
    read -r _ execs rate crashes corpus rc <"$OUT/logs/$name.result"
  else
    execs=0 rate=0 crashes=1 corpus=0 rc=-1
  fi
  printf '[fuzz] %-26s %10s execs %7s/s  corpus %5s  %s\n' "$name" "$execs" "$rate" "$corpus" \
    "$( ((crashes)) && echo "CRASH (rc $rc): $OUT/logs/$name.log, $OUT/artifacts/$name/" || echo ok)" >&2
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
done
echo "fuzz: ${#TARGETS[@]} targets, $total_execs execs, $total_crashes crashes"
((total_crashes == 0))
