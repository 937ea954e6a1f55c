#!/usr/bin/env bash
# //deploy:prometheus_rules_test: promtool check rules + promtool test rules, the chart's
# copy of the rules is identical, and the rules only use metrics that exist.
if [ -n "${TEST_SRCDIR:-}" ]; then LIB="$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}/deploy/tests/lib.sh"; else LIB="$(dirname "$0")/lib.sh"; fi
source "$LIB" || { echo "FAIL cannot load $LIB" >&2; exit 1; }
PROMTOOL="$(command -v promtool || echo /usr/bin/promtool)"
need_tool "promtool (Debian package prometheus)" "$PROMTOOL"
P="$DEPLOY/prometheus"

check "promtool version" "$PROMTOOL" --version
check "promtool check rules rules.yaml" "$PROMTOOL" check rules "$P/rules.yaml"
# promtool resolves rule_files relative to the test file.
check "promtool test rules rules_test.yaml" "$PROMTOOL" test rules "$P/rules_test.yaml"
check "chart copy is identical (deploy/tools/sync_chart_files.sh)" cmp "$P/rules.yaml" "$DEPLOY/k8s/smolserve/files/prometheus-rules.yaml"
known_metrics() { grep -v '^#' "$P/metrics.txt" | awk 'NF {print $1}'; }
unknown_rule_metrics() {
  local bad
  bad="$(grep -o 'smolserve:[a-zA-Z0-9_:]*' "$P/rules.yaml" | sed -E 's/_(bucket|sum|count)$//' | sort -u | grep -vxF -f <(known_metrics))"
  [ -z "$bad" ] || { echo "metrics not in deploy/prometheus/metrics.txt: $bad"; return 1; }
  echo "$(grep -o 'smolserve:[a-zA-Z0-9_:]*' "$P/rules.yaml" | sed -E 's/_(bucket|sum|count)$//' | sort -u | wc -l) metric names, all known"
}
check "rules use only known metrics" unknown_rule_metrics
every_alert_tested() {
  local missing=0 a
  for a in $(grep -oE '^ *- alert: [A-Za-z]+' "$P/rules.yaml" | awk '{print $3}'); do
    grep -q "alertname: $a\$" "$P/rules_test.yaml" || { echo "alert $a has no test in rules_test.yaml"; missing=1; }
  done
  return $missing
}
check "every alert has a promtool test" every_alert_tested
finish
