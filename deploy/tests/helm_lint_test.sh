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
check "helm lint --strict (API keys, public TLS + client CA, internal mTLS, Ingress, egress policy)" "$HELM" lint --strict "$CHART" \
  --set apiKeys.existingSecret=keys --set tls.public.existingSecret=public-tls --set tls.public.clientCa.existingSecret=client-ca \
  --set tls.internal.existingSecret=internal-tls --set ingress.enabled=true --set networkPolicy.egress.enabled=true \
  --set 'preprocess.mediaUrl.allow={*.example.com,10.0.0.0/8}' --set preprocess.tenantLimits.requestsPerMinute=60 \
  --set 'networkPolicy.health.from[0].ipBlock.cidr=10.0.0.0/16'
check "helm lint --strict (no NetworkPolicy, no HTTP API, reflection on)" "$HELM" lint --strict "$CHART" \
  --set networkPolicy.enabled=false --set preprocess.http.enabled=false \
  --set preprocess.reflection=true --set vision.reflection=true --set decoder.reflection=true
expect_fail "rejects model.source=bogus" "$HELM" template t "$CHART" --set model.source=bogus
expect_fail "rejects autoscaling.mode=bogus" "$HELM" template t "$CHART" --set autoscaling.mode=bogus
expect_fail "rejects terminationGracePeriodSeconds <= shutdown grace" "$HELM" template t "$CHART" \
  --set vision.terminationGracePeriodSeconds=20 --set vision.shutdownGraceSeconds=30
expect_fail "rejects threads=0" "$HELM" template t "$CHART" --set decoder.threads=0
expect_fail "rejects an Ingress without API keys" "$HELM" template t "$CHART" --set ingress.enabled=true
check "accepts an unauthenticated Ingress when asked to" "$HELM" template t "$CHART" --set ingress.enabled=true --set apiKeys.allowUnauthenticated=true
expect_fail "rejects an Ingress without the HTTP API" "$HELM" template t "$CHART" --set ingress.enabled=true \
  --set apiKeys.existingSecret=keys --set preprocess.http.enabled=false
expect_fail "rejects tls.public.clientCa without tls.public" "$HELM" template t "$CHART" --set tls.public.clientCa.existingSecret=ca
expect_fail "rejects gRPC probes on a TLS port without a health port" "$HELM" template t "$CHART" --set tls.internal.existingSecret=mtls \
  --set vision.probes.handler=grpc --set vision.healthPort=0
check "accepts gRPC probes on TLS stages through their health port" "$HELM" template t "$CHART" --set tls.internal.existingSecret=mtls \
  --set tls.public.existingSecret=tls --set preprocess.probes.handler=grpc --set vision.probes.handler=grpc --set decoder.probes.handler=grpc
expect_fail "rejects the health port on the gRPC port" "$HELM" template t "$CHART" --set tls.internal.existingSecret=mtls --set decoder.healthPort=50053
expect_fail "rejects the front's health port on its HTTP port" "$HELM" template t "$CHART" --set tls.public.existingSecret=tls --set preprocess.healthPort=8000
expect_fail "rejects a non-numeric health port" "$HELM" template t "$CHART" --set vision.healthPort=probe
expect_fail "rejects a non-numeric stop-string limit" "$HELM" template t "$CHART" --set limits.decoder.maxStopStrings=many
expect_fail "rejects max_new_tokens_limit 0" "$HELM" template t "$CHART" --set limits.decoder.maxNewTokensLimit=0
expect_fail "rejects conversationThreads 0" "$HELM" template t "$CHART" --set limits.preprocess.conversationThreads=0
expect_fail "rejects an HTTP readiness probe with client certificates required" "$HELM" template t "$CHART" \
  --set tls.public.existingSecret=tls --set tls.public.clientCa.existingSecret=ca --set preprocess.http.readinessProbe=true
expect_fail "rejects mTLS Secrets for only some stages" "$HELM" template t "$CHART" --set tls.internal.stageSecrets.vision=v
expect_fail "rejects a media allow-list entry with a comma" "$HELM" template t "$CHART" --set 'preprocess.mediaUrl.allow[0]=a.example\,b.example'
expect_fail "rejects a non-numeric HTTP limit" "$HELM" template t "$CHART" --set preprocess.http.maxBodyBytes=lots
expect_fail "rejects the HTTP port on the gRPC port" "$HELM" template t "$CHART" --set preprocess.http.port=50051
expect_fail "rejects decoder.weights=int4" "$HELM" template t "$CHART" --set decoder.weights=int4
expect_fail "rejects int8 weights with bf16 compute" "$HELM" template t "$CHART" --set decoder.weights=int8 --set model.dtype=bf16
expect_fail "rejects a download script without its image" "$HELM" template t "$CHART" --set model.initContainer.script=true
job_downloads_with_stage_image() {
  "$HELM" template t "$CHART" --set model.pvc.download=true --set image.repository=r/smolserve |
    grep -A4 -- '- name: download' | tr -d '\n' |
    grep -q 'image: r/smolserve-decoder:.*smolserve-decoder"\].*args: \["--download_only", "--model=$(SMOLSERVE_MODEL)"\]'
}
check "the model-download Job runs the decoder image with --download_only" job_downloads_with_stage_image
init_downloads_with_stage_image() {
  "$HELM" template t "$CHART" --set model.source=initContainer --set image.repository=r/smolserve |
    grep -A4 -- '- name: model-download' | tr -d '\n' | grep -q 'image: r/smolserve-vision:.*smolserve-vision"\].*--download_only'
}
check "each stage's download initContainer runs its own image with --download_only" init_downloads_with_stage_image
weights_arg() { "$HELM" template t "$CHART" "$@" | grep -q -- '- --weights=int8'; }
check "decoder.weights=int8 reaches the decoder's arguments" weights_arg --set decoder.weights=int8
expect_fail "no --weights argument by default" weights_arg
finish
