"""Notifications: the payload shapes incidents are sent in (Alertmanager v2, a signed
generic webhook, PagerDuty Events v2, Slack incoming webhooks)."""
