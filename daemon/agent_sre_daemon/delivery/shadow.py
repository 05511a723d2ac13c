"""Shadow calls: a copy of a call sent to the candidate in the background; its answer is
measured and discarded, its cost counted apart and bounded by the rollout's own budget.

Like an agent's own call, a copy reserves its worst-case cost before it is sent and settles
at what it cost: copies in flight together can never spend past the budget. At most
:data:`MAX_IN_FLIGHT` copies of one rollout are in flight; beyond that (a candidate that
hangs) a copy is not sent, and counted (``agent_sre_state_evictions_total{map=
"shadow_in_flight"}``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from agent_sre.delivery.analysis import Observation
from agent_sre.delivery.assign import CANDIDATE
from agent_sre.gateway.cost import call_cost, settled_usage, worst_case_usd
from agent_sre.gateway.plan import ResponseFacts
from agent_sre.gateway.providers import facts_from_json
from agent_sre_daemon.delivery.stage import upstream_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import Counter

    from agent_sre.bounded import OnEvict
    from agent_sre.cost.pricing import Pricer
    from agent_sre.delivery.rollout import Rollout
    from agent_sre.gateway.plan import CallPlan
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call

log = logging.getLogger("agent_sre.delivery")
SHADOW_TIMEOUT = 120.0
MAX_IN_FLIGHT = 64
"""Copies of one rollout's calls in flight at once; more are not sent (and counted)."""
DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""The output a copy reserves for when its request names no ``max_tokens`` (the budgets'
``default_max_output_tokens`` when the runtime is given it)."""


class ShadowCaller:
    def __init__(
        self,
        clock: Clock,
        pricer: Pricer,
        cost_metric: Counter,
        requests: Counter,
        on_evict: OnEvict | None = None,
        default_max_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        self.clock = clock
        self.requests = requests
        self.pricer = pricer
        self.cost_metric = cost_metric
        self.on_evict = on_evict
        self.default_max_output = default_max_output
        # keyed by rollout name (from the configuration or the token-holding admin API)
        self.spent: dict[str, float] = {}
        self.reserved: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            auto_decompress=True, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self, deadline: float) -> None:
        if self.tasks:
            left = max(0.0, deadline - self.clock.monotonic())
            _, pending = await asyncio.wait(set(self.tasks), timeout=left)
            for task in pending:
                task.cancel()
        if self.session is not None:
            await self.session.close()
            self.session = None

    def within_budget(self, rollout: Rollout, worst_case: float = 0.0) -> bool:
        """Whether a copy reserving ``worst_case`` fits what is left of the shadow budget."""
        name = rollout.name
        committed = self.spent.get(name, 0.0) + self.reserved.get(name, 0.0)
        budget = rollout.spec.shadow_budget_usd
        return committed < budget and committed + worst_case <= budget

    def mirror(
        self,
        rollout: Rollout,
        call: Call,
        rewrite: Callable[[Call, str], tuple[bytes, str, str] | None],
    ) -> bool:
        """Starts the candidate's copy of ``call``; False when none is sent (over budget,
        or a body without a model)."""
        if self.session is None:
            return False
        name = rollout.name
        if self.in_flight.get(name, 0) >= MAX_IN_FLIGHT:
            if self.on_evict is not None:
                self.on_evict("shadow_in_flight", name)
            return False
        spec = rollout.spec
        body: bytes | None = call.plan.body
        plan = call.plan
        url = call.upstream_url
        if spec.vary == "model":
            candidate = rewrite(call, spec.candidate)
            if candidate is None:
                return False
            body, url, model = candidate
            plan = dataclasses.replace(plan, body=body, model=model)
        else:
            url = upstream_url(spec.candidate, call)
        worst = worst_case_usd(self.pricer, plan, self.default_max_output, self.clock.time())
        if not self.within_budget(rollout, worst):
            return False
        self.reserved[name] = self.reserved.get(name, 0.0) + worst
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        headers = dict(call.upstream_headers)
        headers.pop("traceparent", None)
        headers["Accept-Encoding"] = "identity"
        task = asyncio.ensure_future(
            self._guarded(rollout, worst, plan, url, call.request.method, headers, body or b"",
                          call)
        )  # fmt: skip
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _guarded(self, rollout: Rollout, worst: float, *args: Any) -> None:
        name = rollout.name
        try:
            await self._send(rollout, *args)
        except Exception:  # a shadow call must never disturb anything else
            log.exception("shadow call of rollout %s failed", name)
        finally:
            self.reserved[name] = max(0.0, self.reserved.get(name, 0.0) - worst)
            self.in_flight[name] = max(0, self.in_flight.get(name, 0) - 1)

    async def _send(
        self,
        rollout: Rollout,
        plan: CallPlan,
        url: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        call: Call,
    ) -> None:
        assert self.session is not None
        started = self.clock.monotonic()
        status, data, reached = 0, b"", False
        sign = call.route.sign
        try:
            if sign is not None:  # its own body and URL: its own signature
                signed: CIMultiDict[str] = CIMultiDict(headers)
                await sign(method, url, signed, body)
                headers = dict(signed)
            async with self.session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body or None,
                timeout=aiohttp.ClientTimeout(total=SHADOW_TIMEOUT),
            ) as answer:
                reached = True
                status = answer.status
                data = await answer.read()
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            log.info("shadow call of rollout %s failed: %s", rollout.name, exc)
        latency = self.clock.monotonic() - started
        facts = ResponseFacts(output_chars=len(data))
        if data and not plan.stream:
            facts = facts_from_json(plan, data)
        cost: float | None = None
        usage = settled_usage(plan, facts, reached, status) if plan.priced else None
        if usage is not None:
            cost = call_cost(self.pricer, plan, facts, usage, self.clock.time())
        if cost:
            self.spent[rollout.name] = self.spent.get(rollout.name, 0.0) + cost
            self.cost_metric.labels(rollout.name).inc(cost)
        success = reached and 0 < status < 400
        self.requests.labels(rollout.name, "shadow", "success" if success else "error").inc()
        rollout.observe(
            CANDIDATE,
            Observation(
                success=success,
                latency=latency,
                cost=cost,
                tokens=None if usage is None else usage.input_tokens + usage.output_tokens,
                task=call.identity.task_id,
            ),
        )
