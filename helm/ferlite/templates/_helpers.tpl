{{/* Names, labels and the pieces every ferlite pod shares. */}}
{{- define "ferlite.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "ferlite.name" -}}{{ include "ferlite.fullname" .root }}-{{ .component }}{{- end -}}

{{- define "ferlite.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferlite.labels" -}}
{{ include "ferlite.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* One image per service: <repository>/ferlite-<component>:<tag> (services/<component>/Dockerfile),
     or pinned by digest (@sha256:...) when image.digests names one (the release workflow does). */}}
{{- define "ferlite.image" -}}
{{- $repo := required "image.repository is required: the registry path where the ferlite images were pushed (ferlite-facedetect, -classifier and -aggregator under it; docs/kubernetes.md says how to build or where releases are)" .root.Values.image.repository -}}
{{- $digest := index (.root.Values.image.digests | default dict) .component | default "" -}}
{{- if $digest -}}{{ $repo }}/ferlite-{{ .component }}@{{ $digest }}
{{- else -}}{{ $repo }}/ferlite-{{ .component }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "ferlite.redisSecret" -}}{{ .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "ferlite.fullname" .)) }}{{- end -}}
{{- define "ferlite.camerasSecret" -}}{{ .Values.cameras.existingSecret | default (printf "%s-cameras" (include "ferlite.fullname" .)) }}{{- end -}}
{{- define "ferlite.authSecret" -}}{{ .Values.auth.existingSecret | default (printf "%s-auth" (include "ferlite.fullname" .)) }}{{- end -}}

{{/* Bearer tokens from the auth Secret: auth-token (admins: queries, feedback, A/B control) and
service-token (the pipeline's own writes: Classify, RecordEvents; facedetect sends it to its
peers; never to cameras, which have their own per-classroom tokens: the cameras Secret). */}}
{{- define "ferlite.authEnv" -}}
- name: FERLITE_{{ .service }}_AUTH_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "ferlite.authSecret" .root }}, key: auth-token}}
- name: FERLITE_{{ .service }}_SERVICE_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "ferlite.authSecret" .root }}, key: service-token}}
{{- end -}}

{{/* Env + volumes for TLS on the gRPC server and its client channels. */}}
{{- define "ferlite.tlsEnv" -}}
{{- if .root.Values.tls.enabled }}
- {name: FERLITE_{{ .service }}_HEALTH_PORT, value: {{ (index .root.Values (lower .service)).healthPort | quote }}}
- {name: FERLITE_{{ .service }}_TLS_CERT, value: /etc/ferlite/tls/tls.crt}
- {name: FERLITE_{{ .service }}_TLS_KEY, value: /etc/ferlite/tls/tls.key}
{{- if .root.Values.tls.mtls }}
- {name: FERLITE_{{ .service }}_TLS_CLIENT_CA, value: /etc/ferlite/tls/ca.crt}
{{- end }}
{{- end }}
{{- end -}}

{{- define "ferlite.tlsVolumeMount" -}}
{{- if .Values.tls.enabled }}
- {name: tls, mountPath: /etc/ferlite/tls, readOnly: true}
{{- end }}
{{- end -}}

{{- define "ferlite.tlsVolume" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret: {secretName: {{ required "tls.existingSecret is required when tls.enabled" .Values.tls.existingSecret }}}
{{- end }}
{{- end -}}

{{/* Native gRPC probes (Kubernetes >= 1.27) against grpc.health.v1. */}}
{{- define "ferlite.probes" -}}
{{- if not .root.Values.tls.enabled }}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  grpc: {port: {{ .port }}, service: liveness}
  initialDelaySeconds: {{ .initialDelay | default 10 }}
  periodSeconds: 10
  failureThreshold: 6
{{- else }}
# The kubelet's gRPC probe cannot speak TLS: the service also answers grpc.health.v1, and nothing
# else, in plaintext on its health port (the same states as on its TLS port).
readinessProbe:
  grpc: {port: {{ .healthPort }}}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  grpc: {port: {{ .healthPort }}, service: liveness}
  initialDelaySeconds: {{ .initialDelay | default 10 }}
  periodSeconds: 10
  failureThreshold: 6
{{- end }}
{{- end -}}

{{- define "ferlite.hpa" -}}
{{- $cfg := index .root.Values .component -}}
{{- if $cfg.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "ferlite.name" . }}
  labels: {{- include "ferlite.labels" . | nindent 4 }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: {{ ternary "StatefulSet" "Deployment" (eq .component "aggregator") }}, name: {{ include "ferlite.name" . }}}
  minReplicas: {{ $cfg.autoscaling.minReplicas }}
  maxReplicas: {{ $cfg.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ $cfg.autoscaling.targetCPUUtilizationPercentage }}}
{{- end }}
{{- end -}}

{{- define "ferlite.pdb" -}}
{{- $cfg := index .root.Values .component -}}
{{- /* A PDB that keeps the only replica up blocks every node drain: none below 2 replicas. */ -}}
{{- if and $cfg.pdb.enabled (or (gt (int $cfg.replicas) 1) (and $cfg.autoscaling $cfg.autoscaling.enabled (gt (int $cfg.autoscaling.minReplicas) 1))) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "ferlite.name" . }}
  labels: {{- include "ferlite.labels" . | nindent 4 }}
spec:
  minAvailable: {{ $cfg.pdb.minAvailable }}
  selector:
    matchLabels: {{- include "ferlite.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "ferlite.service" -}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ferlite.name" . }}
  labels:
    {{- include "ferlite.labels" . | nindent 4 }}
    {{- if not (has .serviceType (list "LoadBalancer" "NodePort")) }}
    ferlite.io/metrics: "true"  # the Service the ServiceMonitor scrapes
    {{- end }}
  {{- with .annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .serviceType }}
  type: {{ . }}
  {{- end }}
  {{- if has .serviceType (list "LoadBalancer" "NodePort") }}
  # Exposed outside the cluster (cameras): keep the client's address (no SNAT to a node's), so the
  # NetworkPolicy's cameraCIDRs can match it, and admit only those ranges at the load balancer.
  externalTrafficPolicy: Local
  {{- with .root.Values.networkPolicy.cameraCIDRs }}
  loadBalancerSourceRanges: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  selector: {{- include "ferlite.selectorLabels" . | nindent 4 }}
  ports:
    - {name: grpc, port: {{ .port }}, targetPort: grpc, appProtocol: grpc}
    {{- if not (has .serviceType (list "LoadBalancer" "NodePort")) }}
    - {name: metrics, port: {{ .metricsPort }}, targetPort: metrics}
    {{- end }}
{{- if has .serviceType (list "LoadBalancer" "NodePort") }}
{{- /* Exposed outside the cluster: the metrics port stays inside it, on a Service of its own. */}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ferlite.name" . }}-metrics
  labels:
    {{- include "ferlite.labels" . | nindent 4 }}
    ferlite.io/metrics: "true"
spec:
  selector: {{- include "ferlite.selectorLabels" . | nindent 4 }}
  ports:
    - {name: metrics, port: {{ .metricsPort }}, targetPort: metrics}
{{- end }}
{{- end -}}


{{/* A headless Service beside the ClusterIP one: DNS returns every ready pod, so face detection's
     round-robin channel (dns:///NAME-pods:PORT) spreads calls over all replicas. */}}
{{- define "ferlite.headlessService" -}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ferlite.name" . }}-pods
  labels: {{- include "ferlite.labels" . | nindent 4 }}
spec:
  clusterIP: None
  selector: {{- include "ferlite.selectorLabels" . | nindent 4 }}
  ports:
    - {name: grpc, port: {{ .port }}, targetPort: grpc, appProtocol: grpc}
{{- end -}}

{{/* Prometheus without the Operator: the classic prometheus.io/* pod annotations that the
kubernetes_sd "pods" job of most Prometheus installs reads. */}}
{{- define "ferlite.scrapeAnnotations" -}}
{{- if .root.Values.monitoring.scrapeAnnotations }}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .port | quote }}
  prometheus.io/path: /metrics
{{- end }}
{{- end -}}


{{/* What every pod of the chart carries: the registry's pull secrets (Triton's, Redis's, the backup's
     and the test's images come from a private mirror as often as ferlite's), and no service-account
     token: no ferlite pod talks to the Kubernetes API. */}}
{{- define "ferlite.podDefaults" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}


{{/* Replicas spread over zones, then nodes, when the cluster has several (ScheduleAnyway: a
     single-zone or single-node cluster still schedules them). */}}
{{- define "ferlite.spread" -}}
topologySpreadConstraints:
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels: {{- include "ferlite.selectorLabels" $ | nindent 8 }}
  {{- end }}
{{- end -}}


{{/* replicas of a workload. Without autoscaling, the value. With it, what runs now (lookup) or, on a
     first install, minReplicas: leaving the field out would let an upgrade that turns autoscaling on
     drop the workload to 1 replica before the HPA scales it back. */}}
{{- define "ferlite.replicas" -}}
{{- $cfg := index .root.Values .component -}}
{{- if not $cfg.autoscaling.enabled -}}
{{ $cfg.replicas }}
{{- else -}}
{{- $kind := ternary "StatefulSet" "Deployment" (eq .component "aggregator") -}}
{{- $live := lookup "apps/v1" $kind .root.Release.Namespace (include "ferlite.name" .) -}}
{{- if and $live $live.spec.replicas -}}{{ $live.spec.replicas }}{{- else -}}{{ $cfg.autoscaling.minReplicas }}{{- end -}}
{{- end -}}
{{- end -}}
