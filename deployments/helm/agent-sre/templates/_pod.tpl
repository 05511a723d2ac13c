{{/* The pod template shared by the DaemonSet and the Deployment. */}}
{{- define "agent-sre.podTemplate" -}}
metadata:
  labels:
    {{- include "agent-sre.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if .Values.rollOnConfigChange }}
    checksum/config: {{ include "agent-sre.config" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "agent-sre.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if .Values.hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if and (eq .Values.stateVolume.type "hostPath") .Values.stateVolume.hostPath.chown }}
  initContainers:
    - name: state-dir-owner
      image: {{ include "agent-sre.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["chown", "{{ .Values.podSecurityContext.runAsUser | default 10001 }}:{{ .Values.podSecurityContext.runAsGroup | default 10001 }}", {{ .Values.stateVolume.mountPath | quote }}]
      securityContext:
        runAsNonRoot: false
        runAsUser: 0
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL], add: [CHOWN]}
      volumeMounts:
        - {name: state, mountPath: {{ .Values.stateVolume.mountPath | quote }}}
  {{- end }}
  containers:
    - name: agent-sre
      image: {{ include "agent-sre.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config=/etc/agent-sre/agent-sre.yaml
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: AGENT_SRE_STATE_DIR
          value: {{ .Values.stateVolume.mountPath | quote }}
        - name: AGENT_SRE_LOG_LEVEL
          value: {{ .Values.logLevel | quote }}
        {{- with .Values.upstream }}
        - name: AGENT_SRE_UPSTREAM
          value: {{ . | quote }}
        {{- end }}
        {{- with include "agent-sre.adminSecretName" . }}
        - name: AGENT_SRE_ADMIN_TOKEN
          valueFrom:
            secretKeyRef: {name: {{ . }}, key: {{ $.Values.adminToken.key }}}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        {{- range $name := list "otlp-grpc" "otlp-http" "proxy" "metrics" "admin" }}
        {{- $port := index $.Values.ports $name }}
        {{- if or $port.enabled (and (eq $name "admin") $.Values.operator.enabled) }}
        - name: {{ $name }}
          containerPort: {{ $port.containerPort }}
          protocol: {{ $port.protocol | default "TCP" }}
          {{- if and (eq $.Values.mode "daemonset") $port.hostPort (ne $name "admin") }}
          hostPort: {{ $port.hostPort }}
          {{- end }}
        {{- end }}
        {{- end }}
      livenessProbe:
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/agent-sre, readOnly: true}
        - {name: state, mountPath: {{ .Values.stateVolume.mountPath | quote }}}
        - {name: tmp, mountPath: /tmp}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap: {name: {{ include "agent-sre.fullname" . }}}
    - name: state
      {{- if eq .Values.stateVolume.type "hostPath" }}
      hostPath:
        path: {{ printf "%s/%s" (trimSuffix "/" .Values.stateVolume.hostPath.path) .Release.Name | quote }}
        type: DirectoryOrCreate
      {{- else }}
      emptyDir:
        {{- with .Values.stateVolume.emptyDir.medium }}
        medium: {{ . }}
        {{- end }}
        {{- with .Values.stateVolume.emptyDir.sizeLimit }}
        sizeLimit: {{ . }}
        {{- end }}
      {{- end }}
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .Values.mode "deployment" }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end }}
