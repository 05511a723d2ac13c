"""The cost guard's decisions: kill switch, rate limits, budget refusals, pacing, signals.

The ledger itself (reserve/settle) lives behind a store in the daemon; this class decides
everything around it from plain values and the current time. What an operator should hear
about comes out as :class:`~agent_sre.signals.Signal` (source ``budgets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agent_sre.bounded import BoundedMap
from agent_sre.cost.anomaly import SpendAnomalyDetector
from agent_sre.cost.budgets import UNKNOWN_AGENT, CallIdentity, charges_for
from agent_sre.cost.pacing import SpendPacer
from agent_sre.cost.ratelimit import RateLimiter
from agent_sre.cost.refusals import RefusalDigest
from agent_sre.cost.windows import position
from agent_sre.signals import Severity, Signal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.bounded import OnEvict
    from agent_sre.cost.ledger import Charge, Refusal
    from agent_sre.cost.spec import BudgetsConfig, BudgetSpec

MAX_FIRED = 20_000
"""Threshold signals remembered as fired (per budget subject, bucket and share), so each fires
once per window; forgetting one early at most repeats a signal."""
FIRED_IDLE_SECONDS = 40 * 86_400.0
"""Longer than the longest window (a month); ``per_task`` firings go after this too."""

DenialKind = Literal[
    "agent_blocked", "agent_throttled", "budget_exceeded", "budget_unavailable", "model_unpriced"
]


@dataclass(frozen=True)
class Denial:
    """Why a call is refused before it reaches the provider."""

    kind: DenialKind
    message: str
    retry_after: float | None = None
    budget: str | None = None
    """The budget involved (a refusal, a throttle, or pacing against it)."""
    rule: str = ""
    """What refused, as ``agent_sre_budget_denied_requests_total`` counts it: the budget's
    name, or ``kill_switch``, ``rate_limit``, ``pacing``, ``store``."""


SOURCE = "budgets"
"""The ``source`` of every signal the cost guard raises."""


class CostGuard:
    """Everything the proxy asks before and after a priced call, except the ledger."""

    def __init__(self, config: BudgetsConfig, node: str, on_evict: OnEvict | None = None) -> None:
        """``on_evict`` hears of every entry dropped from the per-agent maps (to count them)."""
        self.config = config
        self.node = node
        self._specs: dict[str, BudgetSpec] = {spec.name: spec for spec in config.budgets}
        self._limiter = RateLimiter(config.rate_limits, on_evict)
        self._pacer = SpendPacer(config.auto_throttle_tau, on_evict)
        self._anomaly = SpendAnomalyDetector(config.anomaly, on_evict)
        self._refusals = RefusalDigest(on_evict=on_evict)
        self._fired: BoundedMap[tuple[str, int, float], bool] = BoundedMap(
            "budget_signals", MAX_FIRED, idle_seconds=FIRED_IDLE_SECONDS, on_evict=on_evict
        )
        self.blocked: dict[str, str] = {}
        """Blocked agent ids and the reason given."""

    def identity(self, who: CallIdentity) -> CallIdentity:
        """Fills the team from ``agent_teams`` when the call did not carry one."""
        if who.team or not who.agent_id:
            return who
        team = self.config.agent_teams.get(who.agent_id, "")
        return CallIdentity(who.agent_id, who.task_id, team, who.agent_version) if team else who

    def forget_before(self, oldest: dict[str, int]) -> None:
        """Drops remembered signal firings of buckets older than ``oldest[budget]``."""
        for key in list(self._fired):
            if key[1] < oldest.get(key[0].split("|", 1)[0], key[1]):
                self._fired.pop(key)

    def state_sizes(self) -> dict[str, int]:
        """Entries in each per-agent map (for tests and the status page)."""
        return {
            "rate_limit_buckets": len(self._limiter),
            "pacing": len(self._pacer),
            "anomaly": len(self._anomaly),
            "budget_signals": len(self._fired),
        }

    def admit(self, who: CallIdentity, worst_tokens: int, now: float) -> Denial | None:
        """Kill switch and rate limits, checked before any reservation."""
        agent = who.agent_id or UNKNOWN_AGENT
        if agent in self.blocked:
            return Denial(
                "agent_blocked", f"agent {agent!r} is blocked by an operator", rule="kill_switch"
            )
        wait = self._limiter.check(agent, worst_tokens, now)
        if wait > 0:
            return Denial(
                "agent_throttled",
                f"agent {agent!r} exceeds its request or token rate; retry in {wait:.1f}s",
                retry_after=wait,
                rule="rate_limit",
            )
        return None

    def unavailable(self, reason: str) -> Denial:
        """The answer when the ledger cannot be asked and the policy is ``fail_closed``."""
        return Denial(
            "budget_unavailable",
            f"budget ledger unavailable ({reason}); budgets.on_store_error is fail_closed",
            rule="store",
        )

    def refusal_signal(self, who: CallIdentity, denial: Denial, now: float) -> Signal | None:
        """A ``budget_refused`` signal, at most one per agent and rule a minute."""
        return self._refusals.refused(who.agent_id or UNKNOWN_AGENT, denial, now)

    def charges(self, who: CallIdentity, now: float) -> tuple[Charge, ...]:
        return charges_for(self.config.budgets, who, self.node, now)

    def refused(self, refusal: Refusal, amount_usd: float, now: float) -> Denial:
        """The answer to a ledger refusal, from the budget's action."""
        spec = self._specs[refusal.charge.budget]
        left = max(0.0, spec.limit_usd - refusal.spent_usd - refusal.reserved_usd)
        message = (
            f"budget {spec.name!r} ({spec.scope} {refusal.charge.subject}, {spec.window}) "
            f"cannot cover this request: worst case ${amount_usd:.6f}, "
            f"${left:.6f} left of ${spec.limit_usd:g}"
        )
        if spec.action == "throttle":
            wait = position(spec.window, now).ends_in
            wait = 3600.0 if wait == float("inf") else wait
            return Denial(
                "agent_throttled", message, retry_after=wait, budget=spec.name, rule=spec.name
            )
        return Denial("budget_exceeded", message, budget=spec.name, rule=spec.name)

    def spent(self, windows: Iterable[tuple[Charge, float]]) -> Denial | None:
        """The refusal of a call that spends nothing itself but hands work on (an A2A
        delegation) from an agent one of whose enforced budgets (charge, spent+reserved) is
        used up; None when every one has something left."""
        for charge, used in windows:
            spec = self._specs[charge.budget]
            if charge.enforce and used >= spec.limit_usd:
                message = (
                    f"budget {spec.name!r} ({spec.scope} {charge.subject}, {spec.window}) is "
                    f"spent (${used:.6f} of ${spec.limit_usd:g}): no work is handed on for it"
                )
                return Denial("budget_exceeded", message, budget=spec.name, rule=spec.name)
        return None

    def pace(
        self, who: CallIdentity, windows: Iterable[tuple[Charge, float]], now: float
    ) -> Denial | None:
        """Auto-throttle from (charge, spent+reserved by others) of the call's budgets."""
        if not self.config.auto_throttle:
            return None
        agent = who.agent_id or UNKNOWN_AGENT
        for charge, used in windows:
            spec = self._specs[charge.budget]
            if not charge.enforce or spec.scope not in ("agent", "task"):
                continue
            if used < spec.limit_usd * self.config.auto_throttle_after:
                continue  # early in the window a burst is fine
            horizon = position(spec.window, now).horizon
            wait = self._pacer.wait_for(agent, spec.limit_usd - used, horizon, now)
            if wait > 0:
                return Denial(
                    "agent_throttled",
                    f"agent {agent!r} spends fast enough to exhaust budget {spec.name!r} "
                    f"before its window ends; paced, retry in {wait:.1f}s",
                    retry_after=wait,
                    budget=spec.name,
                    rule="pacing",
                )
        return None

    def settled(
        self,
        who: CallIdentity,
        cost_usd: float,
        windows: Iterable[tuple[Charge, float]],
        now: float,
    ) -> list[Signal]:
        """Signals after a call was settled at ``cost_usd``; ``windows`` carry spent totals."""
        agent = who.agent_id or UNKNOWN_AGENT
        self._pacer.settled(agent, cost_usd, now)
        signals = []
        for charge, spent in windows:
            spec = self._specs[charge.budget]
            for share in (*spec.soft_thresholds, 1.0):
                key = (charge.counter, charge.bucket, share)
                if spent + 1e-12 < spec.limit_usd * share or key in self._fired:
                    continue
                self._fired.put(key, True, now)
                exhausted = share == 1.0
                signals.append(
                    Signal(
                        type="budget_exhausted" if exhausted else "budget_threshold",
                        source=SOURCE,
                        severity=Severity.CRITICAL if exhausted else Severity.WARNING,
                        at=now,
                        message=f"budget {spec.name!r} ({charge.subject}) at "
                        f"{spent / spec.limit_usd:.0%} of ${spec.limit_usd:g}",
                        labels={"agent_id": agent, "budget": spec.name, "subject": charge.subject},
                        value=spent,
                    )
                )
        anomaly = self._anomaly.observe(agent, cost_usd, now)
        if anomaly is not None:
            signals.append(
                Signal(
                    type="cost_anomaly",
                    source=SOURCE,
                    severity=Severity.WARNING,
                    at=now,
                    message=f"agent {agent!r} spent ${anomaly.interval_usd:.4f} this interval, "
                    f"expected about ${anomaly.expected_usd:.4f} ({anomaly.sigma:.1f} sigma)",
                    labels={"agent_id": agent},
                    value=anomaly.interval_usd,
                )
            )
        return signals

    def store_error(self, message: str, now: float) -> Signal:
        """The signal of a budget ledger failure (absorbed or reported)."""
        return Signal(
            type="budget_store_error",
            source=SOURCE,
            severity=Severity.CRITICAL,
            at=now,
            message=message,
        )
