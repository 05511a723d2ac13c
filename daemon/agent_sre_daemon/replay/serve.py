"""A replay server with no daemon state: answers an agent's calls from a cassette.

``agent-sre replay serve --cassette FILE`` runs it. Requests go to the recorded route
prefixes (``http://HOST:PORT/openai/v1/...``); each is matched like a replay session's call
and answered as recorded, or refused with ``replay_mismatch`` in the provider's own error
shape — nothing is ever forwarded anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from aiohttp import web

from agent_sre.gateway.paths import PathError, canonical_path
from agent_sre.replay.redaction import Redactor
from agent_sre.replay.script import Mismatch, ReplayScript
from agent_sre.units import parse_endpoint
from agent_sre_daemon.errors import proxy_error
from agent_sre_daemon.replay.sessions import write_answer

if TYPE_CHECKING:
    from agent_sre.replay.cassette import Cassette


class CassetteServer:
    def __init__(self, cassette: Cassette, timing: bool = False) -> None:
        self.cassette = cassette
        self.timing = timing
        self.script = ReplayScript(cassette.exchanges, Redactor(cassette.redaction))
        self.mismatches = 0
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, endpoint: str) -> str:
        """Listens on ``endpoint`` (``host:port``; port 0 picks one); returns the URL."""
        host, port = parse_endpoint(endpoint)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        return f"http://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _api(self, path: str) -> str:
        for exchange in self.cassette.exchanges:
            if path.startswith(exchange.prefix.rstrip("/") + "/"):
                return exchange.api
        return "passthrough"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.raw_path.partition("?")[0]
        try:  # the form the proxy recorded the path in (``%3A`` is ``:`` there)
            path = canonical_path(path)
        except PathError as exc:
            self.mismatches += 1
            return proxy_error(self._api(path), "replay_mismatch", str(exc))
        answer = self.script.answer(request.method, path, body)
        if isinstance(answer, Mismatch):
            self.mismatches += 1
            return proxy_error(self._api(path), "replay_mismatch", answer.message)
        response, _ = await write_answer(request, answer, self.timing)
        return response


async def serve_until_stopped(server: CassetteServer, endpoint: str) -> str:
    """Runs ``server`` until SIGINT or SIGTERM; prints its address first."""
    url = await server.start(endpoint)
    prefixes = sorted({e.prefix for e in server.cassette.exchanges})
    print(
        f"replaying {len(server.script.exchanges)} recorded calls of trace "
        f"{server.cassette.trace_id} on {url} (prefixes: {', '.join(prefixes) or '-'})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return url
