{{/* Labels shared by every object of this chart. */}}
{{- define "cnai-pipeline.labels" -}}
app.kubernetes.io/name: cnai-pipeline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
A file copied verbatim from `cnai compile` or events/ (see cnai/chart.py),
moved from the default namespace (sourceNamespace) into the release's:
`namespace: cnai` fields and `<svc>.cnai.svc` host names are rewritten.
*/}}
{{- define "cnai-pipeline.inNamespace" -}}
{{- $root := index . 0 -}}
{{- $text := index . 1 -}}
{{- $from := regexQuoteMeta $root.Values.sourceNamespace -}}
{{- $to := $root.Release.Namespace -}}
{{- $text = regexReplaceAll (printf "(?m)^(\\s*namespace:\\s*)[\"']?%s[\"']?(\\s*(#.*)?)$" $from) $text (printf "${1}%s${2}" $to) -}}
{{- regexReplaceAll (printf "\\.%s\\.svc\\b" $from) $text (printf ".%s.svc" $to) -}}
{{- end -}}

{{/* The same, with the pipeline image pinned to the values' repository:tag. */}}
{{- define "cnai-pipeline.withImage" -}}
{{- $root := index . 0 -}}
{{- $text := include "cnai-pipeline.inNamespace" . -}}
{{- $repo := $root.Values.image.repository -}}
{{- $pattern := printf "%s(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]+)?" (regexQuoteMeta $repo) -}}
{{- regexReplaceAll $pattern $text (printf "%s:%s" $repo $root.Values.image.tag) -}}
{{- end -}}
