"""Throttles put on agents by hand (``POST /v1/throttles``): the request, checked field by
field, and who put a throttle on (a rule of an incident, or an operator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_sre.numbers import NumberError, checked_number
from agent_sre.units import parse_duration

DEFAULT_RPM = 6.0
"""Requests a minute of a throttle that does not say (``throttle_agent`` and the API)."""
DEFAULT_FOR = 600.0
"""How long a throttle that does not say holds, in seconds (10m)."""
MIN_RPM = 0.001
"""The slowest throttle: below it, ``Retry-After`` and the bucket's arithmetic lose meaning
(block the agent instead)."""
MAX_RPM = 1_000_000.0
MAX_AGENT_ID = 256
MAX_BY = 100
FIELDS = ("agent_id", "requests_per_minute", "for", "by")


class ThrottleRequestError(ValueError):
    """A field of a throttle request is wrong: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class PutBy:
    """Who put a throttle on (or lifted it): a rule of an incident, or an operator."""

    rule: str = ""
    incident: str = ""
    operator: str = ""

    def describe(self) -> str:
        """``rule slow-down (incident inc-3)``, ``operator alice`` or ``unknown``."""
        if self.rule:
            return f"rule {self.rule}" + (f" (incident {self.incident})" if self.incident else "")
        if self.operator:
            return f"operator {self.operator}"
        return "unknown"

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "incident": self.incident, "operator": self.operator}


@dataclass(frozen=True)
class ThrottleRequest:
    """A throttle to put on by hand: ``agent_id`` to ``requests_per_minute`` for ``lasting``
    seconds, by ``by`` (a name the operator gives, or empty)."""

    agent_id: str
    requests_per_minute: float
    lasting: float
    by: str = ""

    @classmethod
    def from_json(cls, body: Any) -> ThrottleRequest:
        """The request in ``body`` (decoded JSON): ``agent_id`` (required),
        ``requests_per_minute`` (a number above 0, default 6), ``for`` (a duration such as
        ``10m`` or a number of seconds above 0, default 10m), ``by`` (optional).

        Raises:
            ThrottleRequestError: naming the first field that is wrong (an unknown one too).
        """
        if not isinstance(body, dict):
            raise ThrottleRequestError("body", "must be a JSON object")
        for key in body:
            if key not in FIELDS:
                raise ThrottleRequestError(str(key), f"unknown field (known: {', '.join(FIELDS)})")
        agent = body.get("agent_id")
        if not isinstance(agent, str) or not agent.strip():
            raise ThrottleRequestError("agent_id", "required: the agent's id, a non-empty string")
        if len(agent) > MAX_AGENT_ID:
            raise ThrottleRequestError("agent_id", f"longer than {MAX_AGENT_ID} characters")
        rpm = body.get("requests_per_minute", DEFAULT_RPM)
        if isinstance(rpm, bool) or not isinstance(rpm, (int, float)):
            raise ThrottleRequestError(
                "requests_per_minute", f"must be a number above 0, not {rpm!r}"
            )
        try:
            checked_number(rpm)
        except NumberError as exc:
            raise ThrottleRequestError(
                "requests_per_minute", f"must be a number above 0: {exc}"
            ) from None
        if rpm <= 0:
            raise ThrottleRequestError(
                "requests_per_minute", f"must be a number above 0, not {rpm!r}"
            )
        if not MIN_RPM <= rpm <= MAX_RPM:
            raise ThrottleRequestError(
                "requests_per_minute",
                f"must be a number above 0, from {MIN_RPM:g} (a call in ~17 hours) to "
                f"{MAX_RPM:g}, not {rpm!r}",
            )
        given = body.get("for", DEFAULT_FOR)
        if not isinstance(given, (str, int, float)):
            raise ThrottleRequestError("for", f"must be a duration such as 10m, not {given!r}")
        try:
            lasting = parse_duration(given)
        except ValueError as exc:
            raise ThrottleRequestError("for", str(exc)) from None
        if lasting <= 0:
            raise ThrottleRequestError("for", "must be longer than 0")
        by = body.get("by", "")
        if not isinstance(by, str):
            raise ThrottleRequestError("by", f"must be a string, not {by!r}")
        return cls(agent, float(rpm), lasting, by.strip()[:MAX_BY])
