"""A step's analysis: baseline against canary over the step's calls, check by check.

Each check gives ``pass``, ``fail`` or ``wait`` (too few samples to judge); the analysis
fails when any check fails, waits when any waits, and passes otherwise.
"""

from __future__ import annotations

import base64
import math
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_sre.delivery.spec import HIGHER_IS_BETTER
from agent_sre.delivery.stats import mann_whitney_u, percentile

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent_sre.delivery.spec import AnalysisSpec, CheckSpec

PASS, FAIL, WAIT = "pass", "fail", "wait"
_TASKS_KEPT = 10_000
_SERIES = ("success", "latency", "ttft", "cost", "tokens")


@dataclass(frozen=True)
class Observation:
    """One finished call of a variant, as the analysis sees it."""

    success: bool
    latency: float
    """Seconds from the request to the end of the answer."""
    ttft: float | None = None
    cost: float | None = None
    tokens: int | None = None
    task: str = ""


class Samples:
    """What one variant's calls measured during the current step (the newest
    ``max_samples`` calls)."""

    def __init__(self, max_samples: int = 10_000) -> None:
        self.calls = 0
        self.success: deque[float] = deque(maxlen=max_samples)
        self.latency: deque[float] = deque(maxlen=max_samples)
        self.ttft: deque[float] = deque(maxlen=max_samples)
        self.cost: deque[float] = deque(maxlen=max_samples)
        self.tokens: deque[float] = deque(maxlen=max_samples)
        self.task_cost: dict[str, float] = {}

    def copy(self) -> Samples:
        """A copy to analyse elsewhere while calls keep adding to this one."""
        out = Samples(self.success.maxlen or 10_000)
        out.calls = self.calls
        for name in _SERIES:
            getattr(out, name).extend(getattr(self, name))
        out.task_cost = dict(self.task_cost)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The samples as JSON values, each series packed (little-endian float64, base64):
        a full step encodes in about a millisecond."""
        out: dict[str, Any] = {"calls": self.calls, "task_cost": dict(self.task_cost)}
        for name in _SERIES:
            values: deque[float] = getattr(self, name)
            packed = struct.pack(f"<{len(values)}d", *values)
            out[name] = base64.b64encode(packed).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_samples: int = 10_000) -> Samples:
        """The samples :meth:`to_dict` gave; the newest ``max_samples`` of each series.

        Raises:
            KeyError, TypeError or ValueError: not such a record.
        """
        out = cls(max_samples)
        out.calls = int(data["calls"])
        for name in _SERIES:
            packed = base64.b64decode(str(data[name]), validate=True)
            if len(packed) % 8:
                raise ValueError(f"{name}: {len(packed)} bytes is not a whole number of values")
            getattr(out, name).extend(struct.unpack(f"<{len(packed) // 8}d", packed))
        tasks = data.get("task_cost") or {}
        if not isinstance(tasks, dict):
            raise TypeError("task_cost is not a mapping")
        out.task_cost = {str(k): float(v) for k, v in list(tasks.items())[:_TASKS_KEPT]}
        return out

    def add(self, seen: Observation) -> None:
        self.calls += 1
        self.success.append(1.0 if seen.success else 0.0)
        self.latency.append(seen.latency)
        if seen.ttft is not None:
            self.ttft.append(seen.ttft)
        if seen.cost is not None:
            self.cost.append(seen.cost)
            if seen.task and (seen.task in self.task_cost or len(self.task_cost) < _TASKS_KEPT):
                self.task_cost[seen.task] = self.task_cost.get(seen.task, 0.0) + seen.cost
        if seen.tokens is not None:
            self.tokens.append(float(seen.tokens))

    def values(self, metric: str) -> Sequence[float]:
        """The per-call (per-task for ``cost_per_task``) values a metric is computed from."""
        if metric == "success_ratio":
            return self.success
        if metric == "latency_p95":
            return self.latency
        if metric == "ttft_p95":
            return self.ttft
        if metric == "cost_per_call":
            return self.cost
        if metric == "tokens_per_call":
            return self.tokens
        return list(self.task_cost.values())


def figure(metric: str, values: Sequence[float]) -> float | None:
    """The metric's value over ``values`` (p95 for latencies, the mean otherwise)."""
    if not values:
        return None
    if metric.endswith("_p95"):
        return percentile(values, 0.95)
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class CheckResult:
    metric: str
    verdict: str
    baseline: float | None
    canary: float | None
    baseline_samples: int
    canary_samples: int
    relative_change: float | None = None
    """How much worse the canary is, relative to the baseline (negative: better)."""
    p_value: float | None = None
    """One-sided Mann-Whitney U p-value of "the canary is worse"."""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Analysis:
    verdict: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.verdict == FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checks": [c.to_dict() for c in self.checks]}


def analyse(spec: AnalysisSpec, baseline: Samples, canary: Samples) -> Analysis:
    """Judges ``canary`` against ``baseline`` with every check of ``spec``."""
    results = tuple(
        check_one(check, baseline, canary, spec.min_samples, spec.confidence)
        for check in spec.checks
    )
    verdicts = {r.verdict for r in results}
    verdict = FAIL if FAIL in verdicts else WAIT if WAIT in verdicts else PASS
    return Analysis(verdict, results)


def check_one(
    check: CheckSpec, baseline: Samples, canary: Samples, min_samples: int, confidence: float
) -> CheckResult:
    metric = check.metric
    base_values, canary_values = baseline.values(metric), canary.values(metric)
    base, new = figure(metric, base_values), figure(metric, canary_values)
    nb, nc = len(base_values), len(canary_values)
    need_baseline = check.max_relative_change is not None
    short = len(canary_values) < min_samples or (need_baseline and len(base_values) < min_samples)
    if short or new is None:
        reason = f"fewer than {min_samples} samples per variant"
        return CheckResult(metric, WAIT, base, new, nb, nc, reason=reason)
    higher_better = metric in HIGHER_IS_BETTER
    if check.threshold is not None:
        beyond = new < check.threshold if higher_better else new > check.threshold
        if beyond:
            side = "below" if higher_better else "above"
            reason = f"canary {new:.6g} is {side} the threshold {check.threshold:g}"
            return CheckResult(metric, FAIL, base, new, nb, nc, reason=reason)
    if check.max_relative_change is None or base is None:
        return CheckResult(metric, PASS, base, new, nb, nc)
    worse_by = (base - new) if higher_better else (new - base)
    relative = worse_by / abs(base) if base else (math.inf if worse_by > 0 else 0.0)
    if higher_better:
        test = mann_whitney_u(base_values, canary_values)
    else:
        test = mann_whitney_u(canary_values, base_values)
    significant = test.p_greater < 1 - confidence
    relative_out = relative if math.isfinite(relative) else None
    if relative > check.max_relative_change and significant:
        reason = (
            f"canary {new:.6g} is {relative:.1%} worse than baseline {base:.6g} "
            f"(limit {check.max_relative_change:.1%}, p={test.p_greater:.3g})"
        )
        return CheckResult(
            metric, FAIL, base, new, nb, nc, relative_change=relative_out,
            p_value=test.p_greater, reason=reason,
        )  # fmt: skip
    return CheckResult(
        metric, PASS, base, new, nb, nc, relative_change=relative_out, p_value=test.p_greater
    )
