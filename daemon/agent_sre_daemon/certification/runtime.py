"""The certification engine in the daemon: a light span observer counts each agent
version's evidence into buckets; on a timer the other engines' records (chaos runs,
incidents, rollouts, budget exhaustions heard on the bus) are gathered, every version is
judged (:func:`agent_sre.certification.verdict.evaluate`), tier changes are signalled and
the gauge set; evidence is saved to ``state_dir`` off the loop.

Admin API: ``GET /v1/certifications[?agent=&version=]`` and
``GET /v1/certifications/{agent}[?version=]`` (docs/certification.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from agent_sre.certification.assemble import (
    chaos_runs_for,
    incidents_for,
    marks_for,
    rollouts_for,
)
from agent_sre.certification.counting import MAX_ID_LENGTH, CertificationCounter
from agent_sre.certification.evidence import Mark
from agent_sre.certification.marks import AgentMarks
from agent_sre.certification.verdict import Verdict, evaluate, rfc3339
from agent_sre.signals import Severity, Signal
from agent_sre_daemon.admin.inputs import query_number
from agent_sre_daemon.certification.metrics import CertificationMetrics
from agent_sre_daemon.certification.store import STORE_FILE, CertificationStore
from agent_sre_daemon.component import Component, Prepared, SpanObserverSpec, cancel_tasks
from agent_sre_daemon.errors import admin_error
from agent_sre_daemon.evictions import counter_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client import CollectorRegistry

    from agent_sre.certification.evidence import Evidence
    from agent_sre.certification.spec import CertificationConfig
    from agent_sre.config import Config
    from agent_sre_daemon.component import NodeContext

log = logging.getLogger("agent_sre.certification")

SOURCE = "certification"
SAVE_EVERY_S = 60.0
EVALUATE_SLICE = 16
"""Versions judged between two yields to the loop (each takes well under a millisecond)."""
MAX_CHAOS_RUNS = 1000
"""Chaos runs read per evaluation (the latest ones)."""
ROLLOUT_OUTCOMES = {"rollout_promoted": "promoted", "rollout_rolled_back": "rolled_back",
                    "rollout_aborted": "aborted"}  # fmt: skip
MAX_LIMIT = 1000


class CertificationRuntime(Component):
    """Evidence, verdicts, tier signals and metrics of every agent version seen."""

    name: ClassVar[str] = "certification"
    title: ClassVar[str] = "Certification"

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.clock = context.clock
        self.metrics = self.register_metrics(context.registry)
        self._on_evict = counter_of(context.registry)
        self.settings: CertificationConfig = context.config.certification
        self.counter = self._counter(context.config)
        self.store = CertificationStore(context.state_dir / STORE_FILE, self.clock)
        self.exhaustions = AgentMarks(
            self.settings.max_versions, self.settings.retention, self._on_evict
        )
        """Budget exhaustions heard, per agent (kept as long as any window looks back)."""
        self.rollout_outcomes: deque[dict[str, Any]] = deque(maxlen=1000)
        """Rollout outcomes heard on the bus (with the rollout's agent and candidate)."""
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        self.held: dict[tuple[str, str], str | None] = {}
        """The tier each version held at the last evaluation (restored from the store)."""
        self._chaos_runs: list[dict[str, Any]] = []
        self._incidents: list[dict[str, Any]] = []
        self._new_marks: list[tuple[str, str, float, dict[str, Any]]] = []
        self._tier_changes: dict[tuple[str, str], str | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Any = None
        self._opened = False
        context.provide("certification", self)

    def _counter(self, config: Config) -> CertificationCounter:
        settings = config.certification
        return CertificationCounter(
            config.slos,
            settings.bucket,
            settings.retention,
            settings.max_versions,
            self._on_evict,
        )

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> CertificationMetrics:
        return CertificationMetrics(registry)

    # -- component ------------------------------------------------------------------------

    async def start(self) -> dict[str, str]:
        await self.store.open()
        self._opened = True
        await self._restore()
        await self._gather()  # the first answers already see the other engines' records
        self._subscription = self.context.bus.subscribe(SOURCE)
        self._tasks = [
            asyncio.create_task(self._consume(), name="certification-signals"),
            asyncio.create_task(self._tick(), name="certification-evaluation"),
        ]
        return {}

    async def stop(self, deadline: float) -> None:
        await cancel_tasks(*self._tasks)
        self._tasks = []
        if self._subscription is not None:
            while (signal := self._subscription.get_nowait()) is not None:
                self._heard(signal)
            self._subscription.close()
            self._subscription = None
        if self._opened:
            try:
                await self.save()
            except Exception:
                log.exception("cannot save certification evidence at stop")
            await self.store.close()
            self._opened = False

    async def prepare_reload(self, new: Config) -> Prepared:
        counter = self._counter(new)

        async def commit() -> None:
            counter.adopt(self.counter, self.clock.time())
            self.counter = counter
            self.settings = new.certification
            self.verdicts.clear()

        moved = new.state_dir != self.context.config.state_dir
        return Prepared(
            needs_restart=["state_dir (certification evidence)"] if moved else [], commit=commit
        )

    def span_observers(self) -> list[SpanObserverSpec]:
        if not self.settings.enabled:
            return []
        return [SpanObserverSpec(self.counter.observe, self.counter.wanted_keys)]

    def admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/certifications", self._list),
            web.get("/v1/certifications/{agent}", self._show),
        ]

    def status(self) -> dict[str, Any]:
        return {
            "certification": {
                "enabled": self.settings.enabled,
                "versions": len(self.counter),
                "tiers": list(self.settings.tier_names),
            }
        }

    # -- the service other components use ---------------------------------------------------

    def missing_for(self, agent: str, version: str, tier: str) -> list[str]:
        """What ``agent`` ``version`` lacks for ``tier``, judged now."""
        if not self.settings.enabled:
            return [f"{tier}: certification is disabled (certification.enabled: false)"]
        return self.verdict(agent, version).missing_for(tier)

    def verdict(self, agent: str, version: str) -> Verdict:
        """The verdict of one version now (evidence as gathered at the last evaluation)."""
        now = self.clock.time()
        verdict = evaluate(self.evidence(agent, version, now), self.settings.tiers, now)
        self.verdicts[(agent, version)] = verdict
        return verdict

    def evidence(self, agent: str, version: str, now: float) -> Evidence:
        """Everything known of one version (span buckets and the other engines' records)."""
        counter = self.counter
        evidence = counter.evidence(agent, version, now)
        siblings = [
            counter.evidence(agent, other.version, now)
            for other in counter.versions_of(agent)
            if other.version != version
        ]

        def seen(start: float, end: float) -> bool:
            return evidence.seen_between(start, end)

        def any_seen(start: float, end: float) -> bool:
            return seen(start, end) or any(s.seen_between(start, end) for s in siblings)

        evidence.chaos = chaos_runs_for(agent, version, self._chaos_runs, seen, now)
        evidence.incidents = incidents_for(agent, self._incidents, seen, any_seen, now)
        evidence.exhaustions = marks_for(self.exhaustions.of(agent), seen, any_seen)
        evidence.rollouts = rollouts_for(agent, version, self._rollout_records())
        return evidence

    # -- evaluation -----------------------------------------------------------------------

    async def evaluate_all(self) -> None:
        """Gathers the other engines' records, then judges every version (a slice at a
        time, yielding to the loop between slices)."""
        await self._gather()
        keys = self.counter.keys()
        for start in range(0, len(keys), EVALUATE_SLICE):
            for agent, version in keys[start : start + EVALUATE_SLICE]:
                self._judge(agent, version)
            await asyncio.sleep(0)
        known = set(self.counter.keys())
        for key in [key for key in self.verdicts if key not in known]:
            del self.verdicts[key]
        for key in [key for key in self.held if key not in known]:
            del self.held[key]
        self._export()

    def _judge(self, agent: str, version: str) -> None:
        verdict = self.verdict(agent, version)
        key = (agent, version)
        before = self.held.get(key)
        if verdict.tier == before:
            return
        self.held[key] = verdict.tier
        self._tier_changes[key] = verdict.tier
        names = verdict.tiers
        old_rank = 0 if before not in names else names.index(before) + 1
        gained = verdict.rank > old_rank
        self.metrics.changes.labels("gained" if gained else "lost").inc()
        shown = version or "(no version)"
        message = (
            f"agent {agent} {shown} gained certification tier {verdict.tier}"
            + (f" (was {before})" if before else "")
            if gained
            else f"agent {agent} {shown} lost certification tier {before}; now "
            f"{verdict.tier or 'none'}: " + "; ".join(verdict.missing_for(before or "")[:3])
        )
        self.context.bus.publish(
            Signal(
                type="certification_tier_gained" if gained else "certification_tier_lost",
                source=SOURCE,
                severity=Severity.INFO if gained else Severity.WARNING,
                at=verdict.evaluated_at,
                message=message[:1000],
                labels={"agent_id": agent, "version": version},
                value=float(verdict.rank),
                details={"old": before, "new": verdict.tier, "missing": list(verdict.missing)[:10]},
            )
        )

    def _export(self) -> None:
        gauge = self.metrics.tier
        gauge.clear()
        entries = sorted(
            self.counter.versions.items(), key=lambda item: item[1].last_seen or 0.0, reverse=True
        )
        for (agent, version), _ in entries[: self.settings.max_metric_series]:
            verdict = self.verdicts.get((agent, version))
            if verdict is not None:
                gauge.labels(agent, version).set(verdict.rank)
        self.metrics.versions.set(len(self.counter))

    async def _gather(self) -> None:
        """Reads what the chaos, incidents and delivery engines keep (when they run)."""
        chaos: Any = self.context.service("chaos")
        runs: list[dict[str, Any]] = []
        if chaos is not None:
            try:
                runs = list(await chaos.store.runs("", MAX_CHAOS_RUNS))
            except Exception as exc:  # a failing disk: the last runs read stay
                log.warning("certification: cannot read chaos runs (%s)", exc)
                runs = self._chaos_runs
            live = {run.id: run.to_dict() for run in chaos.live_runs()}
            runs = [live.pop(str(row.get("id")), row) for row in runs] + list(live.values())
        self._chaos_runs = runs
        runtime: Any = self.context.service("incidents")
        incidents: list[dict[str, Any]] = []
        if runtime is not None:
            for incident in list(runtime.book.incidents.values()):
                if incident.source == SOURCE or not incident.agents:
                    continue  # our own tier signals never count against a tier
                incidents.append(
                    {
                        "id": incident.id,
                        "severity": incident.severity.value,
                        "opened_at": incident.opened_at,
                        "resolved_at": incident.resolved_at,
                        "title": incident.title,
                        "agents": list(incident.agents),
                    }
                )
        self._incidents = incidents

    def _rollout_records(self) -> list[dict[str, Any]]:
        records = list(self.rollout_outcomes)
        delivery: Any = self.context.service("delivery")
        if delivery is None:
            return records
        for rollout in delivery.rollouts.values():
            spec = rollout.spec
            if spec.vary != "agent_version":
                continue
            for event in rollout.state.events:
                if event.kind in ROLLOUT_OUTCOMES.values():
                    records.append(
                        {
                            "name": spec.name,
                            "vary": spec.vary,
                            "candidate": spec.candidate,
                            "agent": spec.agent,
                            "outcome": event.kind,
                            "at": event.at,
                        }  # fmt: skip
                    )
        return records

    # -- signals heard ----------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._subscription is not None
        while True:
            signal = await self._subscription.get()
            try:
                self._heard(signal)
            except Exception:
                log.exception("certification: handling signal %s/%s failed", signal.source,
                              signal.type)  # fmt: skip

    def _heard(self, signal: Signal) -> None:
        if signal.type == "budget_exhausted":
            agent = signal.labels.get("agent_id", "")[:MAX_ID_LENGTH]
            budget = signal.labels.get("budget", "")[:200]
            if not agent:
                return
            mark = Mark(signal.at, budget, signal.message[:300])
            self.exhaustions.add(agent, mark)
            self._new_marks.append(("budget_exhausted", agent, signal.at,
                                    {"ref": budget, "detail": mark.detail}))  # fmt: skip
        elif signal.type in ROLLOUT_OUTCOMES and signal.source == "delivery":
            name = signal.labels.get("rollout", "")
            delivery: Any = self.context.service("delivery")
            rollout = None if delivery is None else delivery.rollouts.get(name)
            if rollout is None or rollout.spec.vary != "agent_version":
                return
            record = {"name": name, "vary": "agent_version", "candidate": rollout.spec.candidate,
                      "agent": rollout.spec.agent, "outcome": ROLLOUT_OUTCOMES[signal.type],
                      "at": signal.at}  # fmt: skip
            self.rollout_outcomes.append(record)
            self._new_marks.append(("rollout", rollout.spec.agent, signal.at, record))

    # -- persistence ----------------------------------------------------------------------

    async def save(self) -> None:
        now = self.clock.time()
        buckets, evicted = self.counter.take_dirty()
        marks, self._new_marks = self._new_marks, []
        tiers, self._tier_changes = self._tier_changes, {}
        try:
            await self.store.save(buckets, evicted, marks, tiers, now - self.settings.retention,
                                  now)  # fmt: skip
        except Exception:
            # kept for the next save: nothing heard is lost to one failed write
            self._new_marks = marks + self._new_marks
            self._tier_changes = {**tiers, **self._tier_changes}
            for agent, version, at, _ in buckets:
                entry = self.counter.versions.peek((agent, version))
                if entry is not None:
                    entry.dirty.add(at)
            self.counter.evicted.extend(evicted)
            raise

    async def _restore(self) -> None:
        now = self.clock.time()
        bad = 0
        for agent, version, at, data in await self.store.buckets():
            try:
                ok = self.counter.load(agent, version, at, json.loads(data), now)
            except (ValueError, RecursionError):
                ok = False
            bad += not ok
        self.counter.settle()
        self.counter.take_dirty()  # what was just read is on disk already
        for kind, agent, at, data in await self.store.marks():
            try:
                record = json.loads(data)
                if kind == "budget_exhausted":
                    mark = Mark(at, str(record["ref"]), str(record.get("detail", "")))
                    self.exhaustions.add(agent, mark)
                elif kind == "rollout" and isinstance(record, dict):
                    self.rollout_outcomes.append(record)
            except (ValueError, KeyError, TypeError, RecursionError):
                bad += 1
        self.held = dict(await self.store.tiers())
        if bad:
            log.warning("certification: %d stored record(s) unreadable (skipped)", bad)
        log.info("certification: evidence of %d agent version(s) restored", len(self.counter))

    async def _tick(self) -> None:
        last_save = self.clock.monotonic()
        while True:
            await asyncio.sleep(self.settings.evaluate_every)
            try:
                await self.evaluate_all()
                if self.clock.monotonic() - last_save >= SAVE_EVERY_S:
                    last_save = self.clock.monotonic()
                    await self.save()
            except Exception:
                log.exception("certification evaluation failed")

    # -- admin API ------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        agent = request.query.get("agent")
        version = request.query.get("version")
        keys: Iterable[tuple[str, str]] = self.counter.keys()
        if agent is not None:
            keys = [k for k in keys if k[0] == agent]
        if version is not None:
            keys = [k for k in keys if k[1] == version]
        chosen = sorted(keys)
        limit = query_number(request.query, "limit", 100, minimum=1, maximum=MAX_LIMIT,
                             integer=True)  # fmt: skip
        offset = query_number(request.query, "offset", 0, minimum=0, maximum=10**9, integer=True)
        items = []
        for index, (a, v) in enumerate(chosen[offset : offset + limit]):
            items.append(self.verdict(a, v).to_dict())
            if index % EVALUATE_SLICE == EVALUATE_SLICE - 1:
                await asyncio.sleep(0)
        page = self._page(items)
        page.update(total=len(chosen), offset=offset, limit=limit)
        return web.json_response(page)

    async def _show(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        versions = self.counter.versions_of(agent)
        if not versions:
            return admin_error(404, "agent_not_found", f"no evidence of agent {agent[:200]!r}")
        wanted = request.query.get("version")
        if wanted is None:
            latest = max(versions, key=lambda entry: entry.last_seen or 0.0)
            wanted = latest.version
        elif all(entry.version != wanted for entry in versions):
            return admin_error(
                404,
                "version_not_found",
                f"no evidence of agent {agent[:200]!r} version {wanted[:200]!r}",
            )
        return web.json_response(self.verdict(agent, wanted).to_dict())

    def _page(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "tiers": list(self.settings.tier_names),
            "generated_at": rfc3339(self.clock.time()),
            "enabled": self.settings.enabled,
            "items": items,
        }
