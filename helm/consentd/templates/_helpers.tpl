{{/* Names, labels and the shared pieces of the pod specs. */}}

{{- define "consentd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "consentd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "consentd.instanceLabels" -}}
app.kubernetes.io/name: {{ include "consentd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The serving pods. The component keeps the migration Job's pod out of the
Service, the PodDisruptionBudget and the Deployment's selector.
*/}}
{{- define "consentd.selectorLabels" -}}
{{ include "consentd.instanceLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "consentd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "consentd.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "consentd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "consentd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "consentd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Seconds in a duration of the schema's form (a number and one of ms, s, m, h,
d), rounded up, so the grace period can be derived from the settings.
*/}}
{{- define "consentd.seconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^(0|[1-9][0-9]*)(ms|s|m|h|d)$" $d) }}
{{- fail (printf "duration %q: write a number and one of ms, s, m, h, d (e.g. \"5s\")" $d) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $d | int64 }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" $d) $d }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ mul $n 86400 }}
{{- end }}
{{- end }}

{{/*
The pod's grace period: long enough for the shutdown delay (still serving
while endpoints drain) plus the drain budget (in-flight calls, streams and
the write queue), or the kubelet's SIGKILL cuts the drain short.
*/}}
{{- define "consentd.terminationGracePeriodSeconds" -}}
{{- $delay := include "consentd.seconds" .Values.config.shutdownDelay | int64 }}
{{- $drain := include "consentd.seconds" .Values.config.drainTimeout | int64 }}
{{- $needed := add $delay $drain }}
{{- $set := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $set }}
{{- add $needed .Values.terminationGraceMarginSeconds }}
{{- else if lt (int64 $set) $needed }}
{{- fail (printf "terminationGracePeriodSeconds %d is below config.shutdownDelay (%s) + config.drainTimeout (%s) = %ds: the kubelet would kill consentd before it drains; raise it or leave it empty to derive it" (int64 $set) .Values.config.shutdownDelay .Values.config.drainTimeout $needed) }}
{{- else }}
{{- int64 $set }}
{{- end }}
{{- end }}

{{/* The hardened container security context, the same for serve and migrate. */}}
{{- define "consentd.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "consentd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "consentd.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.databaseUrl.name | quote }}
      key: {{ .Values.secrets.databaseUrl.key | quote }}
{{- end }}

{{- define "consentd.grpcProbe" -}}
{{- if .root.Values.tls.enabled -}}
tcpSocket:
  port: 50051
{{- else -}}
grpc:
  port: 50051
  service: {{ .service | quote }}
{{- end }}
{{- end }}

{{/* An IPv6 host goes in brackets in a socket address. */}}
{{- define "consentd.hostForAddress" -}}
{{- if contains ":" . }}{{ printf "[%s]" . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
OTEL_RESOURCE_ATTRIBUTES: the pod and namespace (expanded by the kubelet
from the env entries above it) and the user's attributes, in key order.
*/}}
{{- define "consentd.resourceAttributes" -}}
{{- $attrs := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE)" (printf "service.version=%s" .Chart.AppVersion) }}
{{- range $k, $v := .Values.tracing.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/* Settings that cannot work together are refused before anything is applied. */}}
{{- define "consentd.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: an existing kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.tls.clientCaSecret.name (not .Values.tls.enabled) }}
{{- fail "tls.clientCaSecret is set but tls.enabled is false: mutual TLS needs TLS" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: there is nothing to scrape" }}
{{- end }}
{{- if and .Values.networkPolicy.egress.enabled (not .Values.networkPolicy.enabled) }}
{{- fail "networkPolicy.egress.enabled needs networkPolicy.enabled" }}
{{- end }}
{{- end }}
