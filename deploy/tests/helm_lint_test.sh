#!/usr/bin/env bash
# //deploy:helm_lint_test: helm lint --strict of the chart with the default values,
# values-gpu.yaml and the other switches; the chart's own value checks reject bad input.
if [ -n "${TEST_SRCDIR:-}" ]; then LIB="$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}/deploy/tests/lib.sh"; else LIB="$(dirname "$0")/lib.sh"; fi
source "$LIB" || { echo "FAIL cannot load $LIB" >&2; exit 1; }
need_tool helm "$HELM"

# Helm warns about symlinked files (the runfiles tree): lint a plain copy.
CHART="$TMP/chart/smolserve"
rm -rf "$TMP/chart"; mkdir -p "$TMP/chart"; cp -rL "$DEPLOY/k8s/smolserve" "$CHART"

check "helm version" "$HELM" version --short
check "helm lint --strict (default values)" "$HELM" lint --strict "$CHART"
check "helm lint --strict (values-gpu.yaml)" "$HELM" lint --strict "$CHART" -f "$CHART/values-gpu.yaml"
check "helm lint --strict (keda, initContainer, ServiceMonitor, PrometheusRule)" "$HELM" lint --strict "$CHART" \
  --set autoscaling.mode=keda --set model.source=initContainer \
  --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true
check "helm lint --strict (no autoscaling, existing PVC + download Job, no metrics)" "$HELM" lint --strict "$CHART" \
  --set autoscaling.mode=none --set model.pvc.existingClaim=models --set model.pvc.download=true --set metrics.enabled=false
expect_fail "rejects model.source=bogus" "$HELM" template t "$CHART" --set model.source=bogus
expect_fail "rejects autoscaling.mode=bogus" "$HELM" template t "$CHART" --set autoscaling.mode=bogus
expect_fail "rejects terminationGracePeriodSeconds <= shutdown grace" "$HELM" template t "$CHART" \
  --set vision.terminationGracePeriodSeconds=20 --set vision.shutdownGraceSeconds=30
expect_fail "rejects threads=0" "$HELM" template t "$CHART" --set decoder.threads=0
finish
