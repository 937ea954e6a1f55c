#!/usr/bin/env bash
# //deploy:k8s_manifests_test: helm template for several value sets, each validated offline
# with kubernetes-models (deploy/tools/validate_manifests.mjs: schemas, unknown fields, CRD
# structure, cross-references, every stage flag defined in services/<stage>/main.cc), the
# PromQL it carries checked with promtool, and a few exact expectations about the rendered objects.
if [ -n "${TEST_SRCDIR:-}" ]; then LIB="$TEST_SRCDIR/${TEST_WORKSPACE:-smolserve}/deploy/tests/lib.sh"; else LIB="$(dirname "$0")/lib.sh"; fi
source "$LIB" || { echo "FAIL cannot load $LIB" >&2; exit 1; }
need_tool helm "$HELM"
need_tool "kubernetes-models + js-yaml (node_modules)" "$NODE_MODULES/kubernetes-models/package.json"
need_tool node "$(command -v node || echo /usr/bin/node)"
need_tool promtool "$(command -v promtool || echo /usr/bin/promtool)"

CHART="$TMP/chart/smolserve"
rm -rf "$TMP/chart"; mkdir -p "$TMP/chart"; cp -rL "$DEPLOY/k8s/smolserve" "$CHART"
# --stage-flags: every flag the chart passes must exist in the stage's main.cc.
VALIDATE=(node "$DEPLOY/tools/validate_manifests.mjs" --node-modules "$NODE_MODULES"
  --stage-flags "preprocess=$WS/services/preprocess/main.cc" --stage-flags "vision=$WS/services/vision/main.cc"
  --stage-flags "decoder=$WS/services/decoder/main.cc")
NS=smolserve-test
R="$TMP/render"; mkdir -p "$R"

render() {  # NAME helm-args...
  local name="$1"; shift
  "$HELM" template smolserve "$CHART" --namespace "$NS" "$@" > "$R/$name.yaml"
}

# 1. default values (HPA autoscaling, model PVC, Grafana dashboard ConfigMap)
check "helm template (default values)" render default
check "validate default" "${VALIDATE[@]}" "$R/default.yaml" --dump-promql "$R/default-promql.yaml" \
  --adapter-values "$DEPLOY/k8s/prometheus-adapter-values.yaml" \
  --expect-count Deployment=3 --expect-count Service=3 --expect-count PodDisruptionBudget=3 \
  --expect-count HorizontalPodAutoscaler=3 --expect-count ScaledObject=0 --expect-count PersistentVolumeClaim=1 \
  --expect-count ConfigMap=3 --expect-gpu ""
check "promtool check rules (prometheus-adapter queries)" promtool check rules "$R/default-promql.yaml"
check "front targets the headless Services via dns:/// (round_robin)" grep -q \
  -e "--vision_target=dns:///smolserve-vision-headless.$NS.svc.cluster.local:50052" "$R/default.yaml"
check "decoder target" grep -q -e "--decoder_target=dns:///smolserve-decoder-headless.$NS.svc.cluster.local:50053" "$R/default.yaml"
check "Grafana dashboard ConfigMap has the sidecar label" grep -q 'grafana_dashboard: "1"' "$R/default.yaml"
check "native gRPC probes" bash -c "[ \"\$(grep -c 'grpc: {port: 5005[123]}' '$R/default.yaml')\" = 9 ]"

# 2. values-gpu.yaml
check "helm template (values-gpu.yaml)" render gpu -f "$CHART/values-gpu.yaml"
check "validate values-gpu.yaml" "${VALIDATE[@]}" "$R/gpu.yaml" --expect-gpu vision,decoder \
  --expect-count Deployment=3 --expect-count HorizontalPodAutoscaler=3
check "GPU images use the -cuda tag" grep -q 'image: smolserve-vision:0.1.0-cuda' "$R/gpu.yaml"

# 3. KEDA, per-pod download initContainer, ServiceMonitor + PrometheusRule
check "helm template (keda, initContainer, ServiceMonitor, PrometheusRule)" render keda \
  --set autoscaling.mode=keda --set model.source=initContainer \
  --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true
check "validate keda" "${VALIDATE[@]}" "$R/keda.yaml" --dump-promql "$R/keda-promql.yaml" \
  --expect-count ScaledObject=3 --expect-count HorizontalPodAutoscaler=0 --expect-count ServiceMonitor=1 \
  --expect-count PrometheusRule=1 --expect-count PersistentVolumeClaim=0
check "promtool check rules (PrometheusRule + KEDA queries)" promtool check rules "$R/keda-promql.yaml"

# 4. fixed replicas, existing claim filled by the download Job, metrics off
check "helm template (autoscaling none, existing PVC, download Job, metrics off)" render fixed \
  --set autoscaling.mode=none --set model.pvc.existingClaim=models --set model.pvc.download=true --set metrics.enabled=false
check "validate fixed" "${VALIDATE[@]}" "$R/fixed.yaml" --external-claim models \
  --expect-count HorizontalPodAutoscaler=0 --expect-count ScaledObject=0 --expect-count Job=1 --expect-count PersistentVolumeClaim=0
check "no --metrics_port when metrics are off" bash -c "! grep -q -e --metrics_port '$R/fixed.yaml'"

# The validator must not be vacuous: a typo, a string port and a broken selector fail it.
sed -e 's/readOnlyRootFilesystem/readOnlyRootFileSystem/' -e '0,/containerPort: 50052/s//containerPort: "50052"/' \
  -e '0,/app.kubernetes.io\/component: decoder/s//app.kubernetes.io\/component: decodr/' "$R/default.yaml" > "$R/broken.yaml"
expect_fail "validator rejects a broken manifest" "${VALIDATE[@]}" "$R/broken.yaml"
finish
