{{/* The three stages, in the order the front calls them. */}}
{{- define "smolserve.stages" -}}
{{- list "preprocess" "vision" "decoder" | toJson -}}
{{- end }}

{{- define "smolserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-smolserve, or the release name when it already contains the chart name. */}}
{{- define "smolserve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a stage's objects: dict "root" $ "stage" "vision" */}}
{{- define "smolserve.stageName" -}}
{{- printf "%s-%s" (include "smolserve.fullname" .root) .stage | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The headless Service of a stage (vision, decoder). */}}
{{- define "smolserve.headlessName" -}}
{{- printf "%s-%s-headless" (include "smolserve.fullname" .root) .stage | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "smolserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "smolserve.labels" -}}
helm.sh/chart: {{ include "smolserve.chart" . }}
{{ include "smolserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: smolserve
{{- end }}

{{- define "smolserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smolserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* dict "root" $ "stage" "vision" */}}
{{- define "smolserve.stageLabels" -}}
{{ include "smolserve.labels" .root }}
app.kubernetes.io/component: {{ .stage }}
{{- end }}

{{- define "smolserve.stageSelectorLabels" -}}
{{ include "smolserve.selectorLabels" .root }}
app.kubernetes.io/component: {{ .stage }}
{{- end }}

{{- define "smolserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smolserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a stage: dict "root" $ "stage" "vision" */}}
{{- define "smolserve.image" -}}
{{- $v := index .root.Values .stage -}}
{{- $repo := $v.image.repository | default (printf "%s-%s" .root.Values.image.repository .stage) -}}
{{- $tag := $v.image.tag | default (printf "%s%s" (.root.Values.image.tag | default .root.Chart.AppVersion) .root.Values.image.tagSuffix) -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end }}

{{/* The model PVC's name. */}}
{{- define "smolserve.modelClaim" -}}
{{- .Values.model.pvc.existingClaim | default (printf "%s-models" (include "smolserve.fullname" .)) }}
{{- end }}

{{/* gRPC target of a stage for the front, balanced over pod IPs (headless Service + round_robin). */}}
{{- define "smolserve.target" -}}
{{- $v := index .root.Values .stage -}}
{{- printf "dns:///%s.%s.svc.%s:%d" (include "smolserve.headlessName" .) .root.Release.Namespace .root.Values.clusterDomain (int $v.port) -}}
{{- end }}

{{/* terminationGracePeriodSeconds: explicit, or shutdown grace + preStop sleep + 15 s. */}}
{{- define "smolserve.terminationGrace" -}}
{{- $v := index .root.Values .stage -}}
{{- if $v.terminationGracePeriodSeconds }}
{{- $v.terminationGracePeriodSeconds | int }}
{{- else }}
{{- add (int $v.shutdownGraceSeconds) (int $v.preStopSleepSeconds) 15 }}
{{- end }}
{{- end }}

{{/*
The default download script: fills $HF_HOME/hub with $SMOLSERVE_MODEL (org/name[@revision])
using huggingface_hub; nothing to do when the model is a folder that exists. Preprocess only
needs the tokenizer, chat template and processor files.
*/}}
{{/*
The model-download container's image, command and arguments (dict "root" $ "stage" "vision"):
by default the stage's own image, whose binary downloads --model into $HF_HOME/hub and exits
(--download_only; the PVC Job uses the decoder image); with model.initContainer.script, that
script (sh -c) in model.initContainer.image.
*/}}
{{- define "smolserve.downloadContainer" -}}
{{- $ic := .root.Values.model.initContainer -}}
{{- if $ic.script -}}
image: {{ $ic.image }}
imagePullPolicy: {{ $ic.pullPolicy }}
command: ["sh", "-c"]
args:
  - {{ $ic.script | quote }}
{{- else -}}
image: {{ include "smolserve.image" . }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
command: ["/usr/local/bin/smolserve-{{ .stage }}"]
args: ["--download_only", "--model=$(SMOLSERVE_MODEL)"]
{{- end }}
{{- end }}

{{/* Environment of the download container: dict "root" $ "stage" "vision" */}}
{{- define "smolserve.downloadEnv" -}}
# The stage images set HF_HUB_OFFLINE=1 (the stages never download); this container does.
- name: HF_HUB_OFFLINE
  value: "0"
- name: SMOLSERVE_MODEL_FILES
  value: {{ if eq .stage "preprocess" }}tokenizer{{ else }}all{{ end }}
- name: HOME
  value: /tmp
{{- with .root.Values.model.initContainer.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Autoscaling signals of a stage (dict "root" $ "stage" "vision"), as a JSON list of
{metric: <custom metric served by prometheus-adapter>, target: <per pod>, query: <PromQL summed
over the stage's pods, for KEDA>}. The adapter rules are in files/prometheus-adapter-rules.yaml.
*/}}
{{- define "smolserve.scalingSignals" -}}
{{- $v := index .root.Values .stage -}}
{{- $sel := printf "namespace=%q,pod=~%q" .root.Release.Namespace (printf "%s-[a-z0-9]+-[a-z0-9]+" (include "smolserve.stageName" .)) -}}
{{- $out := list -}}
{{- if eq .stage "preprocess" -}}
{{- $out = append $out (dict "metric" "smolserve_num_requests_running" "target" (toString $v.autoscaling.requestsRunningPerPod) "query" (printf "sum(smolserve:num_requests_running{%s})" $sel)) -}}
{{- else if eq .stage "vision" -}}
{{- $out = append $out (dict "metric" "smolserve_tiles_in_flight" "target" (toString $v.autoscaling.tilesInFlightPerPod) "query" (printf "sum(smolserve:tiles_in_flight{%s})" $sel)) -}}
{{- $out = append $out (dict "metric" "smolserve_num_requests_waiting" "target" (toString $v.autoscaling.requestsWaitingPerPod) "query" (printf "sum(smolserve:num_requests_waiting{%s})" $sel)) -}}
{{- else if eq .stage "decoder" -}}
{{- $out = append $out (dict "metric" "smolserve_requests_in_system" "target" (toString $v.autoscaling.requestsInSystemPerPod) "query" (printf "sum(smolserve:num_requests_running{%s}) + sum(smolserve:num_requests_waiting{%s})" $sel $sel)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end }}

{{/* A number for a flag: integral values without exponent (Helm reads YAML numbers as float64). */}}
{{- define "smolserve.num" -}}
{{- if kindIs "float64" . }}{{ if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* The Secret with ca.crt/tls.crt/tls.key for a stage's internal mutual TLS, or "": dict "root" $ "stage" "vision" */}}
{{- define "smolserve.internalTlsSecret" -}}
{{- $t := .root.Values.tls.internal -}}
{{- index ($t.stageSecrets | default dict) .stage | default $t.existingSecret | default "" -}}
{{- end }}

{{/* "true" when a stage's gRPC port requires TLS (front: tls.public; vision/decoder: internal mTLS). */}}
{{- define "smolserve.grpcTls" -}}
{{- if eq .stage "preprocess" -}}
{{- if .root.Values.tls.public.existingSecret }}true{{ end -}}
{{- else -}}
{{- if include "smolserve.internalTlsSecret" . }}true{{ end -}}
{{- end -}}
{{- end }}

{{/*
The plaintext health port of a stage (--health_port, container port `health`), or "":
dict "root" $ "stage" "vision". Only when the stage's gRPC port needs TLS (the kubelet's gRPC
probe speaks plaintext only), healthPort is on (> 0) and the probes are gRPC ones
(probes.handler auto or grpc, no probes.custom). Without TLS the probes use the gRPC port.
*/}}
{{- define "smolserve.healthPort" -}}
{{- $v := index .root.Values .stage -}}
{{- if and (include "smolserve.grpcTls" .) (gt (int ($v.healthPort | default 0)) 0) (has $v.probes.handler (list "auto" "grpc")) (not $v.probes.custom) -}}
{{- $v.healthPort | int -}}
{{- end -}}
{{- end }}

{{/*
The handler of a probe: dict "root" $ "stage" "vision" "probe" "startup|readiness|liveness".
probes.custom wins; the front's readiness may use GET /health (preprocess.http.readinessProbe);
probes.handler tcp checks TCP on the gRPC port; otherwise native gRPC health: on the plaintext
health port when the gRPC port needs TLS, else on the gRPC port. With TLS and healthPort 0,
auto falls back to a TCP check (validate.yaml refuses grpc then).
*/}}
{{- define "smolserve.probeHandler" -}}
{{- $v := index .root.Values .stage -}}
{{- $tls := include "smolserve.grpcTls" . -}}
{{- $health := include "smolserve.healthPort" . -}}
{{- if $v.probes.custom -}}
{{ toYaml $v.probes.custom }}
{{- else if and (eq .stage "preprocess") (eq .probe "readiness") $v.http.enabled $v.http.readinessProbe -}}
httpGet: {path: /health, port: http, scheme: {{ if .root.Values.tls.public.existingSecret }}HTTPS{{ else }}HTTP{{ end }}}
{{- else if eq $v.probes.handler "tcp" -}}
tcpSocket: {port: grpc}
{{- else if $health -}}
grpc: {port: {{ $health }}}
{{- else if $tls -}}
tcpSocket: {port: grpc}
{{- else -}}
grpc: {port: {{ $v.port | int }}}
{{- end -}}
{{- end }}

{{/* Secret volume file mode: 0440 when fsGroup owns the files, else the default 0644. */}}
{{- define "smolserve.secretMode" -}}
{{- if .Values.podDefaults.podSecurityContext.fsGroup }}288{{ else }}420{{ end -}}
{{- end }}
