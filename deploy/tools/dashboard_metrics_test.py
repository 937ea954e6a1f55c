#!/usr/bin/env python3
"""Unit tests of dashboard_metrics.py's PromQL scanner (run by //deploy:dashboard_test)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_metrics as dm  # noqa: E402

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard_metrics.py")


def names(expr):
    return sorted({dm.HISTOGRAM_SUFFIX.sub("", n) for n, _ in dm.metrics_in(expr)})


class ScannerTest(unittest.TestCase):
    def test_histogram_quantile(self):
        self.assertEqual(
            names('histogram_quantile(0.95, sum by (le, stage) (rate(smolserve:ttft_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))'),
            ["smolserve:ttft_seconds"])

    def test_label_lists_and_matchers_are_not_metrics(self):
        e = ('sum without (pod) (a_total{code=~"INVALID_ARGUMENT|x", stage="vision"}) / on (namespace, stage) '
             'group_left (finished_reason) b{le="0.5"} and ignoring(x) c offset 5m')
        self.assertEqual(names(e), ["a_total", "b", "c"])

    def test_functions_keywords_numbers(self):
        e = 'clamp_min(max(rate(x_count[1h30m])) by (stage), 0) > bool 1e3 or vector(0) unless absent(y) atan2 z @ start()'
        self.assertEqual(names(e), ["x", "y", "z"])

    def test_name_matcher_and_stage(self):
        got = sorted(dm.metrics_in('{__name__="smolserve:q_sum", stage="decoder"} + smolserve:r{stage=~"a|b"} + smolserve:s{stage="vision"}'))
        self.assertEqual(got, [("smolserve:q_sum", "decoder"), ("smolserve:r", None), ("smolserve:s", "vision")])

    def test_subquery_and_strings(self):
        self.assertEqual(names('max_over_time(rate(m_total{a="rate(fake[5m])"}[5m])[30m:1m])'), ["m_total"])

    def test_grafana_variables(self):
        self.assertEqual(names('sum(rate(k{pod=~"${pod:regex}", ns="$ns"}[$__interval])) * $factor'), ["k"])

    def test_dashboard_file(self):
        dash = {"uid": "u", "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "sum(rate(smolserve:a_total[5m]))"}]}]},
            {"targets": [{"expr": 'histogram_quantile(0.5, rate(smolserve:b_seconds_bucket{stage="vision"}[5m]))'},
                         {"expr": "kube_deployment_status_replicas"}, {"refId": "no expr"}]}],
            "templating": {"list": [
                {"type": "query", "query": {"query": "label_values(smolserve:c, namespace)"}},
                {"type": "query", "query": "query_result(topk(3, smolserve:d))"},
                {"type": "custom", "query": "a,b"}]}}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(dash, f)
        try:
            out = subprocess.run([sys.executable, TOOL, f.name], capture_output=True, text=True, check=True).stdout
            self.assertEqual(out.split(), ["kube_deployment_status_replicas", "smolserve:a_total",
                                           "smolserve:b_seconds", "smolserve:c", "smolserve:d"])
            out = subprocess.run([sys.executable, TOOL, f.name, "--prefix", "smolserve:", "--by-stage"],
                                 capture_output=True, text=True, check=True).stdout
            self.assertEqual(out.splitlines(), ["smolserve:a_total\t*", "smolserve:b_seconds\tvision",
                                                "smolserve:c\t*", "smolserve:d\t*"])
        finally:
            os.unlink(f.name)

    def test_empty_dashboard_fails(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"panels": []}, f)
        try:
            r = subprocess.run([sys.executable, TOOL, f.name], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main(verbosity=1)
