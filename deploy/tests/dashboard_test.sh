#!/usr/bin/env bash
# //deploy:dashboard_test: the Grafana dashboard parses and is well-formed, the metric list
# deploy/tools/dashboard_metrics.py extracts from it is exactly the metrics of
# deploy/prometheus/metrics.txt (each used with a stage that exports it), the chart's copy
# is identical, and deploy/README.md documents every metric.
if [ -n "${TEST_SRCDIR:-}" ]; then LIB="$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}/deploy/tests/lib.sh"; else LIB="$(dirname "$0")/lib.sh"; fi
source "$LIB" || { echo "FAIL cannot load $LIB" >&2; exit 1; }
PY="$(command -v python3 || echo /usr/bin/python3)"
need_tool python3 "$PY"
DASH="$DEPLOY/grafana/smolserve-dashboard.json"
TOOL="$DEPLOY/tools/dashboard_metrics.py"
LIST="$DEPLOY/prometheus/metrics.txt"

check "dashboard JSON parses" "$PY" -m json.tool "$DASH" /dev/null
check "dashboard structure" "$PY" - "$DASH" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
errs = []
panels = []
def walk(ps):
    for p in ps or []:
        panels.append(p); walk(p.get("panels"))
walk(d.get("panels"))
if not d.get("uid") or not d.get("title"): errs.append("uid/title missing")
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)): errs.append("duplicate panel ids")
names = [v.get("name") for v in d.get("templating", {}).get("list", [])]
if "datasource" not in names: errs.append("no datasource variable")
n_targets = 0
for p in panels:
    if p.get("type") == "row": continue
    if not p.get("targets"): errs.append(f"panel {p.get('title')!r} has no query")
    if not all(k in p.get("gridPos", {}) for k in "xywh"): errs.append(f"panel {p.get('title')!r} has no gridPos")
    for t in p.get("targets", []):
        n_targets += 1
        if t.get("datasource", {}).get("uid") != "${datasource}": errs.append(f"panel {p.get('title')!r}: target not on ${{datasource}}")
        e = t.get("expr", "")
        if "_bucket" in e and "histogram_quantile" not in e: errs.append(f"panel {p.get('title')!r}: _bucket without histogram_quantile")
        if "rate(" in e and "$__rate_interval" not in e: errs.append(f"panel {p.get('title')!r}: rate without $__rate_interval")
for e in errs: print("ERROR", e)
print(f"{len(panels)} panels, {n_targets} queries")
sys.exit(1 if errs else 0)
PY
check "dashboard_metrics.py unit tests" "$PY" "$DEPLOY/tools/dashboard_metrics_test.py"
check "dashboard_metrics.py lists the dashboard's metrics" "$PY" "$TOOL" "$DASH"
same_as_metric_list() {
  diff <("$PY" "$TOOL" "$DASH" --prefix smolserve:) <(grep -v '^#' "$LIST" | awk 'NF {print $1}' | sort) \
    && echo "the dashboard uses all $(grep -vc '^#' "$LIST") metrics of deploy/prometheus/metrics.txt and no other"
}
check "dashboard metrics == deploy/prometheus/metrics.txt" same_as_metric_list
stages_consistent() {
  local bad=0 name stage stages
  while IFS=$'\t' read -r name stage; do
    [ "$stage" = "*" ] && continue
    stages="$(awk -v n="$name" '$1 == n {print $3}' "$LIST")"
    case ",$stages," in *",$stage,"*) ;; *) echo "$name is queried with stage=\"$stage\" but is exported by: $stages"; bad=1 ;; esac
  done < <("$PY" "$TOOL" "$DASH" --prefix smolserve: --by-stage)
  return $bad
}
check "each stage=\"...\" selector names a stage that exports the metric" stages_consistent
check "chart copy is identical (deploy/tools/sync_chart_files.sh)" cmp "$DASH" "$DEPLOY/k8s/smolserve/files/smolserve-dashboard.json"
readme_lists_all() {
  local missing=0 m
  for m in $(grep -v '^#' "$LIST" | awk 'NF {print $1}'); do
    grep -qF -e "\`$m\`" -e "\`$m{" "$DEPLOY/README.md" || { echo "deploy/README.md does not list $m"; missing=1; }
  done
  return $missing
}
check "deploy/README.md lists every metric" readme_lists_all
finish
