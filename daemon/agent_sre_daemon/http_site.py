"""Starting an aiohttp application on a ``host:port`` endpoint (port 0: a free one), with the
limits every listener keeps against slow or too many clients.

- **Header timeout** (:data:`HEADER_TIMEOUT`): a connection that has not sent a complete
  request head that long after it opened (or after its last response) is closed; aiohttp's
  keep-alive timer does this, armed from the first byte.
- **Body timeout** (:data:`BODY_TIMEOUT`): a request whose body has not fully arrived that
  long after its head had its connection closed (1 byte a second never holds a handler).
- **Connection cap** (:class:`ListenerLimits`, per listener: ``node.max_connections_per_listener``
  or :func:`connection_cap`): past it a new connection gets ``503`` and is closed at once, so
  one listener's slow clients cannot use every file descriptor the daemon has (``/healthz``,
  OTLP and the proxy each keep their own room). Each refusal is counted in
  ``agent_sre_connections_refused_total{listener}``. OTLP/gRPC takes the same cap through
  grpcio's own connection quota (its refusals are not seen here).
- :func:`raise_open_files_limit` lifts ``RLIMIT_NOFILE``'s soft limit to the hard one at start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.web_runner import BaseSite
from prometheus_client import Counter

from agent_sre.units import parse_endpoint
from agent_sre_daemon.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prometheus_client import CollectorRegistry


PARSE_OFF_LOOP_BYTES = 1024 * 1024
"""A request body larger than this is parsed (JSON, protobuf) on a worker thread, so the
event loop goes on serving the other listeners and calls meanwhile; smaller ones are parsed
inline (a thread hand-off costs more than their parse)."""
log = logging.getLogger("agent_sre.listeners")

HEADER_TIMEOUT = 30.0
"""Seconds a connection may stay without a complete request head (and idle between requests)."""
BODY_TIMEOUT = 120.0
"""Seconds a request's body may take to arrive after its head (64 MiB at ~4 Mbit/s)."""
LISTENERS = 5
"""Listeners of a node sharing the file limit: proxy, OTLP/HTTP, metrics, admin (aiohttp) and
OTLP/gRPC (grpcio)."""
_RESERVED_FILES = 256
"""Descriptors kept out of the listeners' share: ledger, queue, upstream connections, logs."""
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: 52\r\n\r\n"
    b"agent-sre: this listener is at its connection limit\n"
)


def raise_open_files_limit() -> tuple[int, int]:
    """Raises the soft ``RLIMIT_NOFILE`` to the hard limit; returns (soft, hard) after."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


def connection_cap() -> int:
    """Connections one listener keeps open: its share of the open files limit."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except ImportError:  # pragma: no cover - not on POSIX
        soft = 1024
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, min(10_000, (soft - _RESERVED_FILES) // LISTENERS))


class ListenerMetrics:
    """What the listeners' limits did (registered once per node)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "agent_sre_connections_refused",
            "Connections a listener refused at its connection cap (answered 503 and closed); "
            "OTLP/gRPC refusals happen inside grpcio and are not counted",
            ["listener"],
            registry=registry,
        )


@dataclass
class ListenerLimits:
    """The limits every listener of one node shares.

    Attributes:
        max_connections: connections one listener keeps open; None: :func:`connection_cap`
            (read when a listener starts).
        metrics: where refusals are counted (None: only on the site itself).
    """

    max_connections: int | None = None
    metrics: ListenerMetrics | None = None

    def cap(self) -> int:
        """Connections one listener keeps open."""
        return self.max_connections or connection_cap()

    def listening(self, listener: str) -> None:
        """Shows ``listener``'s refusal count (at 0) before its first refusal."""
        if self.metrics is not None:
            self.metrics.refused.labels(listener)

    def refused(self, listener: str) -> None:
        if self.metrics is not None:
            self.metrics.refused.labels(listener).inc()


async def start_site(
    app: web.Application,
    endpoint: str,
    *,
    listener: str = "http",
    limits: ListenerLimits | None = None,
    **runner_args: Any,
) -> tuple[web.AppRunner, str]:
    """Serves ``app`` on ``endpoint`` with the listener limits; returns the runner (to clean
    up) and the bound address. ``listener`` names it in the refusal count."""
    app.middlewares.append(body_deadline)
    runner = web.AppRunner(app, access_log=None, **runner_kwargs(runner_args))
    await runner.setup()
    host, port = parse_endpoint(endpoint)
    site = GuardedSite(runner, host, port, reuse_address=True, listener=listener, limits=limits)
    await site.start()
    shown_host = endpoint.strip().rpartition(":")[0]
    return runner, f"{shown_host}:{runner.addresses[0][1]}"


def runner_kwargs(extra: dict[str, Any]) -> dict[str, Any]:
    """Runner arguments with the header timeout (read at call time: tests lower it)."""
    return {"keepalive_timeout": HEADER_TIMEOUT, **extra}


class GuardedSite(web.TCPSite):
    """A TCP site that refuses connections past its cap with a 503.

    The cap is ``max_connections``, else ``limits.cap()``, else :func:`connection_cap`; each
    refusal is counted in ``refused`` and, with ``limits``, under ``listener``'s label.
    """

    def __init__(
        self,
        *args: Any,
        max_connections: int | None = None,
        listener: str = "http",
        limits: ListenerLimits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or ListenerLimits()
        self.max_connections = max_connections or self.limits.cap()
        self.listener = listener
        self._refused_at = 0.0
        self.refused = 0

    async def start(self) -> None:
        await BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self.limits.listening(self.listener)

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.max_connections:
                self.refused += 1
                self.limits.refused(self.listener)
                now = SYSTEM_CLOCK.monotonic()  # only paces a log line
                if now - self._refused_at >= 60.0:
                    self._refused_at = now
                    log.warning(
                        "listener %s (%s) at its %d-connection limit: refusing new connections",
                        self.listener,
                        self.name,
                        self.max_connections,
                    )
                return _Refuse()
            return server()

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no asyncio.WriteTransport subclass (an isinstance check
        # failed there and the client got a bare close instead of the 503)
        cast("asyncio.WriteTransport", transport).write(_REFUSAL)
        transport.close()


@web.middleware
async def body_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Closes the connection of a request whose body is not in within :data:`BODY_TIMEOUT`."""
    if request.content.is_eof():
        return await handler(request)

    def check() -> None:
        if not request.content.is_eof() and request.transport is not None:
            log.warning(
                "%s %s: body not received within %gs; connection closed",
                request.method,
                request.path,
                BODY_TIMEOUT,
            )
            request.transport.close()

    timer = asyncio.get_running_loop().call_later(BODY_TIMEOUT, check)
    try:
        return await handler(request)
    finally:
        timer.cancel()
