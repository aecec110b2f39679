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

{{- /*
kubemr.minioServers: the MinIO servers the chart runs, as a YAML list. The shared one
(minio: true) is "minio", the default storageEndpoint; with minioPerNode, one per node of
minioNodes, pinned to it. Each has the labels that select its pods (as they always were: a
Deployment's selector cannot change), and a node or a nodePort.
*/}}
{{- define "kubemr.minioServers" -}}
{{- if .Values.minio }}
- name: minio
  selector: {app.kubernetes.io/name: minio}
  nodePort: {{ .Values.minioNodePort | int }}
{{- end }}
{{- if .Values.minioPerNode }}
{{- range $node := .Values.minioNodes }}
- name: minio-{{ $node }}
  node: {{ $node | quote }}
  selector: {app.kubernetes.io/component: minio, kubemr.io/storage-node: {{ $node | quote }}}
{{- end }}
{{- end }}
{{- end }}

{{- /* kubemr.minioLabels (list ROOT SERVER): the labels of a MinIO server's Deployment and Service. */}}
{{- define "kubemr.minioLabels" -}}
{{- $server := index . 1 }}
{{- include "kubemr.labels" (index . 0) }}
app.kubernetes.io/component: minio
{{- with $server.node }}
kubemr.io/storage-node: {{ . }}
{{- end }}
{{- end }}

{{- define "kubemr.testName" -}}
{{ .Release.Name }}-test
{{- end }}

{{- /*
kubemr.jobRules: what the operator does in a namespace whose jobs it runs: it reads, patches and
deletes jobs (ttlSecondsAfterFinished) and writes their status, creates and deletes their task
pods, reads the storage Secret a job names (it acts on the job's data with the job's own keys),
posts events on jobs, and for the dashboard lists those events and reads task pods' logs. In the ClusterRole when the operator runs every namespace's jobs
(watchNamespaces empty); in a Role in each of watchNamespaces otherwise.
*/}}
{{- define "kubemr.jobRules" -}}
- apiGroups: [kubemr.io]
  resources: [mapreducejobs]
  verbs: [get, list, watch, patch, update, delete]
- apiGroups: [kubemr.io]
  resources: [mapreducejobs/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch, list]
{{- end }}

{{- /*
kubemr.clusterReadRules: what the operator reads cluster-wide in either mode, none of it a
team's data: nodes (a task whose node is no longer Ready failed as NodeLost, and the map outputs
that node kept are made again), namespaces (kopf follows the watched namespaces being created and
deleted) and CRDs (kopf finds the MapReduceJob resource).
*/}}
{{- define "kubemr.clusterReadRules" -}}
- apiGroups: [""]
  resources: [nodes, namespaces]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end }}

{{- /* kubemr.leaseName: the Lease the operator's replicas elect a leader on (kubemr_operator/handlers.py). */}}
{{- define "kubemr.leaseName" -}}
kubemr-operator
{{- end }}

{{- /* kubemr.taskPolicyName: the task pods' NetworkPolicy in each job namespace. */}}
{{- define "kubemr.taskPolicyName" -}}
{{ .Release.Name }}-tasks
{{- end }}
