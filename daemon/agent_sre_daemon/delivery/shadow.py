"""Shadow calls: a copy of a call sent to the candidate in the background; its answer is
measured and discarded, its cost counted apart and bounded by the rollout's own budget."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from agent_sre.delivery.analysis import Observation
from agent_sre.delivery.assign import CANDIDATE
from agent_sre.gateway.cost import call_cost, settled_usage
from agent_sre.gateway.plan import ResponseFacts
from agent_sre.gateway.providers import facts_from_json
from agent_sre_daemon.delivery.stage import upstream_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import Counter

    from agent_sre.cost.pricing import Pricer
    from agent_sre.delivery.rollout import Rollout
    from agent_sre.gateway.plan import CallPlan
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call

log = logging.getLogger("agent_sre.delivery")
SHADOW_TIMEOUT = 120.0


class ShadowCaller:
    def __init__(
        self, clock: Clock, pricer: Pricer, cost_metric: Counter, requests: Counter
    ) -> None:
        self.clock = clock
        self.requests = requests
        self.pricer = pricer
        self.cost_metric = cost_metric
        self.spent: dict[str, float] = {}
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

    def within_budget(self, rollout: Rollout) -> bool:
        return self.spent.get(rollout.name, 0.0) < rollout.spec.shadow_budget_usd

    def mirror(
        self, rollout: Rollout, call: Call, rewrite: Callable[[bytes, str], bytes | None]
    ) -> bool:
        """Starts the candidate's copy of ``call``; False when none is sent (over budget,
        or a body without a model)."""
        if self.session is None or not self.within_budget(rollout):
            return False
        spec = rollout.spec
        body: bytes | None = call.plan.body
        plan = call.plan
        url = call.upstream_url
        if spec.vary == "model":
            body = rewrite(plan.body, spec.candidate)
            if body is None:
                return False
            plan = dataclasses.replace(plan, body=body, model=spec.candidate)
        else:
            url = upstream_url(spec.candidate, call)
        headers = dict(call.upstream_headers)
        headers.pop("traceparent", None)
        headers["Accept-Encoding"] = "identity"
        task = asyncio.ensure_future(
            self._guarded(rollout, plan, url, call.request.method, headers, body or b"", call)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _guarded(self, rollout: Rollout, *args: Any) -> None:
        try:
            await self._send(rollout, *args)
        except Exception:  # a shadow call must never disturb anything else
            log.exception("shadow call of rollout %s failed", rollout.name)

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
        try:
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
