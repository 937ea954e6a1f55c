#!/usr/bin/env bash
# Runs every fuzz target (built without libFuzzer: standalone_main.cc) on its seed corpus and
# on the reproducers of the bugs fuzzing found (regressions/<target>/): each input must pass
# the target's invariants. Part of the normal test suite.
set -uo pipefail
failed=0
for bin in tests/fuzz/*_fuzzer; do
  name="$(basename "$bin")"
  inputs=("tests/fuzz/corpus/$name")
  [ -d "tests/fuzz/regressions/$name" ] && inputs+=("tests/fuzz/regressions/$name")
  if out="$("$bin" "${inputs[@]}" 2>&1)"; then
    echo "PASS $name: $(echo "$out" | tail -1)"
  else
    echo "FAIL $name:"
    echo "$out" | tail -40
    failed=1
  fi
done
exit $failed
