{{- define "kubemr.labels" -}}
app.kubernetes.io/name: kubemr
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "kubemr.fullname" -}}
{{ .Release.Name }}-operator
{{- end }}

{{- define "kubemr.storageEndpoint" -}}
{{ .Values.storageEndpoint | default (printf "http://minio.%s:9000" .Release.Namespace) }}
{{- end }}

{{- define "kubemr.nodeServers" -}}
[{{- range $i, $node := .Values.minioNodes }}{{ if $i }},{{ end }}{"node": {{ $node | quote }}, "bucket": {{ printf "node-%s" $node | quote }}, "endpoint": {{ printf "http://minio-%s.%s:9000" $node $.Release.Namespace | quote }}}{{- end }}]
{{- end }}

{{- define "kubemr.bucketEndpoints" -}}
{{- range $i, $node := .Values.minioNodes }}{{ if $i }},{{ end }}{{ printf "node-%s" $node | quote }}: {{ printf "http://minio-%s.%s:9000" $node $.Release.Namespace | quote }}{{- end }}
{{- end }}
