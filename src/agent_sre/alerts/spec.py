"""The ``alerting:`` section: where incidents are sent, and how hard to try."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent_sre.section import Duration, Section
from agent_sre.signals import Severity

ReceiverType = Literal["alertmanager", "webhook", "pagerduty", "slack"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class ReceiverSpec(Section):
    """One place notifications go.

    ``alertmanager``: ``url`` is the Alertmanager's base URL (``http://host:9093``);
    ``webhook``: JSON posted to ``url``, signed with ``secret`` (HMAC-SHA256);
    ``pagerduty``: Events API v2 with ``routing_key``; ``slack``: an incoming-webhook ``url``.
    """

    name: str = Field(min_length=1)
    type: ReceiverType
    url: str = ""
    secret: str = ""
    routing_key: str = ""
    min_severity: Severity = Severity.WARNING
    headers: dict[str, str] = {}
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _complete(self) -> ReceiverSpec:
        if self.type == "pagerduty":
            if not self.routing_key:
                raise ValueError("a pagerduty receiver needs routing_key")
        elif not self.url:
            raise ValueError(f"a {self.type} receiver needs url")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self

    @property
    def endpoint(self) -> str:
        """Where the payloads are posted."""
        if self.type == "alertmanager":
            return self.url.rstrip("/") + "/api/v2/alerts"
        if self.type == "pagerduty":
            return self.url or PAGERDUTY_EVENTS_URL
        return self.url


class DeliveryRetry(Section):
    """How hard a notification is tried. Only what may pass is tried again (no answer,
    a 5xx, 408, 429); a redirect or another 4xx is final. A ``Retry-After`` is honoured up
    to ``max_interval``."""

    attempts: int = Field(3, ge=1, le=100)
    """Tries in a row before the notification goes back to the outbox."""
    initial_interval: Duration = 1.0
    max_interval: Duration = 300.0
    """Back-off between tries, and between rounds from the outbox, up to this."""
    give_up_after: Duration = 86400.0
    """A notification still undelivered this long after it was queued goes to the dead
    letter (it is tried at least once)."""

    @field_validator("initial_interval", "max_interval", "give_up_after")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be longer than 0s")
        return value


class AlertingConfig(Section):
    receivers: list[ReceiverSpec] = []
    resend_interval: Duration = 60.0
    """Firing incidents are re-sent to Alertmanager this often (it forgets alerts that are
    not re-sent)."""
    external_url: str = ""
    """Base URL of this daemon's admin API as people reach it, for links in notifications."""
    retry: DeliveryRetry = DeliveryRetry()
    dead_letter_limit: int = Field(1000, ge=1, le=1_000_000)
    """Notifications given up on (refused, redirected, undelivered for ``give_up_after``, or
    for a receiver no longer configured) are kept in the dead letter for
    ``GET /v1/notifications/dead``: this many, the oldest dropped first."""

    @model_validator(mode="after")
    def _unique_names(self) -> AlertingConfig:
        seen: set[str] = set()
        for receiver in self.receivers:
            if receiver.name in seen:
                raise ValueError(f"receivers: the name {receiver.name!r} is used twice")
            seen.add(receiver.name)
        return self
