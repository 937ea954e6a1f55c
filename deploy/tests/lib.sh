# Sourced by the //deploy sh_tests. Finds the ops tools, runs named checks, and writes a
# JUnit XML report (one testcase per check) to $XML_OUTPUT_FILE for Bazel.
#
# Tools come from the cache that ./smolserve setup fills (deploy/tools/setup_ops_tools.sh):
#   ${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-$HOME/.cache/smolserve}/tools}
# (.bazelrc passes HOME; pass SMOLSERVE_TOOLS or SMOLSERVE_HOME with --test_env to use
# another cache). promtool is /usr/bin/promtool (Debian `prometheus`). A missing tool is a
# failure, never a skip.
set -uo pipefail

TOOLS="${SMOLSERVE_TOOLS:-${SMOLSERVE_HOME:-${HOME:-/nonexistent}/.cache/smolserve}/tools}"
HELM="$TOOLS/helm/helm"
NODE_MODULES="$TOOLS/node/node_modules"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
export PYTHONDONTWRITEBYTECODE=1
export HELM_CACHE_HOME="$TMP/helm/cache" HELM_CONFIG_HOME="$TMP/helm/config" HELM_DATA_HOME="$TMP/helm/data"

# The workspace: the test's runfiles tree under Bazel, else the checkout around this file.
if [ -n "${TEST_SRCDIR:-}" ] && [ -d "$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}/deploy" ]; then
  WS="$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}"
else
  WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi
DEPLOY="$WS/deploy"

_NAMES=(); _RESULTS=(); _TIMES=(); _OUTPUTS=()
_SUITE="$(basename "${0%.sh}")"

_record() {  # name result(pass|fail) seconds output
  _NAMES+=("$1"); _RESULTS+=("$2"); _TIMES+=("$3"); _OUTPUTS+=("$4")
}

# need_tool LABEL PATH: fail the whole test (clearly) when a tool is missing.
need_tool() {
  if [ ! -e "$2" ]; then
    local msg="$1 not found at $2. Install the ops tools with ./smolserve setup (deploy/tools/setup_ops_tools.sh), or point the test at them with bazel test --test_env=SMOLSERVE_TOOLS=DIR (or --test_env=SMOLSERVE_HOME)."
    echo "FAIL $msg" >&2
    _record "tool: $1" fail 0 "$msg"
    finish
  fi
}

# check NAME COMMAND...: run a command; its exit status decides.
check() {
  local name="$1"; shift
  local t0 t1 out rc
  t0=$(date +%s.%N)
  out="$("$@" 2>&1)"; rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  if [ $rc -eq 0 ]; then
    echo "PASS $name"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
    _record "$name" pass "$secs" "$out"
  else
    echo "FAIL $name (exit $rc)"
    printf '%s\n' "$out" | sed 's/^/    /'
    _record "$name" fail "$secs" "$out"
  fi
}

# expect_fail NAME COMMAND...: the command must fail (a negative test).
expect_fail() {
  local name="$1"; shift
  check "$name" _negate "$@"
}
_negate() {
  local out
  if out="$("$@" 2>&1)"; then
    printf 'expected a failure, but it succeeded:\n%s\n' "$out"
    return 1
  fi
  printf 'failed as expected: %s\n' "$(printf '%s\n' "$out" | grep -m3 -iE 'error|fail' | tr '\n' ' ')"
}

_xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' | tr -d '\000-\010\013\014\016-\037'; }

finish() {
  local n=${#_NAMES[@]} fails=0 i
  for ((i = 0; i < n; i++)); do [ "${_RESULTS[$i]}" = fail ] && fails=$((fails + 1)); done
  if [ -n "${XML_OUTPUT_FILE:-}" ]; then
    {
      echo '<?xml version="1.0" encoding="UTF-8"?>'
      echo "<testsuites><testsuite name=\"$_SUITE\" tests=\"$n\" failures=\"$fails\" errors=\"0\">"
      for ((i = 0; i < n; i++)); do
        printf '<testcase name="%s" classname="%s" time="%s" status="run">' \
          "$(printf '%s' "${_NAMES[$i]}" | _xml_escape)" "$_SUITE" "${_TIMES[$i]}"
        if [ "${_RESULTS[$i]}" = fail ]; then
          printf '<failure message="check failed">%s</failure>' "$(printf '%s' "${_OUTPUTS[$i]}" | _xml_escape)"
        fi
        echo '</testcase>'
      done
      echo '</testsuite></testsuites>'
    } > "$XML_OUTPUT_FILE"
  fi
  echo "$_SUITE: $((n - fails)) of $n checks passed"
  [ "$fails" -eq 0 ] && [ "$n" -gt 0 ] && exit 0
  exit 1
}
