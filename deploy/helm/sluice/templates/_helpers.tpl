{{/* The chart's name, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, with the chart's
name appended unless it holds it already. Truncated so that the longest
suffix the chart appends ("-autoscaler-kafka-tls", 21 characters) still
fits in 63.
*/}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; "component" is set by the caller's dict. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" .root }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{/* Selector labels: name, instance and component (immutable in a Deployment's selector). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sluice.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "sluice.autoscalerServiceAccount" -}}
{{- if .Values.autoscaler.serviceAccount.create }}
{{- default (printf "%s-autoscaler" (include "sluice.fullname" .)) .Values.autoscaler.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.autoscaler.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.workloadNamespace" -}}
{{- default .Release.Namespace .Values.autoscaler.workloadNamespace }}
{{- end }}

{{/* Names of the Secrets: the user's existing one, or the chart's. */}}
{{- define "sluice.kafkaSASLSecret" -}}
{{- default (printf "%s-kafka-sasl" (include "sluice.fullname" .)) .Values.kafka.sasl.existingSecret }}
{{- end }}
{{- define "sluice.kafkaTLSSecret" -}}
{{- default (printf "%s-kafka-tls" (include "sluice.fullname" .)) .Values.kafka.tls.existingSecret }}
{{- end }}
{{- define "sluice.s3Secret" -}}
{{- default (printf "%s-s3" (include "sluice.fullname" .)) .Values.s3.existingSecret }}
{{- end }}
{{- define "sluice.authSecret" -}}
{{- default (printf "%s-gateway-auth" (include "sluice.fullname" .)) .Values.gateway.auth.existingSecret }}
{{- end }}
{{- define "sluice.jwksSecret" -}}
{{- default (printf "%s-gateway-jwks" (include "sluice.fullname" .)) .Values.gateway.jwt.existingSecret }}
{{- end }}
{{- define "sluice.tlsSecret" -}}
{{- default (printf "%s-gateway-tls" (include "sluice.fullname" .)) .Values.gateway.tls.existingSecret }}
{{- end }}

{{/* The Kafka flags every process takes. */}}
{{- define "sluice.kafkaArgs" -}}
- --brokers
- $(SLUICE_BROKERS)
{{- with .Values.kafka.prefix }}
- --prefix
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The Kafka environment every process gets: the brokers, and SASL and TLS
settings (credentials from Secrets only).
*/}}
{{- define "sluice.kafkaEnv" -}}
- name: SLUICE_BROKERS
  value: {{ required "kafka.brokers is required" .Values.kafka.brokers | quote }}
{{- if .Values.kafka.sasl.enabled }}
- name: SLUICE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: SLUICE_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "sluice.kafkaSASLSecret" . }}
      key: username
- name: SLUICE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "sluice.kafkaSASLSecret" . }}
      key: password
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: SLUICE_KAFKA_TLS
  value: "true"
- name: SLUICE_KAFKA_CA_FILE
  value: /etc/sluice/kafka-tls/ca.crt
{{- if or .Values.kafka.tls.clientCertificate .Values.kafka.tls.cert }}
- name: SLUICE_KAFKA_CERT_FILE
  value: /etc/sluice/kafka-tls/tls.crt
- name: SLUICE_KAFKA_KEY_FILE
  value: /etc/sluice/kafka-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes and mounts for Kafka's TLS files, and /tmp (the root is read-only). */}}
{{- define "sluice.kafkaVolumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ include "sluice.kafkaTLSSecret" . }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- define "sluice.kafkaMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: /etc/sluice/kafka-tls
  readOnly: true
{{- end }}
{{- end }}
