"""The controller: kopf watches the resources; one reconcile pass at a time renders the
configuration, writes the ConfigMap, reloads the daemons and writes every status back.

One pass, whatever changed: the configuration is one file, so the whole of it is rendered
from the base configuration and every resource each time (a resource cannot be applied
without the others). A pass runs after any watch event (coalesced) and every ``interval``
seconds (status from the daemons; a mounted ConfigMap reaching the pods up to a minute
later; daemons that restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_sre.config import ConfigError, parse_config
from agent_sre.units import format_duration
from agent_sre_operator import prometheus as prom
from agent_sre_operator import promrules
from agent_sre_operator import status as fleet
from agent_sre_operator.daemons import AdminClient, DaemonState, daemons_of
from agent_sre_operator.kinds import API_VERSION, BUDGET, BY_PLURAL, EXPERIMENT, KINDS, ROLLOUT, SLO
from agent_sre_operator.kube import (
    Kube,
    KubeError,
    configmap_path,
    custom_path,
    pods_path,
)
from agent_sre_operator.render import (
    SOURCE,
    BaseConfigError,
    Rendering,
    Resource,
    Verdict,
    render,
)

if TYPE_CHECKING:
    from agent_sre.config import Config
    from agent_sre_operator.kinds import Kind
    from agent_sre_operator.lease import Elector

log = logging.getLogger("agent_sre_operator")

CONFIG_KEY = "agent-sre.yaml"
FINALIZER = "agent-sre.io/stop-on-daemons"
"""Held by experiments and rollouts: a deleted one is stopped on the daemons first."""
RULES_RECHECK_S = 300.0
"""How often the operator asks again whether the cluster serves PrometheusRules."""
STOP_PATHS = {
    EXPERIMENT.kind: "/v1/chaos/experiments/{name}/stop",
    ROLLOUT.kind: "/v1/rollouts/{name}/abort",
}


@dataclass(frozen=True)
class Settings:
    namespace: str
    """Where the ConfigMaps and the daemon pods are."""
    configmap: str
    """The ConfigMap the daemons mount (written by the operator)."""
    base_configmap: str
    """The chart's base configuration (read)."""
    selector: dict[str, str]
    """Labels of the daemon pods."""
    admin_token: str
    interval: float = 15.0
    prometheus_rules: str = "auto"
    """``auto``: a PrometheusRule per AgentSLO when the cluster serves them; ``off``: none."""
    prometheus_url: str = ""
    """AgentSLO status from this Prometheus' recorded error ratios (empty: the daemons')."""


@dataclass
class Seen:
    """A resource as last seen by the watch."""

    resource: Resource
    uid: str
    deleting: bool
    finalizers: list[str]
    status: dict[str, Any]


@dataclass
class Controller:
    settings: Settings
    kube: Kube
    admin: AdminClient
    seen: dict[tuple[str, str, str], Seen] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    passes: int = 0
    rules_written: dict[tuple[str, str], Any] = field(default_factory=dict)
    """(namespace, name) -> the spec last written, so an unchanged rule costs no call."""
    rules_checked_at: float | None = None
    rules_served: bool = False
    prometheus: prom.PrometheusClient | None = None
    leader: Elector | None = None
    """With leader election: a pass runs only while this replica holds the Lease."""
    current: asyncio.Future[None] | None = None
    lease_lost_midway: bool = False

    # -- watch events ---------------------------------------------------------------

    def observe(self, plural: str, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event of one of the resources (kopf's ``on.event``)."""
        kind = BY_PLURAL[plural]
        meta = body.get("metadata") or {}
        key = (kind.kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            self.seen.pop(key, None)
        else:
            spec = body.get("spec")
            self.seen[key] = Seen(
                resource=Resource(
                    kind,
                    key[1],
                    key[2],
                    spec if isinstance(spec, dict) else {},
                    int(meta.get("generation") or 0),
                ),
                uid=str(meta.get("uid", "")),
                deleting=bool(meta.get("deletionTimestamp")),
                finalizers=list(meta.get("finalizers") or []),
                status=dict(body.get("status") or {}),
            )
        self.wake.set()

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.interval)
            self.wake.clear()
            if self.leader is not None and not self.leader.leading:
                continue  # a standby: it watches, the holder of the Lease writes
            self.current = asyncio.ensure_future(self.reconcile())
            try:
                await self.current
            except asyncio.CancelledError:
                if not self.lease_lost_midway:
                    raise  # the operator stops
                self.lease_lost_midway = False
                log.warning("reconcile pass stopped: the Lease was lost")
            except Exception:
                log.exception("reconcile pass failed; retrying on the next event or tick")
            finally:
                self.current = None
            self.passes += 1

    def lost_lease(self) -> None:
        """The Lease went to another replica: stop writing now, and forget what this one
        believed it had written (the other may have written since)."""
        if self.current is not None and not self.current.done():
            self.lease_lost_midway = True
            self.current.cancel()
        self.rules_written.clear()
        self.rules_checked_at = None

    async def reconcile(self) -> None:
        ns = self.settings.namespace
        daemons = daemons_of(
            await self.kube.get(pods_path(ns, _selector(self.settings.selector))),
            self.settings.selector,
        )
        await self._finish_deletions(daemons)
        live = [s for s in self.seen.values() if not s.deleting]
        base = await self.kube.get_or_none(configmap_path(ns, self.settings.base_configmap))
        base_text = ((base or {}).get("data") or {}).get(CONFIG_KEY)
        if not base_text:
            problem = f"no {CONFIG_KEY} in ConfigMap {ns}/{self.settings.base_configmap}"
            await self._blocked(live, "BaseConfigMissing", problem)
            return
        current = await self.kube.get_or_none(configmap_path(ns, self.settings.configmap))
        running_text = ((current or {}).get("data") or {}).get(CONFIG_KEY)
        try:
            # CPU-bound (about 0.7 s for 200 resources): off the event loop
            rendering = await asyncio.to_thread(
                render, base_text, [s.resource for s in live], running_text
            )
        except BaseConfigError as exc:
            problem = (
                f"the base configuration ({ns}/{self.settings.base_configmap}) does not load: {exc}"
            )
            await self._blocked(live, "BaseConfigInvalid", problem)
            return
        if rendering.text != running_text:
            await self._write_configmap(current, rendering.text)
            log.info("configuration written (sha256 %s)", rendering.digest[:12])
        reads = tuple(sorted({fleet.READS[s.resource.kind.kind] for s in live}))
        states = await self.admin.sync(daemons, rendering.digest, reads)
        await self._add_finalizers(live)
        try:
            running = await asyncio.to_thread(parse_config, rendering.text, SOURCE)
        except ConfigError as exc:  # cannot happen: every entry was judged by the same loader
            log.error("the rendered configuration does not load:\n%s", exc)
            return
        await self._prometheus_rules(live, running)
        ratios = await self._error_ratios(running)
        # the answers of the daemons running this configuration, indexed once per pass
        answers = fleet.Answers(s.answers for s in states if s.running == rendering.digest)
        for seen in live:
            verdict = rendering.verdicts.get(seen.resource.key, Verdict())
            try:
                await self._write_status(seen, verdict, rendering, states, running, answers, ratios)
            except KubeError as exc:  # one resource's status stops no other's
                log.warning("%s: status not written: %s", seen.resource.ref, exc)

    async def _blocked(self, live: list[Seen], reason: str, problem: str) -> None:
        """Nothing can be rendered: said on every resource (the daemons keep what they run)."""
        log.error("%s; nothing applied, the daemons keep what they run", problem)
        for seen in live:
            condition = _condition(
                "Applied",
                "False",
                reason,
                problem + "; the daemons keep the configuration they run",
                seen.resource.generation,
            )
            conditions = [
                c for c in seen.status.get("conditions") or [] if c.get("type") != "Applied"
            ]
            new = {
                "conditions": _keep_transition_times(
                    seen.status.get("conditions"), [*conditions, condition]
                )
            }
            if _same(seen.status, new):
                continue
            path = custom_path(
                API_VERSION, seen.resource.namespace, seen.resource.kind.plural, seen.resource.name
            )
            try:
                await self.kube.merge_patch(path + "/status", {"status": new})
            except KubeError as exc:
                log.warning("%s: status not written: %s", seen.resource.ref, exc)
                continue
            seen.status = {**seen.status, **new}

    # -- configuration ----------------------------------------------------------------

    async def _write_configmap(self, current: dict[str, Any] | None, text: str) -> None:
        ns, name = self.settings.namespace, self.settings.configmap
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": "agent-sre-operator"},
                },
                "data": {CONFIG_KEY: text},
            }
            await self.kube.create(configmap_path(ns), body)
        else:
            await self.kube.merge_patch(configmap_path(ns, name), {"data": {CONFIG_KEY: text}})

    # -- PrometheusRules -----------------------------------------------------------------

    async def _serves_rules(self) -> bool:
        if self.settings.prometheus_rules == "off":
            return False
        now = asyncio.get_running_loop().time()
        if self.rules_checked_at is None or now - self.rules_checked_at > RULES_RECHECK_S:
            self.rules_checked_at = now
            try:
                listing = await self.kube.get_or_none(f"/apis/{promrules.GROUP_VERSION}")
            except KubeError:
                listing = None
            self.rules_served = promrules.served(listing)
        return self.rules_served

    async def _prometheus_rules(self, live: list[Seen], config: Config) -> None:
        slos = [s for s in live if s.resource.kind is SLO]
        if not slos or not await self._serves_rules():
            return
        running = {spec.name: spec for spec in config.slos}
        for seen in slos:
            resource = seen.resource
            spec = running.get(resource.name)
            if spec is None or not seen.uid:
                continue
            body = promrules.rule_object(resource.namespace, resource.name, seen.uid, spec)
            key = (resource.namespace, body["metadata"]["name"])
            if self.rules_written.get(key) == body:
                continue
            path = promrules.path(resource.namespace, key[1])
            existing = await self.kube.get_or_none(path)
            if existing is None:
                await self.kube.create(promrules.path(resource.namespace), body)
            elif existing.get("spec") != body["spec"] or _owners(existing) != _owners(body):
                await self.kube.merge_patch(
                    path, {"metadata": {"ownerReferences": _owners(body)}, "spec": body["spec"]}
                )
            self.rules_written[key] = body

    async def _error_ratios(self, config: Config) -> prom.ErrorRatios | None:
        """The SLOs' error ratios from Prometheus (None: not configured or not answering;
        the daemons' counts speak then)."""
        if self.prometheus is None or not config.slos:
            return None
        try:
            return await self.prometheus.error_ratios([s.name for s in config.slos])
        except prom.PrometheusError as exc:
            log.warning("Prometheus (%s): %s; SLO status from the daemons", self.prometheus.url,
                        exc)  # fmt: skip
            return None

    # -- deletion ----------------------------------------------------------------------

    async def _add_finalizers(self, live: list[Seen]) -> None:
        for seen in live:
            if seen.resource.kind.kind in STOP_PATHS and FINALIZER not in seen.finalizers:
                finalizers = [*seen.finalizers, FINALIZER]
                await self._patch(seen, {"metadata": {"finalizers": finalizers}})
                seen.finalizers = finalizers

    async def _finish_deletions(self, daemons: list[Any]) -> None:
        """Stops deleted experiments and rollouts on every daemon, then lets them go. A
        daemon that never ran one answers 404, which is no reason to hold the deletion; one
        that cannot be reached holds it until the next pass."""
        for seen in [s for s in self.seen.values() if s.deleting]:
            if FINALIZER not in seen.finalizers:
                continue
            path = STOP_PATHS.get(seen.resource.kind.kind)
            problems = []
            if path is not None:
                problems = await self.admin.post_each(daemons, path.format(name=seen.resource.name))
            if problems:
                log.warning("%s: not stopped everywhere yet: %s", seen.resource.ref, problems)
                continue
            finalizers = [f for f in seen.finalizers if f != FINALIZER]
            await self._patch(seen, {"metadata": {"finalizers": finalizers}})
            seen.finalizers = finalizers
            log.info("%s stopped on %d daemons; released", seen.resource.ref, len(daemons))

    # -- status ------------------------------------------------------------------------

    async def _write_status(
        self,
        seen: Seen,
        verdict: Verdict,
        rendering: Rendering,
        states: list[DaemonState],
        config: Config,
        answers: fleet.Answers,
        ratios: prom.ErrorRatios | None = None,
    ) -> None:
        resource = seen.resource
        running = [s for s in states if s.running == rendering.digest]
        applied_somewhere = verdict.valid or verdict.kept
        count = len(running) if applied_somewhere else 0
        new: dict[str, Any] = {
            "observedGeneration": resource.generation,
            "daemons": len(states),
            "daemonsApplied": count,
            "applied": f"{count}/{len(states)}",
        }
        conditions = [_valid_condition(verdict, resource.generation)]
        conditions.append(_applied_condition(verdict, states, running, resource.generation))
        new["conditions"] = _keep_transition_times(seen.status.get("conditions"), conditions)
        if applied_somewhere:
            new.update(_kind_status(resource, answers, config, ratios))
        if _same(seen.status, new):
            return
        path = custom_path(API_VERSION, resource.namespace, resource.kind.plural, resource.name)
        try:
            await self.kube.merge_patch(path + "/status", {"status": new})
        except KubeError as exc:
            if exc.status != 404:  # deleted meanwhile
                raise
            return
        seen.status = new

    async def _patch(self, seen: Seen, body: dict[str, Any]) -> None:
        resource = seen.resource
        path = custom_path(API_VERSION, resource.namespace, resource.kind.plural, resource.name)
        try:
            await self.kube.merge_patch(path, body)
        except KubeError as exc:
            if exc.status != 404:
                raise


def _owners(obj: dict[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("ownerReferences")


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _valid_condition(verdict: Verdict, generation: int) -> dict[str, Any]:
    if verdict.valid:
        return _condition(
            "Valid", "True", "Accepted", "accepted by the daemon's validation", generation
        )
    message = "; ".join(verdict.problems)
    if verdict.kept:
        message += " (the daemons keep the version applied before)"
    return _condition("Valid", "False", "Invalid", message, generation)


def _applied_condition(
    verdict: Verdict, states: list[DaemonState], running: list[DaemonState], generation: int
) -> dict[str, Any]:
    total = len(states)
    if not verdict.valid and not verdict.kept:
        return _condition("Applied", "False", "Invalid", "not applied: see Valid", generation)
    restart: dict[str, list[str]] = {}
    for state in running:
        if state.restart_needed:
            restart.setdefault(state.restart_needed, []).append(state.daemon.pod)
    if restart:
        message = "; ".join(f"{what} (pods: {', '.join(pods)})" for what, pods in
                            sorted(restart.items()))  # fmt: skip
        return _condition("Applied", "False", "RestartNeeded", message, generation)
    if total and len(running) == total:
        what = "the version applied before" if verdict.kept else "it"
        message = f"{len(running)}/{total} daemons run {what}"
        return _condition("Applied", "True", "Reloaded", message, generation)
    errors = sorted({f"{s.daemon.pod}: {s.error}" for s in states if s.error})
    waiting = [s.daemon.pod for s in states if not s.error and s not in running]
    parts = [f"{len(running)}/{total} daemons run it"]
    if waiting:
        parts.append("waiting for the mounted ConfigMap on " + ", ".join(waiting))
    parts += errors
    reason = "NoDaemons" if not total else "Pending"
    return _condition("Applied", "False", reason, "; ".join(parts), generation)


def _condition(type_: str, status: str, reason: str, message: str, gen: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:4000],
        "observedGeneration": gen,
        "lastTransitionTime": _now(),
    }


def _now() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keep_transition_times(old: Any, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in old or [] if isinstance(c, dict)}
    for condition in new:
        previous = before.get(condition["type"])
        if previous and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get(
                "lastTransitionTime", condition["lastTransitionTime"]
            )
    return new


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(key) == value for key, value in new.items())


def _kind_status(
    resource: Resource,
    answers: fleet.Answers,
    config: Config,
    ratios: prom.ErrorRatios | None = None,
) -> dict[str, Any]:
    """Figures of the version the daemons run (a refused update leaves the one before)."""
    name = resource.name
    if resource.kind is SLO:
        slo = next((s for s in config.slos if s.name == name), None)
        target = slo.target if slo is not None else _number(resource.spec.get("target"))
        status = {**fleet.slo_status(name, target, answers), "source": "daemons"}
        if ratios is not None and slo is not None:
            window = format_duration(slo.window)
            status.update(prom.slo_status(window, slo.target, ratios.get(name, {})) or {})
        return status
    if resource.kind is BUDGET:
        budget = next((b for b in config.budgets.budgets if b.name == name), None)
        limit = budget.limit_usd if budget is not None else _number(resource.spec.get("limit_usd"))
        return fleet.budget_status(name, limit, answers)
    if resource.kind is EXPERIMENT:
        return fleet.experiment_status(resource.name, answers)
    if resource.kind is ROLLOUT:
        return fleet.rollout_status(resource.name, answers)
    return {}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def kinds_of(plural: str) -> Kind:
    return BY_PLURAL[plural]


__all__ = ["KINDS", "Controller", "Settings"]
