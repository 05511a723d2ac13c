"""The cost guard on the proxy's path: admit (reserve) before forwarding, settle after.

Wraps the pure :class:`CostGuard` and a :class:`LedgerStore`, and turns their outcomes into
metrics, logged signals and the admin API's view.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent_sre.bounded import BoundedMap
from agent_sre.cost.guard import CostGuard, Denial, Signal
from agent_sre.cost.ledger import Refusal, Reservation
from agent_sre.cost.windows import position
from agent_sre_daemon.stores.ledger import LedgerUnavailableError

if TYPE_CHECKING:
    from agent_sre.cost.budgets import CallIdentity
    from agent_sre.cost.ledger import Charge
    from agent_sre.cost.pricing import Pricer
    from agent_sre.cost.spec import BudgetsConfig
    from agent_sre_daemon.proxy.metrics import ProxyMetrics
    from agent_sre_daemon.proxy.providers.plans import CallPlan
    from agent_sre_daemon.stores.ledger import LedgerStore

log = logging.getLogger("agent_sre.proxy")

MAX_AGENTS = 10_000
"""Agents the admin API remembers (``GET /v1/agents``), least recently seen out first."""
AGENT_IDLE_SECONDS = 86_400.0


@dataclass
class Ticket:
    """An admitted call: its identity and the reservation it holds (None: nothing to hold)."""

    who: CallIdentity
    reservation: Reservation | None = None


@dataclass
class AgentView:
    """What the admin API shows of an agent seen on the proxy."""

    requests: int = 0
    denied: int = 0
    cost_usd: float = 0.0
    last_seen: float = 0.0


@dataclass
class _BudgetPeak:
    bucket: int = -1
    spent: float = 0.0


@dataclass
class BudgetGate:
    """Admission and settlement of priced calls against every budget that applies."""

    config: BudgetsConfig
    store: LedgerStore
    pricer: Pricer
    metrics: ProxyMetrics
    node: str
    guard: CostGuard = field(init=False)
    agents: BoundedMap[str, AgentView] = field(
        default_factory=lambda: BoundedMap(
            "proxy_agents", MAX_AGENTS, idle_seconds=AGENT_IDLE_SECONDS
        )
    )
    signals: deque[tuple[float, Signal]] = field(default_factory=lambda: deque(maxlen=200))
    _peaks: dict[str, _BudgetPeak] = field(default_factory=dict)
    _pruned_at: float = 0.0
    prune_interval: float = 300.0

    def __post_init__(self) -> None:
        self.agents.on_evict = self.metrics.evicted
        self.guard = CostGuard(self.config, self.node, self.metrics.evicted)
        for spec in self.config.budgets:
            self.metrics.budget_limit.labels(spec.name).set(spec.limit_usd)
            self.metrics.budget_spent.labels(spec.name).set(0.0)

    def reload(self, config: BudgetsConfig, pricer: Pricer) -> None:
        """Applies new budgets, rate limits and prices; spend in the ledger is kept (it is
        keyed by budget name and subject), and so are operator blocks. Rate-limit buckets
        and pacing restart from full."""
        blocked = dict(self.guard.blocked)
        self.config = config
        self.pricer = pricer
        self.guard = CostGuard(config, self.node, self.metrics.evicted)
        self.guard.blocked.update(blocked)
        for spec in config.budgets:
            self.metrics.budget_limit.labels(spec.name).set(spec.limit_usd)

    async def open(self) -> None:
        await self.store.open()
        self.guard.blocked.update(await self.store.get_blocked())

    def worst_case_usd(self, plan: CallPlan, now: float) -> float:
        """The most the call can cost: estimated input plus ``max_tokens`` (or the default
        cap, bounded by the model's context) of output. Unpriced models reserve nothing."""
        rates = self.pricer.rates(plan.provider, plan.model, now)
        if rates is None:
            return 0.0
        output = plan.max_output_tokens
        if output is None:
            output = self.config.default_max_output_tokens
            if rates.context_window:
                output = min(output, rates.context_window)
        return (
            plan.input_tokens_estimate * rates.input_per_mtok + output * rates.output_per_mtok
        ) / 1_000_000

    async def admit(self, plan: CallPlan, who: CallIdentity, now: float) -> Ticket | Denial:
        """Kill switch, rate limits, pacing, then the reservation; a Denial on refusal."""
        who = self.guard.identity(who)
        view = self._agent(who, now)
        view.requests += 1
        worst_tokens = plan.input_tokens_estimate + (plan.max_output_tokens or 0)
        denial = self.guard.admit(who, worst_tokens if plan.priced else 0, now)
        if denial is None and plan.priced:
            charges = self.guard.charges(who, now)
            if charges:
                outcome = await self._reserve(plan, who, charges, now)
                if isinstance(outcome, Reservation):
                    return Ticket(who, outcome)
                denial = outcome
        if denial is None:
            return Ticket(who)
        view.denied += 1
        label = denial.budget or {
            "agent_blocked": "kill_switch",
            "agent_throttled": "rate_limit",
            "budget_unavailable": "store",
        }.get(denial.kind, denial.kind)
        self.metrics.budget_denied.labels(label).inc()
        return denial

    async def _reserve(
        self, plan: CallPlan, who: CallIdentity, charges: tuple[Charge, ...], now: float
    ) -> Reservation | Denial:
        amount = self.worst_case_usd(plan, now)
        try:
            outcome = await self.store.reserve(charges, amount)
            if isinstance(outcome, Refusal):
                return self.guard.refused(outcome, amount, now)
            if self.config.auto_throttle:
                # pace on what others hold: our own reservation is not spend yet
                used = [total - amount for total in await self.store.used(charges)]
                paced = self.guard.pace(who, zip(charges, used, strict=True), now)
                if paced is not None:
                    await self.store.settle(outcome, 0.0)
                    return paced
        except LedgerUnavailableError as exc:
            return Denial(
                "budget_unavailable",
                f"budget ledger unavailable ({exc}); budgets.on_store_error is fail_closed",
            )
        return outcome

    async def settle(self, ticket: Ticket, cost_usd: float, now: float) -> None:
        """Books the actual cost of an admitted call and raises the signals it causes."""
        view = self._agent(ticket.who, now)
        view.cost_usd += cost_usd
        if ticket.reservation is None:
            return
        reservation = ticket.reservation
        spent = await self.store.settle(reservation, cost_usd)
        for charge, total in zip(reservation.charges, spent, strict=True):
            peak = self._peaks.setdefault(charge.budget, _BudgetPeak())
            if peak.bucket != charge.bucket:
                peak.bucket, peak.spent = charge.bucket, 0.0
            if total >= peak.spent:
                peak.spent = total
                self.metrics.budget_spent.labels(charge.budget).set(total)
        for signal in self.guard.settled(
            ticket.who, cost_usd, zip(reservation.charges, spent, strict=True), now
        ):
            self.raise_signal(signal, now)
        if now - self._pruned_at >= self.prune_interval:
            self._pruned_at = now
            await self.prune(now)

    async def prune(self, now: float) -> None:
        """Forgets buckets no window covers any more (memory, SQLite rows, fired signals)."""
        oldest = {}
        for spec in self.config.budgets:
            if spec.window != "per_task":
                where = position(spec.window, now)
                oldest[spec.name] = where.bucket - where.span + 1
        await self.store.prune(oldest)
        self.guard.forget_before(oldest)

    def raise_signal(self, signal: Signal, now: float) -> None:
        self.signals.append((now, signal))
        self.metrics.signals.labels(signal.kind).inc()
        log.warning("cost signal %s: %s", signal.kind, signal.message)

    def store_error(self, message: str) -> None:
        """Called by the ledger store on every failure it absorbs or reports."""
        self.metrics.store_errors.inc()
        self.raise_signal(Signal("budget_store_error", message), 0.0)

    async def block(self, agent_id: str, reason: str) -> None:
        self.guard.blocked[agent_id] = reason
        await self.store.set_blocked(agent_id, reason)

    async def unblock(self, agent_id: str) -> bool:
        known = self.guard.blocked.pop(agent_id, None) is not None
        await self.store.set_blocked(agent_id, None)
        return known

    def _agent(self, who: CallIdentity, now: float) -> AgentView:
        view = self.agents.setdefault(who.agent_id or "unknown", AgentView, now)
        view.last_seen = now
        return view
