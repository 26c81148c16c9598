{{/* Names and labels. */}}
{{- define "stargate-node.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stargate-node.fullname" -}}
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

{{- define "stargate-node.apiServiceName" -}}
{{- default (printf "%s-api" (include "stargate-node.fullname" .)) .Values.service.api.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stargate-node.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stargate-node.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stargate-node.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "stargate-node.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The secrets the node reads: (values flag, environment variable, whether the node also reads the
variable with _FILE appended). Keys with a _FILE form are mounted as files, the others go into
the environment from the Secret.
*/}}
{{- define "stargate-node.secretKeys" -}}
- {flag: stargateApiKey, env: STARGATE_API_KEY, file: false}
- {flag: stargateIngestToken, env: STARGATE_INGEST_TOKEN, file: true}
- {flag: starlightStegoCallbackSecret, env: STARGATE_STEGO_CALLBACK_SECRET, file: true}
- {flag: chainWalletKey, env: STARGATE_CHAIN_WALLET_KEY, file: false}
- {flag: chainRpcPassword, env: STARGATE_CHAIN_RPC_PASSWORD, file: false}
{{- end }}

{{/* Whether any secret the node reads from a file is switched on. */}}
{{- define "stargate-node.secretFiles" -}}
{{- range (include "stargate-node.secretKeys" . | fromYamlArray) }}
{{- if and .file (get $.Values.secrets .flag) }}true{{ end }}
{{- end }}
{{- end }}

{{/* Where secret files are mounted. */}}
{{- define "stargate-node.secretDir" -}}/run/secrets/stargate{{- end }}

{{/*
The container's environment: the guide's settings as the node's STARGATE_* variables. Every
value is written as a TOML literal (the node reads variables that way), so a string stays a
string even when it looks like a number.
*/}}
{{- define "stargate-node.env" -}}
- name: STARGATE_DATA_DIR
  value: /data
- name: STARGATE_GATEWAY_ADDR
  value: '"0.0.0.0:8080"'
- name: STARGATE_API_ADDR
  value: '"0.0.0.0:5001"'
{{- $anonymous := dig "api" "allow_anonymous" false (.Values.stargate.config | default dict) }}
{{- if and (not .Values.secrets.stargateApiKey) (not $anonymous) }}
{{- fail "the API listens on 0.0.0.0:5001 in the pod and the node refuses to serve it unguarded: switch on secrets.stargateApiKey (the guide's stargate-api-key), or set stargate.config.api.allow_anonymous=true (development only: anyone in the cluster may write)" }}
{{- end }}
- name: STARGATE_BITCOIN_NETWORK
  value: {{ .Values.stargate.bitcoinNetwork | toJson | quote }}
{{- range $key, $value := .Values.stargate.ipfs }}
{{- if eq $key "enabled" }}
{{- if not $value }}
{{- fail "stargate.ipfs.enabled=false: this node is its own IPFS daemon and cannot run without it; set stargate.ipfs.mirrorEnabled=false to stop mirroring" }}
{{- end }}
{{- else if not (kindIs "invalid" $value) }}
- name: {{ printf "STARGATE_IPFS_%s" ($key | snakecase | upper) }}
  value: {{ $value | toJson | quote }}
{{- end }}
{{- end }}
{{- range $section, $keys := .Values.stargate.config }}
{{- range $key, $value := $keys }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "STARGATE_%s_%s" $section $key | upper }}
  value: {{ $value | toJson | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- range (include "stargate-node.secretKeys" . | fromYamlArray) }}
{{- if get $.Values.secrets .flag }}
{{- $key := get $.Values.secrets.keys .flag }}
{{- if .file }}
- name: {{ printf "%s_FILE" .env }}
  value: {{ printf "%s/%s" (include "stargate-node.secretDir" $) $key | quote }}
{{- else }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.name }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.stargate.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
