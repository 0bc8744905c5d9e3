{{/* The chart's name. */}}
{{- define "mediastore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's resources. */}}
{{- define "mediastore.fullname" -}}
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

{{/* Labels of every resource. */}}
{{- define "mediastore.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mediastore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "mediastore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mediastore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account's name. */}}
{{- define "mediastore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mediastore.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* True in replicated mode. */}}
{{- define "mediastore.replicated" -}}
{{- if eq .Values.mode "replicated" }}true{{- end }}
{{- end }}

{{/*
Checks what replicated mode needs; fails the render with a message that
says what to set.
*/}}
{{- define "mediastore.validate" -}}
{{- if eq .Values.mode "replicated" }}
{{- if not .Values.database.existingSecret }}
{{- fail "mode=replicated needs database.existingSecret: a Secret holding the PostgreSQL URL every replica shares" }}
{{- end }}
{{- if not .Values.s3.bucket }}
{{- fail "mode=replicated needs s3.bucket (and s3.existingSecret): replicas share their blobs through an S3-compatible bucket" }}
{{- end }}
{{- if not .Values.s3.existingSecret }}
{{- fail "mode=replicated needs s3.existingSecret: a Secret holding the bucket's access key id and secret access key" }}
{{- end }}
{{- if and .Values.http.enabled (not .Values.urlKeys.existingSecret) }}
{{- fail "mode=replicated with http.enabled needs urlKeys.existingSecret: every replica must sign and verify media URLs with the same keys" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret: a Secret of type kubernetes.io/tls" }}
{{- end }}
{{- end }}

{{/* How the kubelet checks the server: grpc.health.v1 on the gRPC port, or
only the port when it speaks TLS (the kubelet's gRPC probe cannot). */}}
{{- define "mediastore.probe" -}}
{{- if .Values.tls.enabled -}}
tcpSocket:
  port: grpc
{{- else -}}
grpc:
  port: {{ .Values.service.grpcPort }}
{{- end -}}
{{- end }}
