{{- define "locgate.labels" -}}
app.kubernetes.io/name: locgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "locgate.adminSecret" -}}
{{- if .Values.admin.existingSecret }}{{ .Values.admin.existingSecret }}{{ else }}{{ .Release.Name }}-locgate-admin{{ end -}}
{{- end -}}
