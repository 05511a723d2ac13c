{{/*
What values.schema.json cannot say because it compares two values, checked as the daemon
checks them (src/agent_sre/slo/spec.py), so `helm install` refuses what would crash-loop the
pods: unique SLO names, each alert's `short` under its `long`, and every alert window (the
defaults included: 1h, 6h, 1d, 3d) within its SLO window. A value holding a ${VAR}
placeholder is left to the daemon, which checks it once expanded. Renders nothing.
*/}}
{{- define "agent-sre.checkSlos" -}}
{{- $defaultAlerting := list (dict "long" "1h" "short" "5m") (dict "long" "6h" "short" "30m") (dict "long" "1d" "short" "2h") (dict "long" "3d" "short" "6h") -}}
{{- $names := dict -}}
{{- range $i, $spec := (.Values.config.slos | default list) -}}
{{- $where := printf "config.slos[%d]" $i -}}
{{- if kindIs "string" $spec.name -}}
{{- if hasKey $names $spec.name -}}
{{- fail (printf "%s.name: SLO %q is defined twice" $where $spec.name) -}}
{{- end -}}
{{- $_ := set $names $spec.name true -}}
{{- end -}}
{{- $window := default "30d" $spec.window -}}
{{- if not (and (kindIs "string" $window) (contains "${" $window)) -}}
{{- $windowSeconds := float64 (include "agent-sre.seconds" $window) -}}
{{- $alerting := $defaultAlerting -}}
{{- $given := and (hasKey $spec "alerting") (not (kindIs "invalid" $spec.alerting)) -}}
{{- if $given }}{{ $alerting = $spec.alerting }}{{ end -}}
{{- if kindIs "slice" $alerting -}}
{{- range $j, $alert := $alerting -}}
{{- $long := $alert.long -}}
{{- $short := $alert.short -}}
{{- $placeholder := or (and (kindIs "string" $long) (contains "${" $long)) (and (kindIs "string" $short) (contains "${" $short)) -}}
{{- if not $placeholder -}}
{{- $longSeconds := float64 (include "agent-sre.seconds" $long) -}}
{{- $shortSeconds := float64 (include "agent-sre.seconds" $short) -}}
{{- if gt $longSeconds $windowSeconds -}}
{{- if $given -}}
{{- fail (printf "%s.alerting[%d].long: the %s alert window is longer than the %s SLO window" $where $j (include "agent-sre.duration" $longSeconds) (include "agent-sre.duration" $windowSeconds)) -}}
{{- else -}}
{{- fail (printf "%s.alerting: the default %s alert window is longer than the %s SLO window; give alerting: for a window under 3d" $where (include "agent-sre.duration" $longSeconds) (include "agent-sre.duration" $windowSeconds)) -}}
{{- end -}}
{{- end -}}
{{- if ge $shortSeconds $longSeconds -}}
{{- fail (printf "%s.alerting[%d].short: must be shorter than long" $where $j) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
