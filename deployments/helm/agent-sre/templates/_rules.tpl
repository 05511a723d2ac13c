{{/*
The fleet-wide SLO rules for .Values.config.slos: the same groups, records, expressions and
alerts as `agent-sre rules prometheus` (src/agent_sre/slo/rules.py) writes for the same SLOs
(tests/deploy compares the two).
*/}}

{{/* Seconds (a float) from a duration: 30d, 1h30m, 250ms, or a number of seconds. */}}
{{- define "agent-sre.seconds" -}}
{{- if kindIs "string" . -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w)" . -1 -}}
{{- $total = addf $total (mulf (float64 (regexFind "^[0-9.]+" .)) (get $units (regexReplaceAll "^[0-9.]+" . ""))) -}}
{{- end -}}
{{- $total -}}
{{- else -}}
{{- float64 . -}}
{{- end -}}
{{- end }}

{{/* The shortest exact form of whole seconds among d, h, m, s (2h, 90s). */}}
{{- define "agent-sre.duration" -}}
{{- $s := int64 (float64 .) -}}
{{- if and (ge $s 86400) (eq (mod $s 86400) 0) -}}{{ div $s 86400 }}d
{{- else if and (ge $s 3600) (eq (mod $s 3600) 0) -}}{{ div $s 3600 }}h
{{- else if and (ge $s 60) (eq (mod $s 60) 0) -}}{{ div $s 60 }}m
{{- else -}}{{ $s }}s
{{- end -}}
{{- end }}

{{- define "agent-sre.sloRuleGroups" -}}
{{- $metric := "agent_sre_slo_events_total" -}}
{{- $defaultAlerting := list
  (dict "severity" "page" "long" "1h" "short" "5m" "budget_percent" 2)
  (dict "severity" "page" "long" "6h" "short" "30m" "budget_percent" 5)
  (dict "severity" "ticket" "long" "1d" "short" "2h" "budget_percent" 10)
  (dict "severity" "ticket" "long" "3d" "short" "6h" "budget_percent" 10) -}}
{{- $groups := list -}}
{{- range $spec := (.Values.config.slos | default list) -}}
{{- $name := $spec.name -}}
{{- $selector := printf "slo=\"%s\"" $name -}}
{{- $byList := list "slo" -}}
{{- range ($spec.labels | default list) -}}
{{- $label := regexReplaceAll "[^A-Za-z0-9_]" . "_" -}}
{{- if regexMatch "^[0-9]" $label }}{{ $label = printf "_%s" $label }}{{ end -}}
{{- $byList = append $byList $label -}}
{{- end -}}
{{- $by := join ", " $byList -}}
{{- $window := float64 (include "agent-sre.seconds" (default "30d" $spec.window)) -}}
{{- $target := float64 $spec.target -}}
{{- $budget := printf "%.12g" (subf 1 $target) -}}
{{- $period := include "agent-sre.duration" $window -}}
{{- $alerting := $defaultAlerting -}}
{{- if hasKey $spec "alerting" }}{{ if not (kindIs "invalid" $spec.alerting) }}{{ $alerting = $spec.alerting }}{{ end }}{{ end -}}
{{- $windows := dict (printf "%015d" 300) 300.0 (printf "%015d" (int64 $window)) $window -}}
{{- $alerts := list -}}
{{- range $alerting -}}
{{- $long := float64 (include "agent-sre.seconds" .long) -}}
{{- $short := float64 (include "agent-sre.seconds" .short) -}}
{{- $factor := 0.0 -}}
{{- if and (hasKey . "factor") (not (kindIs "invalid" .factor)) -}}
{{- $factor = float64 .factor -}}
{{- else -}}
{{- $factor = divf (mulf (divf (float64 .budget_percent) 100.0) $window) $long -}}
{{- end -}}
{{- $_ := set $windows (printf "%015d" (int64 $long)) $long -}}
{{- $_ := set $windows (printf "%015d" (int64 $short)) $short -}}
{{- $alerts = append $alerts (dict "severity" .severity "long" (include "agent-sre.duration" $long) "short" (include "agent-sre.duration" $short) "factor" (printf "%.12g" $factor)) -}}
{{- end -}}
{{- $sliRules := list -}}
{{- range $key := keys $windows | sortAlpha -}}
{{- $w := include "agent-sre.duration" (get $windows $key) -}}
{{- $total := printf "sum by (%s) (increase(%s{%s}[%s]))" $by $metric $selector $w -}}
{{- $bad := printf "sum by (%s) (increase(%s{%s,result=\"bad\"}[%s]))" $by $metric $selector $w -}}
{{- $sliRules = append $sliRules (dict "record" (printf "slo:sli_error:ratio_rate%s" $w) "expr" (printf "(\n  %s\n  or\n  0 * %s\n)\n/\n%s\n" $bad $total $total) "labels" (dict "slo" $name "window" $w)) -}}
{{- end -}}
{{- $sloLabels := dict "slo" $name -}}
{{- $perSlo := printf "sum without (window) (slo:sli_error:ratio_rate%%s{%s})" $selector -}}
{{- $metaRules := list
  (dict "record" "slo:objective:ratio" "expr" (printf "vector(%.12g)" $target) "labels" $sloLabels)
  (dict "record" "slo:error_budget:ratio" "expr" (printf "vector(%s)" $budget) "labels" $sloLabels)
  (dict "record" "slo:time_period:days" "expr" (printf "vector(%.12g)" (divf $window 86400.0)) "labels" $sloLabels)
  (dict "record" "slo:current_burn_rate:ratio" "expr" (printf "%s / %s" (printf $perSlo "5m") $budget) "labels" $sloLabels)
  (dict "record" "slo:period_burn_rate:ratio" "expr" (printf "%s / %s" (printf $perSlo $period) $budget) "labels" $sloLabels)
  (dict "record" "slo:period_error_budget_remaining:ratio" "expr" (printf "1 - slo:period_burn_rate:ratio{%s}" $selector) "labels" $sloLabels) -}}
{{- $alertRules := list -}}
{{- range $alerts -}}
{{- $limit := printf "(%s * %s)" .factor $budget -}}
{{- $expr := printf "(\n  %s > %s\n)\nand\n(\n  %s > %s\n)\n" (printf $perSlo .long) $limit (printf $perSlo .short) $limit -}}
{{- $summary := printf "SLO %s is burning its error budget faster than %sx over %s and %s" $name .factor .long .short -}}
{{- $description := printf "SLO %s (target %.12g over %s): the error ratio over both the last %s and the last %s is above %sx the error budget (%s)." $name $target $period .long .short .factor $budget -}}
{{- $alertRules = append $alertRules (dict "alert" "AgentSREErrorBudgetBurn" "expr" $expr "labels" (dict "slo" $name "severity" .severity "long_window" .long "short_window" .short) "annotations" (dict "summary" $summary "description" $description)) -}}
{{- end -}}
{{- $groups = append $groups (dict "name" (printf "agent-sre-slo-%s-sli-recordings" $name) "rules" $sliRules) -}}
{{- $groups = append $groups (dict "name" (printf "agent-sre-slo-%s-meta-recordings" $name) "rules" $metaRules) -}}
{{- if $alertRules -}}
{{- $groups = append $groups (dict "name" (printf "agent-sre-slo-%s-alerts" $name) "rules" $alertRules) -}}
{{- end -}}
{{- end -}}
{{- toYaml $groups -}}
{{- end }}
