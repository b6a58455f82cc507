{{/* The chart name, or nameOverride. */}}
{{- define "syncd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every resource: fullnameOverride, else the release name when it already
contains the chart name (release `syncd` gives `syncd`, as in deploy/kustomize), else
<release>-<chart>.
*/}}
{{- define "syncd.fullname" -}}
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

{{- define "syncd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: immutable on a Deployment, so never more than these two. */}}
{{- define "syncd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. Not managed-by: syncd, which marks the Secrets syncd owns. */}}
{{- define "syncd.labels" -}}
helm.sh/chart: {{ include "syncd.chart" . }}
{{ include "syncd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: syncd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "syncd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syncd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: leaderElection.enabled, or when it is null, replicaCount > 1.
Several replicas without it would all write, so that combination fails the render.
*/}}
{{- define "syncd.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = gt (int .Values.replicaCount) 1 }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not $enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled (every replica would write); leave it null or set it true" }}
{{- end }}
{{- if $enabled }}true{{ end }}
{{- end }}

{{/* "true" when the PodDisruptionBudget is rendered: podDisruptionBudget.enabled, or when null, replicaCount > 1. */}}
{{- define "syncd.pdbEnabled" -}}
{{- $enabled := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = gt (int .Values.replicaCount) 1 }}
{{- end }}
{{- if $enabled }}true{{ end }}
{{- end }}

{{/* The port of config.server.address (host:port), 8080 when it is not set. */}}
{{- define "syncd.port" -}}
{{- $address := dig "server" "address" "0.0.0.0:8080" .Values.config | toString }}
{{- $port := regexFind "[0-9]+$" $address }}
{{- if not $port }}
{{- fail (printf "config.server.address %q has no port" $address) }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
"true" when the Vault-only ServiceAccount token is mounted: vaultToken.enabled, or when it is
null, whenever config.vault.auth.method is kubernetes (never the pod's API token for Vault).
*/}}
{{- define "syncd.vaultToken" -}}
{{- $enabled := .Values.vaultToken.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = eq (dig "vault" "auth" "method" "" .Values.config | toString) "kubernetes" }}
{{- end }}
{{- if $enabled }}true{{ end }}
{{- end }}

{{/*
syncd.yaml: the config values, with leader_election.enabled and .namespace filled in (the
chart's Role grants the Lease verbs in the release namespace only), and with the Vault-only
token (syncd.vaultToken) as vault.auth.token_file of the kubernetes and jwt methods unless one
is set.
*/}}
{{- define "syncd.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $election := dict "enabled" (eq (include "syncd.leaderElection" .) "true") "namespace" .Release.Namespace }}
{{- $_ := set $config "leader_election" (mergeOverwrite (deepCopy (default dict $config.leader_election)) $election) }}
{{- $auth := dig "vault" "auth" dict $config }}
{{- if and (include "syncd.vaultToken" .) (has (toString $auth.method) (list "kubernetes" "jwt")) (not $auth.token_file) }}
{{- $_ := set $auth "token_file" "/var/run/secrets/vault/token" }}
{{- end }}
{{- if .Values.admission.enabled }}
{{- $admission := dict "enabled" true "address" (printf "0.0.0.0:%v" .Values.admission.port) "namespace" .Release.Namespace "service" (printf "%s-webhook" (include "syncd.fullname" .)) "configuration" (include "syncd.fullname" .) "secret" (printf "%s-webhook-tls" (include "syncd.fullname" .)) "timeout_seconds" (int .Values.admission.timeoutSeconds) }}
{{- if .Values.admission.certManager.enabled }}
{{- $_ := set $admission "tls" (dict "cert_file" "/etc/syncd-webhook-tls/tls.crt" "key_file" "/etc/syncd-webhook-tls/tls.key") }}
{{- end }}
{{- $_ := set $config "admission" (mergeOverwrite (deepCopy (default dict $config.admission)) $admission) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
