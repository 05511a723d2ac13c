"""The one way a part of the daemon plugs into the node: a :class:`Component`.

Every server, store and engine runtime is a component. The node builds them in a fixed order
from the configuration, starts them in that order, stops them in reverse, and on reload
prepares every component's new state before committing any (all or nothing). What a
component offers the rest of the daemon it declares here: admin routes, metrics, span
observers, proxy stages, status; what it needs it takes from the :class:`NodeContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agent_sre_daemon.http_site import ListenerLimits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from agent_sre.config import Config
    from agent_sre.slo.report import SLOReport
    from agent_sre.tracing.batch import SpanObserver, SpanTap
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.ingest.pipeline import Pipeline
    from agent_sre_daemon.proxy.stage import Stage

    BatchObserver = Callable[[bytes, float], None]
    """Called with the bytes of each accepted trace request after enrichment (the ones
    queued for the upstream: share them, never re-serialise) and the time received."""
    from agent_sre_daemon.signals import SignalBus

    Action = Callable[[Mapping[str, str]], Awaitable[str]]
    """An operation by name: takes string parameters (``agent_id``, ``reason``, ...) and
    returns what it did, for an incident's timeline."""


@dataclass(frozen=True)
class ActionCaller:
    """Who runs an action: the rule and the incident it answers (empty for neither)."""

    rule: str = ""
    incident: str = ""


ACTION_CALLER: ContextVar[ActionCaller | None] = ContextVar("action_caller", default=None)
"""Set by the incidents engine around each action it runs, so an action that records who
put something in force (``throttle_agent``) can say which rule and incident did; None when
an action is called otherwise."""


@dataclass
class NodeContext:
    """What the node hands every component: shared infrastructure, never another engine.

    Attributes:
        config: the configuration the node started with (reloads pass the new one).
        clock: the only source of time.
        registry: where metrics are registered (exposed on ``/metrics``).
        bus: the signal bus.
        pipeline: the span pipeline (received spans and the proxy's spans go through it).
        environ: the environment the node was started with.
        node_name: the node's name (``node.name`` or the host name), kept current on reload.
        listeners: the limits every listener keeps (connection cap, refusal count).
    """

    config: Config
    clock: Clock
    registry: CollectorRegistry
    bus: SignalBus
    pipeline: Pipeline
    environ: Mapping[str, str]
    node_name: str
    listeners: ListenerLimits = field(default_factory=ListenerLimits)
    stages: list[Stage] = field(default_factory=list)
    """Proxy stages every component contributes, gathered by the node before start."""
    services: dict[str, object] = field(default_factory=dict)
    """Read-only views one component offers the others, by name (``"slo"``: an
    :class:`SLOQuery`); a component looks one up at start, never imports another."""
    actions: dict[str, Action] = field(default_factory=dict)
    """Operations components offer to automatic responses and the operator, by name
    (``block_agent``, ``stop_chaos``, ``rollback_rollout``, ...)."""

    def provide(self, name: str, service: object) -> None:
        """Offers ``service`` to the other components under ``name``.

        Raises:
            ValueError: another object is already offered under ``name`` (two components
                answering to one name would leave its readers with whichever came last).
        """
        if self.services.get(name, service) is not service:
            raise ValueError(f"service {name!r} is already provided")
        self.services[name] = service

    def service(self, name: str) -> object | None:
        """The service offered under ``name``, or None when no component offers it."""
        return self.services.get(name)

    def register_action(self, name: str, action: Action) -> None:
        self.actions[name] = action

    @property
    def state_dir(self) -> Path:
        from pathlib import Path

        return Path(self.config.state_dir)


class SLOQuery(Protocol):
    """What the SLO runtime offers others (service ``"slo"``): the current reports."""

    def reports(self, now: float) -> list[SLOReport]: ...


class CertificationQuery(Protocol):
    """What the certification engine offers others (service ``"certification"``)."""

    def missing_for(self, agent: str, version: str, tier: str) -> list[str]:
        """What ``agent`` ``version`` lacks for ``tier`` (empty: it holds it or higher)."""
        ...


@dataclass(frozen=True)
class SpanObserverSpec:
    """A light observer: called with each valid span's view; ``keys`` are the attributes it
    reads (only those are decoded)."""

    observe: SpanObserver
    keys: frozenset[str]


@dataclass(frozen=True)
class SpanTapSpec:
    """An observer that sees second views of a call too: called with each valid span's view
    (see :data:`agent_sre.tracing.batch.SpanTap`); ``keys`` as above."""

    tap: SpanTap
    keys: frozenset[str]


@dataclass
class Prepared:
    """A component's reload, prepared but not yet in force.

    ``commit`` must not fail (everything that can fail happens while preparing); ``abort``
    releases what preparing opened when another component's preparation failed.
    """

    needs_restart: list[str] = field(default_factory=list)
    commit: Callable[[], Awaitable[None]] | None = None
    abort: Callable[[], Awaitable[None]] | None = None


class ReloadError(Exception):
    """A component cannot take the new configuration; the running one stays."""


class Component:
    """Base of every component; override what the component offers.

    Attributes:
        name: short name used in logs and ``/v1/status``.
        title: heading of its section in ``docs/metrics.md``.
    """

    name: ClassVar[str] = "component"
    title: ClassVar[str] = ""

    @classmethod
    def register_metrics(cls, registry: CollectorRegistry) -> object:
        """Registers the component's metrics on ``registry`` and returns their holder (also
        used to generate ``docs/metrics.md`` without starting anything)."""
        return None

    async def start(self) -> dict[str, str]:
        """Opens stores, binds listeners, starts tasks; returns the addresses it bound."""
        return {}

    async def stop(self, deadline: float) -> None:
        """Finishes within ``deadline`` (the node clock's ``monotonic()``), then closes."""

    async def prepare_reload(self, new: Config) -> Prepared:
        """Prepares the new configuration without applying it.

        Raises:
            ReloadError: the component cannot take it (the message says why).
        """
        return Prepared()

    def admin_routes(self) -> list[web.RouteDef]:
        return []

    def span_observers(self) -> Sequence[SpanObserverSpec | SpanTapSpec]:
        """Light observers of each span's view, or taps of each span (asked again after
        every reload)."""
        return []

    def batch_observers(self) -> list[BatchObserver]:
        """Observers of each whole accepted request after enrichment, with its bytes."""
        return []

    def proxy_stages(self) -> list[Stage]:
        """Stages this component adds to every proxied call (asked once, before start)."""
        return []

    def status(self) -> dict[str, Any]:
        """Its part of ``GET /v1/status`` (top-level keys)."""
        return {}


async def cancel_tasks(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels the tasks (None: none) and waits until each has ended."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
