"""The ``replay:`` section of the configuration."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from agent_sre.section import Duration, Section


class CaptureConfig(Section):
    """Which proxied calls keep their request and response bodies, and how much of them."""

    enabled: bool = True
    share: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of ordinary calls whose bodies are kept; errors, faults and refusals always."""
    max_body_kib: int = Field(256, ge=1)
    """Each request or response body is cut here (marked ``truncated``)."""
    max_trace_mib: float = Field(8.0, gt=0)
    """Bodies kept per trace; later calls of the trace keep only their metadata."""


class RedactionConfig(Section):
    """Applied to every body before it is written (headers are never stored)."""

    patterns: list[str] = []
    """Extra regular expressions; each match is replaced by ``[REDACTED]``."""

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"patterns[{i}]: {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns


class ReplayConfig(Section):
    """The trace buffer, call capture and replay sessions."""

    enabled: bool = True
    """The trace buffer, capture and sessions (changing it needs a restart)."""
    retention: Duration = 3600.0
    """How long ordinary traces are kept."""
    keep_interesting_for: Duration = 86400.0
    """How long traces with an error, a chaos fault or a refusal are kept."""
    max_size_mib: float = Field(256.0, gt=0)
    """Stored spans and bodies; the oldest ordinary traces go first when it is reached."""
    capture: CaptureConfig = CaptureConfig()
    redaction: RedactionConfig = RedactionConfig()
    max_sessions: int = Field(16, ge=1)
    """Replay sessions open at once."""
