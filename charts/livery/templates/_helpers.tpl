{{/*
Names, labels and shared pod parts of the Livery chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "livery.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, or "<release>-<chart>",
or only the release name when it already contains the chart name. Truncated
to 40 characters so that suffixes such as "-control-api-tls" keep names
within the 63-character DNS label limit. Service names must be DNS-1035
labels, which start with a letter, so a prefix starting with a digit fails
the rendering.
*/}}
{{- define "livery.fullname" -}}
{{- $fullname := "" }}
{{- if .Values.fullnameOverride }}
{{- $fullname = .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- $fullname = .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $fullname = printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- if not (regexMatch "^[a-z]" $fullname) }}
{{- fail (printf "invalid release name %q: object names start with %q, but Service names must start with a letter (DNS-1035). Use a release name that starts with a letter, or set fullnameOverride" .Release.Name $fullname) }}
{{- end }}
{{- $fullname }}
{{- end }}

{{/* The chart label value: "<name>-<version>". */}}
{{- define "livery.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "livery.labels" -}}
helm.sh/chart: {{ include "livery.chart" . }}
app.kubernetes.io/name: {{ include "livery.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: livery
{{- end }}

{{/* Selector labels of one component; call with (dict "context" $ "component" "operator"). */}}
{{- define "livery.selectorLabels" -}}
app.kubernetes.io/name: {{ include "livery.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of one component's objects; call as livery.selectorLabels. */}}
{{- define "livery.componentLabels" -}}
{{ include "livery.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "livery.operator.fullname" -}}
{{- printf "%s-operator" (include "livery.fullname" .) }}
{{- end }}

{{- define "livery.controlApi.fullname" -}}
{{- printf "%s-control-api" (include "livery.fullname" .) }}
{{- end }}

{{- define "livery.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "livery.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "livery.controlApi.serviceAccountName" -}}
{{- if .Values.controlApi.serviceAccount.create }}
{{- default (include "livery.controlApi.fullname" .) .Values.controlApi.serviceAccount.name }}
{{- else }}
{{- required "controlApi.serviceAccount.name is required when controlApi.serviceAccount.create is false" .Values.controlApi.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Livery image reference. */}}
{{- define "livery.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The tenant app image reference, falling back to the Livery image. */}}
{{- define "livery.tenantAppImage" -}}
{{- $repository := default .Values.image.repository .Values.tenantApp.image.repository }}
{{- $tag := .Values.tenantApp.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/* The host of the control API: controlApi.ingress.host or console.<baseDomain>. */}}
{{- define "livery.controlApi.host" -}}
{{- default (printf "console.%s" .Values.baseDomain) .Values.controlApi.ingress.host }}
{{- end }}

{{/* "true" when the control API's Ingress carries TLS, else empty. */}}
{{- define "livery.controlApi.tls" -}}
{{- if or .Values.ingress.certIssuer .Values.controlApi.ingress.tlsSecretName }}true{{ end }}
{{- end }}

{{/* The URL customers reach the control API at (LIVERY_PUBLIC_URL). */}}
{{- define "livery.controlApi.publicUrl" -}}
{{- $url := printf "%s://%s" .Values.ingress.scheme (include "livery.controlApi.host" .) }}
{{- with .Values.ingress.port }}{{ $url = printf "%s:%v" $url . }}{{ end }}
{{- $url }}
{{- end }}

{{/* The in-cluster URL of the control API, which tenant apps report usage to. */}}
{{- define "livery.controlApi.internalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "livery.controlApi.fullname" .) .Release.Namespace .Values.controlApi.port }}
{{- end }}

{{/*
One environment variable read from a Secret key; call with
(dict "context" $ "env" "LIVERY_DATABASE_URL" "ref" .Values.secrets.databaseUrl "optional" false).
An optional reference leaves the variable unset when the key is missing.
*/}}
{{- define "livery.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ default .context.Values.secrets.name .ref.secretName | quote }}
      key: {{ .ref.key | quote }}
      optional: {{ .optional }}
{{- end }}

{{/* Environment variables that the operator and the control API share. */}}
{{- define "livery.commonEnv" -}}
- name: LIVERY_BASE_DOMAIN
  value: {{ .Values.baseDomain | quote }}
- name: LIVERY_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: HOME
  value: /tmp
{{- end }}

{{/* The S3 bucket, endpoint, region and credentials. */}}
{{- define "livery.s3Env" -}}
{{- with .Values.storage.s3.bucket }}
- name: LIVERY_S3_BUCKET
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.endpointUrl }}
- name: LIVERY_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{ include "livery.secretEnv" (dict "context" . "env" "AWS_ACCESS_KEY_ID" "ref" .Values.secrets.s3AccessKeyId "optional" true) }}
{{ include "livery.secretEnv" (dict "context" . "env" "AWS_SECRET_ACCESS_KEY" "ref" .Values.secrets.s3SecretAccessKey "optional" true) }}
{{- end }}

{{/* Pod-level settings shared by every Deployment; call with (dict "context" $ "component" .Values.operator). */}}
{{- define "livery.podSpecCommon" -}}
{{- with .context.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .context.Values.podSecurityContext | nindent 2 }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
