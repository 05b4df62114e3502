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

{{/*
The same, with the pipeline image set to the values' repository:tag. Every
reference to the image `cnai compile` writes (sourceImageRepository, with any tag
or digest) is rewritten, whatever image.repository is, so changing the repository
or the tag always reaches every step, including the RayJob pod templates.
*/}}
{{- define "cnai-pipeline.withImage" -}}
{{- $root := index . 0 -}}
{{- $text := include "cnai-pipeline.inNamespace" . -}}
{{- $from := $root.Values.sourceImageRepository -}}
{{- $pattern := printf "%s(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]+)?" (regexQuoteMeta $from) -}}
{{- regexReplaceAll $pattern $text (printf "%s:%s" $root.Values.image.repository $root.Values.image.tag) -}}
{{- end -}}
