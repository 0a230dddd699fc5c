{{/* Names and labels shared by every template. */}}

{{- define "kube-node-ping.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: "<release>-<chart>", or the release name alone when it already holds the chart's. */}}
{{- define "kube-node-ping.fullname" -}}
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

{{- define "kube-node-ping.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: fixed for the life of a release (a DaemonSet's selector is immutable). */}}
{{- define "kube-node-ping.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-node-ping.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-node-ping.labels" -}}
helm.sh/chart: {{ include "kube-node-ping.chart" . }}
{{ include "kube-node-ping.selectorLabels" . }}
app.kubernetes.io/version: {{ include "kube-node-ping.version" . | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: kube-node-ping
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-node-ping.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-node-ping.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-node-ping.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is given. */}}
{{- define "kube-node-ping.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Where the external-targets ConfigMap is mounted; the agent re-reads the file when it changes. */}}
{{- define "kube-node-ping.targetsDir" -}}/etc/kube-node-ping/targets{{- end }}

{{/*
The container's user and privileges. One place, read by the DaemonSet and by
test/image.test.ts, which runs the agent under exactly these with setpriv.
  nonRoot: uid 65532; CAP_NET_RAW only in the bounding set, fping gains it from
           its file capability at exec, which no_new_privs would cancel: so
           allowPrivilegeEscalation stays true (the image has no setuid files).
  root:    uid 0 whose only capability is NET_RAW; no_new_privs on.
*/}}
{{- define "kube-node-ping.podSecurityContext" -}}
{{- if eq .Values.securityMode "root" }}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
{{- else }}
runAsUser: 65532
runAsGroup: 65532
runAsNonRoot: true
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kube-node-ping.containerSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: {{ ne .Values.securityMode "root" }}
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_RAW]
{{- end }}
