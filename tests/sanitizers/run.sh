#!/usr/bin/env bash
# Runs a test set under a sanitizer configuration of .bazelrc, in a Bazel output base of its own
# (so the normal build keeps its cache), and prints "N passed, N failed" (test cases, from the
# GoogleTest XML of the tests run).
#
#   tests/sanitizers/run.sh asan              core libraries' unit tests, ASan + UBSan
#   tests/sanitizers/run.sh asan-integration  //tests/integration/..., ASan + UBSan
#   tests/sanitizers/run.sh asan-ci           the unit tests without LibTorch (the parsers that
#                                             face clients: JSON, tokenizer, media, HTTP, URLs,
#                                             keys), ASan + UBSan: what CI runs
#   tests/sanitizers/run.sh tsan              the concurrency tests, ThreadSanitizer
#   tests/sanitizers/run.sh MODE [bazel test flags or target patterns...]
#
# SMOLSERVE_SANITIZER_OUTPUT_BASE overrides the output base (~/.cache/smolserve/bazel-sanitizers).
# Suppressions (third-party code only, each with its reason): tests/sanitizers/*.supp.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

mode="${1:-}"
shift || true
case "$mode" in
  asan)
    config=asan
    targets=(//common/... //services/preprocess/core/... //services/vision/core/...
             //services/decoder/core/... //services/preprocess/server/...) ;;
  asan-integration)
    config=asan
    targets=(//tests/integration/...) ;;
  asan-ci)
    config=asan
    targets=("tests(//common/... + //services/preprocess/...) except rdeps(//common/... + //services/..., //third_party/system:torch)") ;;
  tsan)
    config=tsan
    targets=(//common/concurrency/... //common/cache/... //common/auth/...
             //services/decoder/core:batch_engine_test //services/vision/core:encode_batcher_test
             //services/preprocess/core:chat_pipeline_test) ;;
  *)
    echo "usage: $0 asan|asan-ci|asan-integration|tsan [bazel flags or targets...]" >&2
    exit 2 ;;
esac
flags=()
for a in "$@"; do
  if [[ "$a" == //* ]]; then targets+=("$a"); else flags+=("$a"); fi
done

OUTPUT_BASE="${SMOLSERVE_SANITIZER_OUTPUT_BASE:-$HOME/.cache/smolserve/bazel-sanitizers}"
BAZEL="$(command -v bazel || command -v bazel-4)"
bz() { "$BAZEL" --output_base="$OUTPUT_BASE" "$@"; }

# Only test targets that exist (the HTTP server test may not be there yet).
query="tests(set(${targets[*]}))"
[ "$mode" = tsan ] && [ -f services/preprocess/server/http/http_server_test.cc ] &&
  query="tests(set(${targets[*]} //services/preprocess/server/http:http_server_test))"
[ "$mode" = asan-ci ] && query="${targets[0]}"
mapfile -t tests < <(bz query "$query" 2>/dev/null | sort)
if ((${#tests[@]} == 0)); then
  echo "0 passed, 1 failed (no test targets)"
  exit 1
fi
echo "[sanitizers] $mode: ${#tests[@]} test targets, output base $OUTPUT_BASE" >&2
start="$(date +%s)"
bz test --config="$config" --symlink_prefix=/ -k --nocache_test_results "${flags[@]}" "${tests[@]}" >&2
rc=$?

testlogs="$(bz info --config="$config" bazel-testlogs 2>/dev/null)"
read -r passed failed < <(python3 - "$testlogs" "$start" "${tests[@]}" <<'PY'
import os, sys, xml.etree.ElementTree as ET
root, start, labels = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
p = f = 0
for label in labels:
    pkg, name = label[2:].split(":")
    path = os.path.join(root, pkg, name, "test.xml")
    try:
        if os.path.getmtime(path) < start:
            raise OSError("from an earlier run")  # this run did not build or run it
        t = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        f += 1  # did not build or did not run
        continue
    cases = list(t.iter("testcase"))
    if not cases:
        f += 1
    for tc in cases:
        if tc.find("failure") is not None or tc.find("error") is not None:
            f += 1
        elif tc.get("status", "run") == "run" and tc.find("skipped") is None:
            p += 1
print(p, f)
PY
)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit "$rc"
