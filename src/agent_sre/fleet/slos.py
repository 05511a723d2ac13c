"""The SLO part of a node's summary, from copies of the SLO engine's hour rings.

Runs off the event loop: the shell copies the rings (:meth:`SLOEngine.hour_copies`, a C-level
copy per series) and this sums every instance's hour buckets per SLO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_sre.fleet.summary import MAX_SLOS, SLORow
from agent_sre.slo.buckets import hour_deltas

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.slo.alerts import Status
    from agent_sre.slo.buckets import HourCopy
    from agent_sre.slo.spec import SLOSpec


def slo_rows(copies: Sequence[tuple[SLOSpec, Status, list[HourCopy]]]) -> tuple[SLORow, ...]:
    """Per SLO (at most :data:`MAX_SLOS`), its hour buckets over the window with every label
    set summed, and its worst status (``unknown`` with no event in the window)."""
    rows = []
    for spec, status, series in copies[:MAX_SLOS]:
        summed: dict[int, list[int]] = {}
        for copy in series:
            for hour, good, total in hour_deltas(copy):
                pair = summed.setdefault(hour, [0, 0])
                pair[0] += good
                pair[1] += total
        buckets = tuple((hour, g, t) for hour, (g, t) in sorted(summed.items()) if t)
        rows.append(
            SLORow(
                spec.name,
                spec.target,
                float(spec.window),
                status.value.lower() if buckets else "unknown",
                buckets,
            )
        )
    return tuple(rows)
