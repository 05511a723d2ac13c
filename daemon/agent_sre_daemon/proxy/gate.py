"""The cost guard on the proxy's path: admit (reserve) before forwarding, settle after.

Wraps the pure :class:`CostGuard` and a :class:`LedgerStore`, and turns their outcomes into
metrics, signals on the node's bus, and the admin API's views. Time comes from the node's
clock (signals of the store's own failures) or from the caller (everything else).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.bounded import BoundedMap
from agent_sre.cost.budgets import oldest_buckets, spend_by_subject
from agent_sre.cost.forecast import spend_forecast
from agent_sre.cost.guard import CostGuard, Denial
from agent_sre.cost.ledger import Refusal, Reservation
from agent_sre.cost.spec import PriceAs
from agent_sre.gateway.cost import worst_case_usd
from agent_sre_daemon.stores.ledger import LedgerUnavailableError

if TYPE_CHECKING:
    from agent_sre.cost.budgets import CallIdentity
    from agent_sre.cost.forecast import SpendForecast
    from agent_sre.cost.ledger import Charge
    from agent_sre.cost.pricing import Pricer
    from agent_sre.cost.spec import BudgetsConfig
    from agent_sre.gateway.plan import CallPlan
    from agent_sre.signals import Signal
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.metrics import ProxyMetrics
    from agent_sre_daemon.signals import SignalBus
    from agent_sre_daemon.stores.ledger import LedgerStore

log = logging.getLogger("agent_sre.proxy")

PRUNE_INTERVAL = 300.0
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


@dataclass(frozen=True)
class GateConfig:
    """A gate's configuration, built and checked before it is applied (reload)."""

    budgets: BudgetsConfig
    pricer: Pricer
    guard: CostGuard


class BudgetGate:
    """Admission and settlement of priced calls against every budget that applies."""

    def __init__(
        self,
        config: BudgetsConfig,
        store: LedgerStore,
        pricer: Pricer,
        metrics: ProxyMetrics,
        node: str,
        clock: Clock,
        bus: SignalBus,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._clock = clock
        self._bus = bus
        self._agents: BoundedMap[str, AgentView] = BoundedMap(
            "proxy_agents", MAX_AGENTS, idle_seconds=AGENT_IDLE_SECONDS, on_evict=metrics.evicted
        )
        self._peaks: dict[str, _BudgetPeak] = {}
        self._pruned_at = 0.0
        self._apply(self.prepare(config, pricer, node))

    @property
    def config(self) -> BudgetsConfig:
        return self._config

    @property
    def node(self) -> str:
        """The node name ``node`` budgets are kept under."""
        return self._guard.node

    @property
    def pricer(self) -> Pricer:
        """The prices in force (replaced whole on reload)."""
        return self._pricer

    # -- life ---------------------------------------------------------------------------

    def prepare(self, config: BudgetsConfig, pricer: Pricer, node: str) -> GateConfig:
        """Builds a configuration without applying it (may raise on a bad one)."""
        policy = config.unpriced_models
        if isinstance(policy, PriceAs) and pricer.rates("", policy.price_as, 0.0) is None:
            raise ValueError(
                f"budgets.unpriced_models.price_as: model {policy.price_as!r} has no price "
                "either (add it to budgets.price_overrides)"
            )
        return GateConfig(config, pricer, CostGuard(config, node, self.metrics.evicted))

    def apply(self, prepared: GateConfig) -> None:
        """Puts new budgets, rate limits, prices and node name in force. Spend in the ledger
        is kept (it is keyed by budget name and subject), and so are operator blocks;
        rate-limit buckets and pacing restart from full."""
        prepared.guard.blocked.update(self._guard.blocked)
        self._apply(prepared)

    def _apply(self, prepared: GateConfig) -> None:
        self._config = prepared.budgets
        self._pricer = prepared.pricer
        self._guard = prepared.guard
        for spec in prepared.budgets.budgets:
            self.metrics.budget_limit.labels(spec.name).set(spec.limit_usd)
            if spec.name not in self._peaks:
                self.metrics.budget_spent.labels(spec.name).set(0.0)

    async def open(self) -> None:
        await self.store.open()
        self._guard.blocked.update(await self.store.get_blocked())

    async def close(self) -> None:
        await self.store.close()

    # -- the call path ------------------------------------------------------------------

    def worst_case_usd(self, plan: CallPlan, now: float) -> float:
        """What the call reserves (see :func:`agent_sre.gateway.cost.worst_case_usd`)."""
        return worst_case_usd(self._pricer, plan, self._config.default_max_output_tokens, now)

    async def admit(self, plan: CallPlan, who: CallIdentity, now: float) -> Ticket | Denial:
        """Kill switch, rate limits, pacing, then the reservation; a Denial on refusal."""
        guard = self._guard
        who = guard.identity(who)
        view = self._agent(who, now)
        view.requests += 1
        denial = guard.admit(who, plan.worst_case_tokens if plan.llm_call else 0, now)
        if denial is None and plan.llm_call:
            charges = guard.charges(who, now)
            if charges:
                denial = self._unpriced(plan, now)
            if charges and denial is None:
                outcome = await self._reserve(guard, plan, who, charges, now)
                if isinstance(outcome, Reservation):
                    return Ticket(who, outcome)
                denial = outcome
        if denial is None and plan.delegation:
            if plan.reserve_usd > 0:
                held = await self._hold(guard, who, plan.reserve_usd, now)
                if isinstance(held, Reservation):
                    return Ticket(who, held)
                denial = held
            else:
                denial = await self._may_delegate(guard, who, now)
        if denial is None:
            return Ticket(who)
        view.denied += 1
        self.metrics.budget_denied.labels(denial.rule).inc()
        signal = guard.refusal_signal(who, denial, now)
        if signal is not None:
            self._publish(signal)
        return denial

    async def _hold(
        self, guard: CostGuard, who: CallIdentity, amount: float, now: float
    ) -> Reservation | Denial | None:
        """A hand-off's hold on the caller's budgets (None when no budget covers it)."""
        charges = guard.charges(who, now)
        if not charges:
            return None
        try:
            outcome = await self.store.reserve(charges, amount)
        except LedgerUnavailableError as exc:
            return guard.unavailable(str(exc))
        if isinstance(outcome, Refusal):
            return guard.refused(outcome, amount, now)
        return outcome

    async def _may_delegate(self, guard: CostGuard, who: CallIdentity, now: float) -> Denial | None:
        """A hand-off to another agent (A2A) reserves nothing, but an agent whose budget is
        spent cannot hand work on (the callee would spend on its behalf)."""
        charges = guard.charges(who, now)
        if not charges:
            return None
        try:
            used = await self.store.used(charges)
        except LedgerUnavailableError as exc:
            return guard.unavailable(str(exc))
        return guard.spent(zip(charges, used, strict=True))

    def _unpriced(self, plan: CallPlan, now: float) -> Denial | None:
        """``budgets.unpriced_models`` for a call a budget covers: None to go on (priced, or
        ``price_as`` set on the plan, or ``allow``), or the refusal."""
        if plan.model and self._pricer.rates(plan.pricing, plan.model, now) is not None:
            return None
        policy = self._config.unpriced_models
        if policy == "allow":
            return None
        if isinstance(policy, PriceAs):
            plan.priced_as = policy.price_as
            return None
        what = f"model {plan.model!r}" if plan.model else "a request whose model cannot be read"
        return Denial(
            "model_unpriced",
            f"{what} has no price and a budget covers this call; "
            "budgets.unpriced_models is block (set price_overrides for it, or "
            "unpriced_models: {price_as: MODEL})",
            rule="unpriced_model",
        )

    async def _reserve(
        self,
        guard: CostGuard,
        plan: CallPlan,
        who: CallIdentity,
        charges: tuple[Charge, ...],
        now: float,
    ) -> Reservation | Denial:
        amount = self.worst_case_usd(plan, now)
        try:
            outcome = await self.store.reserve(charges, amount)
            if isinstance(outcome, Refusal):
                return guard.refused(outcome, amount, now)
            if self._config.auto_throttle:
                # pace on what others hold: our own reservation is not spend yet
                used = [total - amount for total in await self.store.used(charges)]
                paced = guard.pace(who, zip(charges, used, strict=True), now)
                if paced is not None:
                    await self.store.settle(outcome, 0.0)
                    return paced
        except LedgerUnavailableError as exc:
            return guard.unavailable(str(exc))
        return outcome

    async def settle(self, ticket: Ticket, cost_usd: float, now: float) -> None:
        """Books the actual cost of an admitted call and raises the signals it causes."""
        reservation = ticket.reservation
        if not math.isfinite(cost_usd) or cost_usd < 0:  # never NaN or negative spend
            log.warning("cost %r of a call is not bookable: settled at its reservation", cost_usd)
            cost_usd = reservation.amount_usd if reservation is not None else 0.0
        view = self._agent(ticket.who, now)
        view.cost_usd += cost_usd
        if reservation is None:
            return
        spent = await self.store.settle(reservation, cost_usd)
        for charge, total in zip(reservation.charges, spent, strict=True):
            peak = self._peaks.setdefault(charge.budget, _BudgetPeak())
            if peak.bucket != charge.bucket:
                peak.bucket, peak.spent = charge.bucket, 0.0
            if total >= peak.spent:
                peak.spent = total
                self.metrics.budget_spent.labels(charge.budget).set(total)
        for signal in self._guard.settled(
            ticket.who, cost_usd, zip(reservation.charges, spent, strict=True), now
        ):
            self._publish(signal)
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = now
            await self.prune(now)

    async def prune(self, now: float) -> None:
        """Forgets buckets no window covers any more (memory, SQLite rows, fired signals)."""
        oldest = oldest_buckets(self._config.budgets, now)
        await self.store.prune(oldest)
        self._guard.forget_before(oldest)

    # -- signals ------------------------------------------------------------------------

    def _publish(self, signal: Signal) -> None:
        self.metrics.signals.labels(signal.type).inc()
        self._bus.publish(signal)

    def store_error(self, message: str) -> None:
        """Called by the ledger store on every failure it absorbs or reports."""
        self.metrics.store_errors.inc()
        self._publish(self._guard.store_error(message, self._clock.time()))

    # -- operators ----------------------------------------------------------------------

    async def refresh_blocks(self) -> None:
        """Takes the operator blocks from the store, so a block set through another daemon
        sharing the ledger (Redis) holds here too; on a store error the last known stay."""
        blocked = await self.store.get_blocked()
        guard = self._guard.blocked
        guard.clear()
        guard.update(blocked)

    async def block(self, agent_id: str, reason: str) -> None:
        self._guard.blocked[agent_id] = reason
        await self.store.set_blocked(agent_id, reason)

    async def unblock(self, agent_id: str) -> bool:
        known = self._guard.blocked.pop(agent_id, None) is not None
        await self.store.set_blocked(agent_id, None)
        return known

    def blocked(self) -> dict[str, str]:
        """The agents blocked (kill switch) with the reason of each, as last read."""
        return dict(self._guard.blocked)

    def agents(self) -> list[dict[str, Any]]:
        """Every agent seen or blocked, for ``GET /v1/agents``."""
        blocked = self._guard.blocked
        rows = []
        for agent_id in sorted(set(self._agents) | set(blocked)):
            view = self._agents.peek(agent_id)
            rows.append(
                {
                    "agent_id": agent_id,
                    "blocked": agent_id in blocked,
                    "blocked_reason": blocked.get(agent_id),
                    "requests": view.requests if view else 0,
                    "denied": view.denied if view else 0,
                    "cost_usd": view.cost_usd if view else 0.0,
                    "last_seen": view.last_seen if view else None,
                }
            )
        return rows

    async def budgets(self, now: float) -> list[dict[str, Any]]:
        """Every budget with each subject's spend in its current window, for
        ``GET /v1/budgets``."""
        counters = [
            (view.budget, view.subject, view.bucket, view.spent_usd)
            for view in await self.store.counters()
        ]
        out: list[dict[str, Any]] = []
        for spec in self._config.budgets:
            subjects = spend_by_subject(spec, counters, now)
            out.append(
                {
                    "name": spec.name,
                    "scope": spec.scope,
                    "window": spec.window,
                    "limit_usd": spec.limit_usd,
                    "action": spec.action,
                    "soft_thresholds": spec.soft_thresholds,
                    "subjects": [
                        {
                            "subject": subject,
                            # a ledger written before usage was validated may hold NaN or
                            # infinities: null, so the answer stays JSON
                            "spent_usd": spent if math.isfinite(spent) else None,
                            "remaining_usd": max(0.0, spec.limit_usd - spent)
                            if math.isfinite(spent)
                            else None,
                        }
                        for subject, spent in sorted(subjects.items())
                    ],
                }
            )
        return out

    async def forecasts(self, name: str, now: float) -> list[tuple[str, SpendForecast]] | None:
        """Each subject of the budget ``name`` with its spend series and forecast, subjects
        sorted (None when no budget has that name), for ``GET /v1/budgets/{name}``."""
        spec = next((b for b in self._config.budgets if b.name == name), None)
        if spec is None:
            return None
        by_subject: dict[str, dict[int, float]] = {}
        for view in await self.store.counters():
            if view.budget == name:
                buckets = by_subject.setdefault(view.subject, {})
                buckets[view.bucket] = buckets.get(view.bucket, 0.0) + view.spent_usd
        return [
            (subject, spend_forecast(spec, buckets, now))
            for subject, buckets in sorted(by_subject.items())
        ]

    def _agent(self, who: CallIdentity, now: float) -> AgentView:
        view = self._agents.setdefault(who.agent_id or "unknown", AgentView, now)
        view.last_seen = now
        return view
