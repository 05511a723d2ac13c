"""The composition root: configuration -> components; the daemon's life.

The story of a process: :meth:`Node.start` (start every component in order, write the
ready file), :meth:`Node.run` (serve until SIGTERM/SIGINT, reload on SIGHUP),
:meth:`Node.shutdown` (stop the components in reverse order within one deadline: intake
ends, proxied calls finish and settle, the queue is flushed, SLO counts are saved).

The node knows no engine by name beyond :func:`components`; engines from other packages
join through the ``agent_sre.components`` entry point group (a factory taking the
:class:`~agent_sre_daemon.component.NodeContext`).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from collections import deque
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from agent_sre import __version__
from agent_sre.config import ConfigError, read_config
from agent_sre.signals import Severity, Signal
from agent_sre.tracing.enrich import NodeIdentity
from agent_sre_daemon.admin.server import AdminServer
from agent_sre_daemon.certification.runtime import CertificationRuntime
from agent_sre_daemon.chaos.runtime import ChaosRuntime
from agent_sre_daemon.cli.preflight import runtime_problems
from agent_sre_daemon.clock import SYSTEM_CLOCK
from agent_sre_daemon.component import (
    Component,
    NodeContext,
    Prepared,
    ReloadError,
    cancel_tasks,
)
from agent_sre_daemon.delivery.runtime import DeliveryRuntime
from agent_sre_daemon.exporters.forwarding import Forwarding
from agent_sre_daemon.exporters.prometheus import MetricsServer
from agent_sre_daemon.fleet.runtime import FleetRuntime
from agent_sre_daemon.http_site import ListenerLimits
from agent_sre_daemon.incidents.runtime import IncidentsRuntime
from agent_sre_daemon.ingest.correlation import CallCorrelation
from agent_sre_daemon.ingest.pipeline import Pipeline
from agent_sre_daemon.ingest.receivers import OtlpReceivers
from agent_sre_daemon.listeners import Listeners
from agent_sre_daemon.proxy.server import ProxyServer
from agent_sre_daemon.replay.engine import ReplayEngine
from agent_sre_daemon.signals import SignalBus
from agent_sre_daemon.slo.runtime import SLORuntime
from agent_sre_daemon.stores import aside, ballast
from agent_sre_daemon.stores.lock import StateDirLock, lock_state_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from agent_sre.config import Config
    from agent_sre_daemon.clock import Clock

log = logging.getLogger("agent_sre.node")

PLUGIN_GROUP = "agent_sre.components"
BALLAST_EVERY_S = 5.0

# incidents first: it subscribes before the others publish and stops after them
ENGINES: tuple[Callable[[NodeContext], Component], ...] = (
    IncidentsRuntime,
    SLORuntime,
    DeliveryRuntime,
    ChaosRuntime,
    ReplayEngine,
    FleetRuntime,
    CertificationRuntime,
)
"""The engines, in start order (a new engine is one line here)."""

COMPONENT_TYPES: tuple[type[Component], ...] = (
    Listeners,
    SignalBus,
    Pipeline,
    SLORuntime,
    DeliveryRuntime,
    IncidentsRuntime,
    ChaosRuntime,
    ReplayEngine,
    FleetRuntime,
    CertificationRuntime,
    Forwarding,
    CallCorrelation,
    ProxyServer,
    MetricsServer,
)
"""Every component class that registers metrics, in ``docs/metrics.md`` order."""


SWITCH_INTERVAL_S = 0.001
"""How long a thread may keep the interpreter lock while another waits for it (Python's
default is 5 ms). The event loop serves every call; the trace buffer's writer and the stores'
threads run Python in stretches, and each stretch kept the loop waiting up to the interval.
At 16 concurrent proxied calls the loop's longest stall was lower with 1 ms in each of six
rounds (8-17 ms against 13.5-25), throughput and p99/p50 within the noise (bench/README.md,
"Session 8")."""


def hand_over_sooner() -> None:
    """Sets :data:`SWITCH_INTERVAL_S` for the daemon's process."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def freeze_startup_heap() -> None:
    """Moves what the start built (modules, configuration, engines, metrics), which lives as
    long as the daemon, out of the garbage collector's sight. A full collection then walks
    only what calls and spans left behind: it walked every object of the start too (several
    hundred thousand) and held the event loop for 70-90 ms of CPU each time, about 20 ms
    after (``bench/proxy.py`` reports the collector's worst pause)."""
    gc.collect()
    gc.freeze()


def components(context: NodeContext, metrics: MetricsServer, admin: AdminServer) -> list[Component]:
    """Every component in start order; stopping goes in reverse: intake (proxy, receivers)
    ends first, then the proxy's spans held for correlation are released, the queue is
    flushed, engines save their state, and the admin and metrics endpoints go last (the
    listeners' shared limits come first: the open files limit is raised before any bind)."""
    return [
        Listeners(context),
        context.bus,
        context.pipeline,
        metrics,
        admin,
        *(make(context) for make in ENGINES),
        *plugins(context),
        Forwarding(context),
        CallCorrelation(context),
        OtlpReceivers(context),
        ProxyServer(context),
    ]


def plugins(context: NodeContext) -> list[Component]:
    """Components other packages add through the ``agent_sre.components`` entry points."""
    found = []
    for entry in entry_points(group=PLUGIN_GROUP):
        factory = entry.load()
        found.append(factory(context))
        log.info("component %s from %s", entry.name, entry.value)
    return found


START_FAILURE_GRACE = 5.0
"""Seconds the components already started get to stop when a later one cannot start."""


class StartError(Exception):
    """A component could not start (the message names it and says why)."""


class Node:
    """One agent-sre daemon.

    Args:
        config: the validated configuration.
        config_path: the file it came from (None: the embedded default), re-read on reload.
        ready_file: where to write the bound addresses as JSON once every listener is up.
        environ: the environment (Kubernetes identity, variables for reloads).
        clock: the only source of time for every component.
        config_digest: SHA-256 of the file's text ``config`` was read from (see
            :attr:`agent_sre.config.ConfigFile.digest`).
    """

    def __init__(
        self,
        config: Config,
        config_path: str | None = None,
        ready_file: str | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        config_digest: str = "",
    ) -> None:
        self.config_path = config_path
        self.config_digest = config_digest
        self.ready_file = ready_file
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self.started_at = clock.time()
        self.registry = CollectorRegistry()
        self.addresses: dict[str, str] = {}
        self.ready = False
        identity = self._identity(config)
        pipeline = Pipeline(
            config,
            identity.resource_attributes(),
            Pipeline.register_metrics(self.registry),
            clock,
        )
        self.context = NodeContext(
            config=config,
            clock=clock,
            registry=self.registry,
            bus=SignalBus(self.registry),
            pipeline=pipeline,
            environ=self.environ,
            node_name=identity.node,
            listeners=ListenerLimits(
                config.node.max_connections_per_listener,
                Listeners.register_metrics(self.registry),
            ),
        )
        self.metrics = pipeline.metrics
        metrics_server = MetricsServer(self.context, ready=lambda: self.ready)
        admin = AdminServer(
            self.context, status=self.status, reload=self.reload, routes=self._admin_routes
        )
        self.components = components(self.context, metrics_server, admin)
        self.context.stages = [s for c in self.components for s in c.proxy_stages()]
        self._started: list[Component] = []
        self._state_lock: StateDirLock | None = None
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._ballast_task: asyncio.Task[None] | None = None
        self.set_aside: deque[aside.SetAside] = deque(maxlen=100)
        """What the stores set aside since the start (the last 100)."""
        self.restart_needed: set[str] = set()
        """Settings changed by a reload since the start that take effect on restart only
        (``GET /v1/status`` says them until the process restarts)."""
        aside.drain()  # a node of its own (tests start several in one process)

    @property
    def config(self) -> Config:
        return self.context.config

    # -- life -------------------------------------------------------------------------

    async def run(self) -> int:
        """Starts, serves until asked to stop, shuts down; returns the exit status (1 when
        the daemon could not start: what had started is stopped again)."""
        try:
            await self.start()
        except StartError as exc:
            log.error("cannot start: %s", exc)
            return 1
        loop = asyncio.get_running_loop()
        signals_installed = True
        try:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests, embedding)
            signals_installed = False
        try:
            await self._stop.wait()
        finally:
            if signals_installed:
                # A second SIGTERM/SIGINT during the drain stops at once.
                loop.add_signal_handler(signal.SIGTERM, _exit_now)
                loop.add_signal_handler(signal.SIGINT, _exit_now)
            await self.shutdown()
        return 0

    def request_stop(self) -> None:
        log.info("stop requested; draining")
        self._stop.set()

    async def start(self) -> None:
        """Starts every component in order; if one fails, stops those already started."""
        # one daemon per state_dir: a second one is refused here, naming the first's pid
        self._state_lock = lock_state_dir(Path(self.config.state_dir))
        # room kept back so the stores can still delete on a full disk (stores/ballast.py)
        await asyncio.to_thread(ballast.lay, Path(self.config.state_dir))
        self._ballast_task = asyncio.create_task(self._tend_ballast(), name="ballast")
        component = self.components[0]
        try:
            for component in self.components:
                # stopped too if its own start fails half-way (stop tolerates that)
                self._started.append(component)
                self.addresses.update(await component.start())
            self._wire_observers()
        except BaseException as exc:
            log.error("start failed in %s; stopping what was started", component.name)
            await cancel_tasks(self._ballast_task)
            await self._stop_started(self.clock.monotonic() + START_FAILURE_GRACE)
            self._release_state_dir()
            if isinstance(exc, Exception):
                raise StartError(f"{component.name}: {exc}") from exc
            raise
        for name, address in self.addresses.items():
            log.info("listening: %s on %s", name, address)
        exposed = sorted(n for n, a in self.addresses.items() if not is_loopback_address(a))
        if exposed and not self.config.admin.token:
            log.warning(
                "listening beyond loopback (%s) and admin.token is empty: whoever reaches "
                "these ports is served under whatever agent id it claims; bind them to "
                "loopback or a private network and set admin.token (docs/proxy.md, Limits)",
                ", ".join(exposed),
            )
        self._announce_set_aside()
        freeze_startup_heap()
        hand_over_sooner()
        self.ready = True
        if self.ready_file:
            _write_json_atomically(Path(self.ready_file), {**self.addresses, "pid": os.getpid()})
        log.info("agent-sre %s ready (node %s)", __version__, self.context.node_name)

    async def _tend_ballast(self) -> None:
        while True:
            await asyncio.sleep(BALLAST_EVERY_S)
            await asyncio.to_thread(ballast.tend)

    async def shutdown(self) -> None:
        """Stops every component in reverse order within ``node.shutdown_timeout``."""
        self.ready = False
        await cancel_tasks(self._ballast_task)
        deadline = self.clock.monotonic() + self.config.node.shutdown_timeout
        await self._stop_started(deadline)
        await asyncio.to_thread(ballast.remove)
        self._release_state_dir()
        log.info("stopped")

    def _release_state_dir(self) -> None:
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None

    async def _stop_started(self, deadline: float) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await component.stop(deadline)
            except Exception:
                log.exception("stopping %s failed", component.name)

    def _wire_observers(self) -> None:
        """Points the span pass at the current engines (asked again after each reload)."""
        pipeline = self.context.pipeline
        pipeline.set_observers([o for c in self.components for o in c.span_observers()])
        pipeline.observers_of_batches = [o for c in self.components for o in c.batch_observers()]

    def _admin_routes(self) -> list[Any]:
        return [route for c in self.components for route in c.admin_routes()]

    # -- reload -----------------------------------------------------------------------

    async def reload(self) -> tuple[bool, str]:
        """Re-reads the configuration, all or nothing: every component prepares the new
        configuration first; if any cannot, the running configuration stays in force."""
        async with self._reload_lock:
            try:
                loaded = read_config(self.config_path, self.environ | dict(os.environ))
            except ConfigError as exc:
                return self._reload_refused(str(exc))
            new = loaded.config
            # what `run` and `validate` check on this machine (files the new one names)
            problems = [loaded.problem(loc, message) for loc, message in runtime_problems(new)]
            if problems:
                return self._reload_refused("\n".join(problems))
            prepared: list[Prepared] = []
            try:
                for component in self.components:
                    prepared.append(await component.prepare_reload(new))
            except Exception as exc:
                for done in prepared:
                    if done.abort is not None:
                        await done.abort()
                reason = (
                    str(exc) if isinstance(exc, ReloadError) else f"{type(exc).__name__}: {exc}"
                )
                log.exception("reload: preparing failed") if not isinstance(
                    exc, ReloadError
                ) else None
                return self._reload_refused(reason)
            identity = self._identity(new)
            self.context.pipeline.processor.resource_attributes = identity.resource_attributes()
            for done in prepared:
                if done.commit is not None:
                    await done.commit()
            self.context.config = new
            self.config_digest = loaded.digest
            self.context.node_name = identity.node
            self._wire_observers()
            restart_needed = [item for done in prepared for item in done.needs_restart]
            self.restart_needed.update(restart_needed)
            message = "configuration reloaded"
            if restart_needed:
                message += f"; {', '.join(restart_needed)} changed and take effect on restart"
                log.warning(message)
            else:
                log.info(message)
            self.metrics.config_reloads.labels("ok").inc()
            self._announce_set_aside()
            return True, message

    def _announce_set_aside(self) -> None:
        """Publishes, counts and lists what the stores set aside (already logged)."""
        now = self.clock.time()
        for entry in aside.drain():
            self.metrics.state_set_aside.labels(entry.store).inc()
            self.set_aside.append(entry)
            self.context.bus.publish(
                Signal(
                    type=aside.SIGNAL_TYPE,
                    source="node",
                    severity=Severity.WARNING,
                    at=now,
                    message=entry.message,
                    labels={"store": entry.store},
                    details=entry.to_dict(),
                )
            )

    def _reload_refused(self, reason: str) -> tuple[bool, str]:
        self.metrics.config_reloads.labels("error").inc()
        log.error("reload refused, keeping the running configuration:\n%s", reason)
        return False, reason

    # -- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "version": __version__,
            "node": self.context.pipeline.processor.resource_attributes,
            "ready": self.ready,
            "uptime_seconds": round(self.clock.time() - self.started_at, 3),
            "addresses": self.addresses,
            "config": {
                "path": self.config_path,
                "sha256": self.config_digest,
                "restart_needed": sorted(self.restart_needed),
            },
            "set_aside": [entry.to_dict() for entry in self.set_aside],
        }
        for component in self.components:
            answer.update(component.status())
        return answer

    def _identity(self, config: Config) -> NodeIdentity:
        name = config.node.name or socket.gethostname()
        return NodeIdentity.from_environ(name, self.environ)


async def _abort(prepared: list[Prepared]) -> None:
    for done in prepared:
        if done.abort is not None:
            await done.abort()


def is_loopback_address(address: str) -> bool:
    """Whether ``host:port`` (``[v6]:port``, a name) binds to loopback only."""
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exit_now() -> None:
    log.warning("second stop signal: exiting without finishing the drain")
    os._exit(1)


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
