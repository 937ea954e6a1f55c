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
fails_with() {  # MESSAGE COMMAND...: the command fails and says MESSAGE
  local msg="$1" out; shift
  if out="$("$@" 2>&1)"; then printf 'expected a failure, but it succeeded:\n%s\n' "$out"; return 1; fi
  grep -qF -- "$msg" <<<"$out" || { printf 'failed, but without "%s":\n%s\n' "$msg" "$out"; return 1; }
  echo "failed as expected: $msg"
}
count_is() {  # N PATTERN FILE: grep -c
  local n; n="$(grep -c -e "$2" "$3")"
  [ "$n" = "$1" ] || { echo "expected $1 lines matching '$2' in $3, found $n"; return 1; }
}
PROM_NS='ns:kubernetes.io/metadata.name=monitoring'
SECRET_FLAGS=api_keys_file,tls_cert,tls_key,tls_ca,tls_client_ca,downstream_tls_ca,downstream_tls_cert,downstream_tls_key
# Generation parameters: the front checks them before decoding media, the decoder again; the
# validator also checks that both get the same values (after $(VAR) expansion).
GEN_FLAGS=max_new_tokens_limit,max_stop_strings,max_stop_string_bytes

# 1. default values (HPA autoscaling, model PVC, Grafana dashboard ConfigMap)
check "helm template (default values)" render default
check "validate default" "${VALIDATE[@]}" "$R/default.yaml" --dump-promql "$R/default-promql.yaml" \
  --adapter-values "$DEPLOY/k8s/prometheus-adapter-values.yaml" \
  --expect-count Deployment=3 --expect-count Service=3 --expect-count PodDisruptionBudget=3 \
  --expect-count HorizontalPodAutoscaler=3 --expect-count ScaledObject=0 --expect-count PersistentVolumeClaim=1 \
  --expect-count ConfigMap=3 --expect-gpu "" --expect-count NetworkPolicy=3 --expect-count Ingress=0 \
  --expect-flag preprocess=http_port,media_url_fetch --reject-flag "*=reflection" --reject-flag "*=$SECRET_FLAGS" \
  --expect-flag "preprocess=$GEN_FLAGS,max_conversations,max_text_bytes,conversation_threads" \
  --expect-flag "decoder=$GEN_FLAGS" --reject-flag "vision=$GEN_FLAGS" \
  --reject-flag "*=health_port" --reject-port "*=health" --expect-probes "*=grpc:grpc" \
  --expect-ingress vision/grpc=pods:preprocess --expect-ingress decoder/grpc=pods:preprocess \
  --expect-ingress preprocess/grpc=any --expect-ingress preprocess/http=any \
  --expect-ingress "preprocess/metrics=$PROM_NS" --expect-ingress "vision/metrics=$PROM_NS" --expect-ingress "decoder/metrics=$PROM_NS"
check "promtool check rules (prometheus-adapter queries)" promtool check rules "$R/default-promql.yaml"
check "front targets the headless Services via dns:/// (round_robin)" grep -q \
  -e "--vision_target=dns:///smolserve-vision-headless.$NS.svc.cluster.local:50052" "$R/default.yaml"
check "decoder target" grep -q -e "--decoder_target=dns:///smolserve-decoder-headless.$NS.svc.cluster.local:50053" "$R/default.yaml"
check "Grafana dashboard ConfigMap has the sidecar label" grep -q 'grafana_dashboard: "1"' "$R/default.yaml"
check "native gRPC probes" count_is 9 'grpc: {port: 5005[123]}' "$R/default.yaml"
check "generation limits: one ConfigMap key each, the same for the front and the decoder" bash -c \
  "grep -q 'SMOLSERVE_MAX_NEW_TOKENS_LIMIT: \"4096\"' '$R/default.yaml' && grep -q 'SMOLSERVE_MAX_STOP_STRINGS: \"4\"' '$R/default.yaml' \
   && grep -q 'SMOLSERVE_MAX_STOP_STRING_BYTES: \"256\"' '$R/default.yaml' \
   && [ \"\$(grep -cE -e '--max_(new_tokens_limit|stop_strings|stop_string_bytes)=\\\$\\(SMOLSERVE_MAX_' '$R/default.yaml')\" = 6 ]"
check "front request limits in the ConfigMap" bash -c \
  "grep -q 'PREPROCESS_MAX_CONVERSATIONS: \"16\"' '$R/default.yaml' && grep -q 'PREPROCESS_MAX_TEXT_BYTES: \"1048576\"' '$R/default.yaml' \
   && grep -q 'PREPROCESS_CONVERSATION_THREADS: \"16\"' '$R/default.yaml'"
check "front: HTTP API on port 8000 (--http_port, container and Service port named http)" bash -c \
  "grep -q -e '--http_port=8000' '$R/default.yaml' && [ \"\$(grep -A1 -e '- name: http\$' '$R/default.yaml' | grep -cE 'port: 8000|containerPort: 8000')\" = 2 ]"
check "media URL fetching explicit, no allow-list by default" bash -c \
  "grep -q -e '--media_url_fetch=true' '$R/default.yaml' && ! grep -q -e '--media_url_allow' '$R/default.yaml'"

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

# 5. the public API: API keys, TLS with client certificates, Ingress, tenant limits, media policy
check "helm template (API keys, public TLS + client CA, Ingress, limits)" render public \
  --set apiKeys.existingSecret=smolserve-api-keys --set tls.public.existingSecret=smolserve-public-tls \
  --set tls.public.clientCa.existingSecret=smolserve-client-ca \
  --set ingress.enabled=true --set ingress.className=nginx \
  --set 'ingress.tls[0].secretName=smolserve-ingress-tls' --set 'ingress.tls[0].hosts[0]=smolserve.example.com' \
  --set preprocess.tenantLimits.maxConcurrent=8 --set preprocess.tenantLimits.requestsPerMinute=120 \
  --set 'preprocess.mediaUrl.allow={images.example.com,10.20.0.0/16}' --set preprocess.mediaUrl.maxRedirects=2 \
  --set preprocess.mediaUrl.timeoutSeconds=15 --set preprocess.http.maxBodyBytes=67108864 \
  --set preprocess.http.requestTimeoutSeconds=600 --set preprocess.defaultDeadlineSeconds=300 \
  --set preprocess.http.maxConnections=1024 --set preprocess.http.maxConcurrent=256 \
  --set preprocess.http.idleTimeoutSeconds=75 --set preprocess.servedModelName=smolvlm2 \
  --set limits.decoder.maxNewTokensLimit=2048 --set limits.decoder.maxStopStrings=8 --set limits.decoder.maxStopStringBytes=128 \
  --set limits.preprocess.maxConversations=4 --set limits.preprocess.maxTextBytes=262144 --set limits.preprocess.conversationThreads=8
check "validate public API" "${VALIDATE[@]}" "$R/public.yaml" --expect-count Ingress=1 --expect-count NetworkPolicy=3 \
  --expect-flag "preprocess=health_port,$GEN_FLAGS" --expect-port preprocess=health --expect-probes preprocess=grpc:health \
  --reject-flag vision=health_port --reject-flag decoder=health_port --reject-port vision=health --reject-port decoder=health \
  --expect-probes vision=grpc:grpc --expect-probes decoder=grpc:grpc --expect-ingress preprocess/health=none \
  --expect-flag preprocess=api_keys_file,tls_cert,tls_key,tls_client_ca,tenant_max_concurrent,tenant_requests_per_minute \
  --expect-flag preprocess=media_url_allow,media_url_max_redirects,media_url_timeout_s,http_max_body_bytes,http_request_timeout_s \
  --expect-flag preprocess=default_deadline_s,served_model_name,http_max_connections,http_max_concurrent,http_idle_timeout_s \
  --reject-flag preprocess=downstream_tls_ca,reflection --reject-flag vision=tls_cert,tls_ca --reject-flag decoder=tls_cert,tls_ca
check "API keys file from the Secret, read-only" bash -c \
  "grep -q -e '--api_keys_file=/etc/smolserve/api-keys/api-keys' '$R/public.yaml' && grep -q 'secretName: smolserve-api-keys' '$R/public.yaml'"
check "media allow-list joined with commas" grep -q -e '"--media_url_allow=images.example.com,10.20.0.0/16"' "$R/public.yaml"
check "Ingress routes /v1 to the front's http port, TLS from its Secret" bash -c \
  "grep -q 'ingressClassName: nginx' '$R/public.yaml' && grep -A3 'name: smolserve-preprocess$' '$R/public.yaml' | grep -q 'name: http' && grep -q 'secretName: smolserve-ingress-tls' '$R/public.yaml'"
check "TLS on the front's port: gRPC probes on its plaintext health port 8090, vision/decoder on their gRPC ports" bash -c \
  "grep -q -e '--health_port=8090' '$R/public.yaml' && [ \"\$(grep -c 'grpc: {port: 8090}' '$R/public.yaml')\" = 3 ] \
   && [ \"\$(grep -c 'grpc: {port: 5005[23]}' '$R/public.yaml')\" = 6 ] && ! grep -q 'tcpSocket' '$R/public.yaml'"
check "changed generation limits reach the ConfigMap (front and decoder read the same keys)" bash -c \
  "grep -q 'SMOLSERVE_MAX_NEW_TOKENS_LIMIT: \"2048\"' '$R/public.yaml' && grep -q 'SMOLSERVE_MAX_STOP_STRINGS: \"8\"' '$R/public.yaml' \
   && grep -q 'SMOLSERVE_MAX_STOP_STRING_BYTES: \"128\"' '$R/public.yaml' && grep -q 'PREPROCESS_MAX_CONVERSATIONS: \"4\"' '$R/public.yaml' \
   && grep -q 'PREPROCESS_MAX_TEXT_BYTES: \"262144\"' '$R/public.yaml' && grep -q 'PREPROCESS_CONVERSATION_THREADS: \"8\"' '$R/public.yaml'"
check "the health port is in no Service" bash -c "! grep -q 'targetPort: health' '$R/public.yaml'"
check "Service http port speaks https with public TLS" bash -c "grep -A4 -e '- name: http\$' '$R/public.yaml' | grep -q 'appProtocol: https'"

# 6. internal mutual TLS, front readiness by GET /health
check "helm template (internal mTLS, HTTP readiness probe)" render mtls \
  --set tls.internal.existingSecret=smolserve-internal-tls --set preprocess.http.readinessProbe=true
check "validate internal mTLS" "${VALIDATE[@]}" "$R/mtls.yaml" \
  --expect-flag vision=tls_cert,tls_key,tls_ca --expect-flag decoder=tls_cert,tls_key,tls_ca \
  --expect-flag preprocess=downstream_tls_ca,downstream_tls_cert,downstream_tls_key \
  --reject-flag preprocess=tls_cert,tls_key,tls_ca,api_keys_file --reject-flag "*=reflection" \
  --expect-ingress vision/grpc=pods:preprocess --expect-ingress decoder/grpc=pods:preprocess \
  --expect-flag vision=health_port --expect-flag decoder=health_port --expect-port vision=health --expect-port decoder=health \
  --expect-probes vision=grpc:health --expect-probes decoder=grpc:health \
  --expect-ingress vision/health=none --expect-ingress decoder/health=none \
  --reject-flag preprocess=health_port --reject-port preprocess=health --expect-probes preprocess=grpc:grpc,http:http/health,grpc:grpc
check "mTLS files on one read-only Secret volume" bash -c \
  "[ \"\$(grep -A2 -e '- name: tls-internal\$' '$R/mtls.yaml' | grep -c 'readOnly: true')\" = 3 ] && [ \"\$(grep -c 'secretName: smolserve-internal-tls' '$R/mtls.yaml')\" = 3 ]"
check "front readiness: GET /health on the http port; vision/decoder: gRPC probes on the plaintext health port" bash -c \
  "grep -q 'httpGet: {path: /health, port: http, scheme: HTTP}' '$R/mtls.yaml' && ! grep -q 'tcpSocket' '$R/mtls.yaml' \
   && [ \"\$(grep -c 'grpc: {port: 8090}' '$R/mtls.yaml')\" = 6 ] && [ \"\$(grep -c -e '--health_port=8090' '$R/mtls.yaml')\" = 2 ] \
   && [ \"\$(grep -c 'grpc: {port: 50051}' '$R/mtls.yaml')\" = 2 ]"
# Per-stage Secrets, TLS on every stage's gRPC port (public TLS too): every stage probed on its
# health port (vision's moved), which the nodes in networkPolicy.health.from may reach.
check "per-stage mTLS Secrets" render mtls-stage --set tls.internal.stageSecrets.preprocess=front-mtls \
  --set tls.internal.stageSecrets.vision=vision-mtls --set tls.internal.stageSecrets.decoder=decoder-mtls \
  --set tls.public.existingSecret=smolserve-public-tls --set vision.healthPort=9190 \
  --set 'networkPolicy.health.from[0].ipBlock.cidr=10.0.0.0/16'
check "validate per-stage mTLS Secrets" "${VALIDATE[@]}" "$R/mtls-stage.yaml" --expect-flag vision=tls_ca --expect-flag preprocess=downstream_tls_cert \
  --expect-flag "*=health_port" --expect-port "*=health" --expect-probes "*=grpc:health" \
  --expect-ingress preprocess/health=ip:10.0.0.0/16 --expect-ingress vision/health=ip:10.0.0.0/16 \
  --expect-ingress decoder/health=ip:10.0.0.0/16 --expect-ingress vision/grpc=pods:preprocess
check "healthPort per stage" bash -c \
  "grep -q -e '--health_port=9190' '$R/mtls-stage.yaml' && [ \"\$(grep -c 'grpc: {port: 9190}' '$R/mtls-stage.yaml')\" = 3 ] \
   && [ \"\$(grep -c 'grpc: {port: 8090}' '$R/mtls-stage.yaml')\" = 6 ]"
# mTLS without health ports: healthPort 0 (auto falls back to TCP), probes.handler tcp.
check "helm template (internal mTLS, vision healthPort 0, decoder tcp probes)" render mtls-tcp \
  --set tls.internal.existingSecret=smolserve-internal-tls --set vision.healthPort=0 --set decoder.probes.handler=tcp
check "validate mTLS with TCP probes" "${VALIDATE[@]}" "$R/mtls-tcp.yaml" --reject-flag "*=health_port" --reject-port "*=health" \
  --expect-probes vision=tcp:grpc --expect-probes decoder=tcp:grpc --expect-probes preprocess=grpc:grpc

# 7. NetworkPolicy off, HTTP API off, reflection on for vision only
check "helm template (no NetworkPolicy, no HTTP API, vision reflection)" render open \
  --set networkPolicy.enabled=false --set preprocess.http.enabled=false --set vision.reflection=true
check "validate open" "${VALIDATE[@]}" "$R/open.yaml" --expect-count NetworkPolicy=0 \
  --expect-flag vision=reflection --reject-flag preprocess=reflection --reject-flag decoder=reflection \
  --expect-ingress vision/grpc=any --expect-ingress decoder/grpc=any --expect-ingress vision/metrics=any \
  --reject-flag "*=health_port" --reject-port "*=health"
check "--http_port=-1 and no http port when the HTTP API is off" bash -c \
  "grep -q -e '--http_port=-1' '$R/open.yaml' && ! grep -q -e '- name: http\$' '$R/open.yaml'"

# 8. NetworkPolicy restricted: front only from the ingress controller, custom scrapers, egress
cat > "$R/netpol-values.yaml" <<'EOF'
networkPolicy:
  front:
    from:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}
  metrics:
    from:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}
        podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
  egress:
    enabled: true
EOF
check "helm template (restricted NetworkPolicy with egress; front and decoder reflection)" render netpol \
  -f "$R/netpol-values.yaml" --set preprocess.reflection=true --set decoder.reflection=true
check "validate restricted NetworkPolicy" "${VALIDATE[@]}" "$R/netpol.yaml" --expect-count NetworkPolicy=3 \
  --expect-flag preprocess=reflection --expect-flag decoder=reflection --reject-flag vision=reflection \
  --expect-ingress preprocess/grpc=ns:kubernetes.io/metadata.name=ingress-nginx \
  --expect-ingress preprocess/http=ns:kubernetes.io/metadata.name=ingress-nginx \
  --expect-ingress vision/grpc=pods:preprocess \
  --expect-ingress "decoder/metrics=ns:kubernetes.io/metadata.name=observability&pods:app.kubernetes.io/name=prometheus"
check "egress: DNS everywhere, front to vision/decoder and public media addresses only" bash -c \
  "[ \"\$(grep -c -- '- Egress' '$R/netpol.yaml')\" = 3 ] && [ \"\$(grep -c 'port: 53, protocol: UDP' '$R/netpol.yaml')\" = 3 ] \
   && [ \"\$(grep -c 'cidr: 0.0.0.0/0' '$R/netpol.yaml')\" = 1 ] && grep -q '10.0.0.0/8' '$R/netpol.yaml'"

# The validator must not be vacuous: a typo, a string port and a broken selector fail it.
sed -e 's/readOnlyRootFilesystem/readOnlyRootFileSystem/' -e '0,/containerPort: 50052/s//containerPort: "50052"/' \
  -e '0,/app.kubernetes.io\/component: decoder/s//app.kubernetes.io\/component: decodr/' "$R/default.yaml" > "$R/broken.yaml"
expect_fail "validator rejects a broken manifest" "${VALIDATE[@]}" "$R/broken.yaml"
# ... nor are the security checks.
sed -e '/- name: tls-internal$/{n;n;s/readOnly: true/readOnly: false/}' "$R/mtls.yaml" > "$R/broken-ro.yaml"
check "validator: a writable key mount" fails_with "(/etc/smolserve/tls/internal) is not readOnly" "${VALIDATE[@]}" "$R/broken-ro.yaml"
sed -e '/--downstream_tls_cert=/d' -e '/--downstream_tls_key=/d' "$R/mtls.yaml" > "$R/broken-client.yaml"
check "validator: a front without a client certificate for vision/decoder" fails_with \
  "requires client certificates (--tls_ca) but the front has no --downstream_tls_cert" "${VALIDATE[@]}" "$R/broken-client.yaml"
sed -e 's|--tls_ca=/etc/smolserve/tls/internal/ca.crt|--tls_ca=/tmp/ca.crt|' "$R/mtls.yaml" > "$R/broken-path.yaml"
check "validator: a key flag off the Secret volume" fails_with "--tls_ca: volume tmp is not a Secret" "${VALIDATE[@]}" "$R/broken-path.yaml"
sed -e 's|SMOLSERVE_DTYPE: "auto"|SMOLSERVE_DTYPE: "-----BEGIN PRIVATE KEY-----"|' "$R/default.yaml" > "$R/broken-pem.yaml"
check "validator: key material in a ConfigMap" fails_with "holds a PEM key or certificate" "${VALIDATE[@]}" "$R/broken-pem.yaml"
# (the front comes first in helm's output: in mtls-stage the first health probe is the front's.)
sed -e '0,/grpc: {port: 8090}/s//grpc: {port: 50051}/' "$R/mtls-stage.yaml" > "$R/broken-probe.yaml"
check "validator: a gRPC probe on a TLS port" fails_with "which needs TLS (--tls_cert): the kubelet's gRPC probe speaks plaintext" \
  "${VALIDATE[@]}" "$R/broken-probe.yaml"
sed -e '0,/--health_port=8090/s//--health_port=8091/' "$R/mtls-stage.yaml" > "$R/broken-health.yaml"
check "validator: --health_port off the health container port" fails_with "--health_port=8091 but the health containerPort is 8090" \
  "${VALIDATE[@]}" "$R/broken-health.yaml"
sed -e '0,/targetPort: metrics/s//targetPort: health/' "$R/mtls-stage.yaml" > "$R/broken-health-svc.yaml"
check "validator: a Service exposing the health port" fails_with "exposes the plaintext health port" "${VALIDATE[@]}" "$R/broken-health-svc.yaml"
check "validator: probe expectations are exact" fails_with "probes (startup,readiness,liveness) are grpc:health,grpc:health,grpc:health, expected grpc:grpc" \
  "${VALIDATE[@]}" "$R/mtls-stage.yaml" --expect-probes vision=grpc:grpc
sed -e '0,/--max_stop_strings=$(SMOLSERVE_MAX_STOP_STRINGS)/s//--max_stop_strings=5/' "$R/default.yaml" > "$R/broken-gen.yaml"
check "validator: the front and the decoder with different stop-string limits" fails_with \
  "--max_stop_strings: the front (smolserve-preprocess) has 5, the decoder (smolserve-decoder) 4" "${VALIDATE[@]}" "$R/broken-gen.yaml"
sed -e '/--max_new_tokens_limit=/{x;s/^/x/;/^x\{2\}$/{x;d};x}' "$R/default.yaml" > "$R/broken-gen2.yaml"
check "validator: a decoder without --max_new_tokens_limit" fails_with "--max_new_tokens_limit: the front (smolserve-preprocess) and the decoder (smolserve-decoder) must both get it, with the same value (the decoder has none)" \
  "${VALIDATE[@]}" "$R/broken-gen2.yaml"
check "validator: NetworkPolicy expectations are exact" fails_with 'vision/grpc is reachable from "pods:preprocess", expected "any"' \
  "${VALIDATE[@]}" "$R/default.yaml" --expect-ingress vision/grpc=any
# (NetworkPolicies come first in helm's output: the first such line is vision's `from` peer.)
sed -e '0,/^              app.kubernetes.io\/component: preprocess$/s//              app.kubernetes.io\/component: preprocesss/' "$R/default.yaml" > "$R/broken-np.yaml"
check "validator: a NetworkPolicy peer naming no pod" fails_with "matches no rendered Deployment" "${VALIDATE[@]}" "$R/broken-np.yaml"
finish
