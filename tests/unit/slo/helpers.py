"""Builders shared by the SLO engine tests: specs, span views and a traffic driver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre.slo.spec import SLOSpec
from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AgentSpan

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent_sre.slo.engine import SLOEngine
    from agent_sre.tracing.view import AttrValue

DAY0 = 1_699_920_000.0
"""A UTC midnight: a day, hour and minute boundary, so bucket edges are easy to reason about."""
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def slo(name: str = "tasks", **fields: Any) -> SLOSpec:
    """An SLO spec; defaults to task_success at 99% over 30d."""
    data: dict[str, Any] = {"name": name, "target": 0.99, "sli": {"kind": "task_success"}}
    data.update(fields)
    return SLOSpec.model_validate(data)


def span(
    kind: AgentSpanKind = AgentSpanKind.AGENT_TASK,
    *,
    error: bool = False,
    duration_s: float = 0.1,
    trace_id: bytes = b"\x01" * 16,
    attrs: Mapping[str, AttrValue] | None = None,
) -> AgentSpan:
    """A span view as the daemon would build it (attributes already read)."""
    start = 1_000_000_000_000_000_000
    return AgentSpan(
        kind=kind,
        explicit_kind=True,
        name="span",
        trace_id=trace_id,
        span_id=b"\x02" * 8,
        start_ns=start,
        end_ns=start + round(duration_s * 1e9),
        is_error=error,
        attrs=dict(attrs or {}),
    )


GOOD = span()
BAD = span(error=True)


def feed(engine: SLOEngine, at: float, good: int = 0, bad: int = 0) -> None:
    """Sends ``good`` successful and ``bad`` failed task spans at time ``at``."""
    for _ in range(good):
        engine.observe(GOOD, at)
    for _ in range(bad):
        engine.observe(BAD, at)
