#!/usr/bin/env python3
"""Prints the metric names that a Grafana dashboard's PromQL queries use.

    deploy/tools/dashboard_metrics.py DASHBOARD.json [--prefix smolserve:] [--by-stage]
    deploy/tools/dashboard_metrics.py --exprs EXPRS.json [...]   (a JSON list of PromQL strings)

One base name per line, sorted and unique: histogram series lose their _bucket / _sum /
_count suffix (smolserve:time_to_first_token_seconds_bucket -> smolserve:time_to_first_token_seconds),
so the list compares directly with the names a /metrics scrape declares in "# TYPE" lines.
Queries are read from every panel's targets (rows and nested panels included) and from
query variables (label_values(metric, label), query_result(expr)); Grafana variables such as
$namespace or $__rate_interval are ignored.

--prefix P   print only names starting with P (e.g. smolserve:, dropping kube-state-metrics)
--by-stage   print "NAME<TAB>STAGE" instead, STAGE being the value of a literal
             stage="..." matcher on that selector, or "*" when the selector has none
Exit status: 0, or 1 when the file can't be read/parsed or contains no query at all.
"""
import argparse
import json
import re
import sys

AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
KEYWORDS = AGGREGATORS | {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan", "start", "end",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|\d*\.?\d+(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@])
""", re.VERBOSE)

GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$__\w+|\$\w+|\[\[\w+\]\]")


def tokenize(expr):
    expr = GRAFANA_VAR.sub("0", expr)
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:  # unknown character: skip it rather than fail on exotic syntax
            pos += 1
            continue
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def unquote(s):
    return s[1:-1] if len(s) >= 2 else s


def metrics_in(expr):
    """Yields (metric, stage or None) for every vector selector in a PromQL expression."""
    toks = tokenize(expr)
    i, n = 0, len(toks)
    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < n else None
        if kind == "ident" and text in LABEL_LIST_KEYWORDS and nxt == "(":
            depth, i = 0, i + 1  # skip the label list
            while i < n:
                if toks[i][1] == "(":
                    depth += 1
                elif toks[i][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
            continue
        if kind == "op" and text == "[":  # range / subquery durations
            while i < n and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if kind == "op" and text == "{":  # a selector without a metric name
            matchers, i = read_matchers(toks, i)
            name = matchers.get(("__name__", "="))
            if name:
                yield name, matchers.get(("stage", "="))
            continue
        if kind == "ident":
            if text in KEYWORDS or nxt == "(":
                i += 1  # keyword, function or aggregation
                continue
            stage = None
            if nxt == "{":
                matchers, i = read_matchers(toks, i + 1)
                stage = matchers.get(("stage", "="))
            else:
                i += 1
            yield text, stage
            continue
        i += 1


def read_matchers(toks, i):
    """toks[i] is '{'; returns ({(label, op): value}, index after '}')."""
    matchers = {}
    i += 1
    while i < len(toks) and toks[i][1] != "}":
        if (toks[i][0] == "ident" and i + 2 < len(toks) and toks[i + 1][0] == "op"
                and toks[i + 2][0] == "string"):
            matchers[(toks[i][1], toks[i + 1][1])] = unquote(toks[i + 2][1])
            i += 3
        else:
            i += 1
    return matchers, i + 1


def dashboard_exprs(dash):
    exprs = []

    def panels(items):
        for p in items or []:
            for t in p.get("targets") or []:
                if isinstance(t, dict) and isinstance(t.get("expr"), str) and t["expr"].strip():
                    exprs.append(t["expr"])
            panels(p.get("panels"))

    panels(dash.get("panels"))
    for row in dash.get("rows") or []:  # very old dashboards
        panels(row.get("panels"))
    for var in (dash.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if not isinstance(q, str):
            continue
        m = re.match(r"\s*label_values\(\s*(.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", q, re.S)
        if m:
            exprs.append(m.group(1))
            continue
        m = re.match(r"\s*query_result\((.*)\)\s*$", q, re.S)
        if m:
            exprs.append(m.group(1))
    return exprs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dashboard", nargs="?", help="Grafana dashboard JSON")
    ap.add_argument("--exprs", help="a JSON file with a list of PromQL expressions instead")
    ap.add_argument("--prefix", default="", help="only names with this prefix")
    ap.add_argument("--by-stage", action="store_true", help='print "NAME<TAB>STAGE"')
    args = ap.parse_args()
    if bool(args.dashboard) == bool(args.exprs):
        ap.error("give a dashboard file or --exprs")
    try:
        with open(args.dashboard or args.exprs, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f"dashboard_metrics: {e}", file=sys.stderr)
        return 1
    if args.exprs:
        exprs = [e for e in data if isinstance(e, str)]
    else:
        if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
            data = data["dashboard"]  # the API's {"dashboard": ...} envelope
        exprs = dashboard_exprs(data)
    if not exprs:
        print("dashboard_metrics: no PromQL query found", file=sys.stderr)
        return 1
    seen = set()
    for e in exprs:
        for name, stage in metrics_in(e):
            name = HISTOGRAM_SUFFIX.sub("", name)
            if name.startswith(args.prefix):
                seen.add((name, stage or "*") if args.by_stage else name)
    for item in sorted(seen):
        print("\t".join(item) if args.by_stage else item)
    return 0


if __name__ == "__main__":
    sys.exit(main())
