{{/* Names and labels. */}}
{{- define "agent-sre.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-sre.fullname" -}}
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

{{- define "agent-sre.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-sre.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "agent-sre.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "agent-sre.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agent-sre.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent-sre.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agent-sre.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "agent-sre.adminSecretName" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else if .Values.adminToken.value }}
{{- printf "%s-admin" (include "agent-sre.fullname" .) }}
{{- end }}
{{- end }}

{{/* true when the Prometheus Operator's API is served, or forced by the value. */}}
{{- define "agent-sre.monitoringEnabled" -}}
{{- $value := index . 0 }}{{- $root := index . 1 }}
{{- if kindIs "bool" $value }}
{{- if $value }}true{{ end }}
{{- else if $root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true
{{- end }}
{{- end }}

{{/*
The daemon's configuration: .Values.config with the listener endpoints taken from .Values.ports.
Rendered as JSON (valid YAML) so every "${VAR:-}" placeholder stays a quoted string: an
unquoted ${VAR:-} would expand to nothing and then read as YAML null.
*/}}
{{- define "agent-sre.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $p := .Values.ports }}
{{- $receivers := $config.receivers | default dict }}
{{- $otlp := $receivers.otlp | default dict }}
{{- if (index $p "otlp-grpc").enabled }}
{{- $_ := set $otlp "grpc" (merge (dict) ($otlp.grpc | default dict)) }}
{{- $_ := set $otlp.grpc "endpoint" (printf "0.0.0.0:%v" (index $p "otlp-grpc").containerPort) }}
{{- else }}
{{- $_ := set $otlp "grpc" nil }}
{{- end }}
{{- if (index $p "otlp-http").enabled }}
{{- $_ := set $otlp "http" (merge (dict) ($otlp.http | default dict)) }}
{{- $_ := set $otlp.http "endpoint" (printf "0.0.0.0:%v" (index $p "otlp-http").containerPort) }}
{{- else }}
{{- $_ := set $otlp "http" nil }}
{{- end }}
{{- $_ := set $receivers "otlp" $otlp }}
{{- $_ := set $config "receivers" $receivers }}
{{- $exporters := $config.exporters | default dict }}
{{- $_ := set $exporters "prometheus" (merge (dict) ($exporters.prometheus | default dict)) }}
{{- $_ := set $exporters.prometheus "endpoint" (printf "0.0.0.0:%v" $p.metrics.containerPort) }}
{{- $_ := set $config "exporters" $exporters }}
{{- $proxy := $config.proxy | default dict }}
{{- $_ := set $proxy "endpoint" (printf "0.0.0.0:%v" $p.proxy.containerPort) }}
{{- $_ := set $config "proxy" $proxy }}
{{- $admin := $config.admin | default dict }}
{{- $_ := set $admin "endpoint" (printf "%s:%v" (ternary "0.0.0.0" "127.0.0.1" (include "agent-sre.adminOnNetwork" . | eq "true")) $p.admin.containerPort) }}
{{- $_ := set $config "admin" $admin }}
{{- toPrettyJson $config }}
{{- end }}

{{/* The pod's ports, for the container and the Service. */}}
{{- define "agent-sre.servicePortNames" -}}
{{- list "otlp-grpc" "otlp-http" "proxy" "metrics" | toJson }}
{{- end }}

{{/* "true" when the admin API listens on the pod address: asked for, or the operator reloads
through it (the NetworkPolicy then admits only the operator and `networkPolicy.adminFrom`). */}}
{{- define "agent-sre.adminOnNetwork" -}}
{{- if or (eq .Values.ports.admin.enabled true) .Values.operator.enabled }}true{{ end }}
{{- end }}

{{/* The ConfigMap the chart writes: the daemons' file, or with the operator the base it
renders every resource into (the operator then writes the daemons' file). */}}
{{- define "agent-sre.chartConfigMapName" -}}
{{- if .Values.operator.enabled }}
{{- printf "%s-base" (include "agent-sre.fullname" .) }}
{{- else }}
{{- include "agent-sre.fullname" . }}
{{- end }}
{{- end }}

{{- define "agent-sre.operatorName" -}}
{{- printf "%s-operator" (include "agent-sre.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-sre.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-sre.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
