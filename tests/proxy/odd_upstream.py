"""An upstream that answers whatever a test sets: odd bodies, odd usage, odd streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class OddUpstream:
    """Answers every request with ``body`` (or ``events`` as server-sent events)."""

    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    """Chunks of an event stream, written one by one (with ``delay`` between them)."""
    stream_type: str = "text/event-stream"
    delay: float = 0.0
    status: int = 200
    paths: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.paths.append(request.raw_path)
        if self.events is None:
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.Response(
                status=self.status,
                body=self.body,
                headers={"Content-Type": self.content_type, **self.headers},
            )
        response = web.StreamResponse(
            status=self.status, headers={"Content-Type": self.stream_type, **self.headers}
        )
        await response.prepare(request)
        for chunk in self.events:
            await response.write(chunk)
            if self.delay:
                await asyncio.sleep(self.delay)
        await response.write_eof()
        return response


def odd_routes(url: str) -> list[dict[str, str]]:
    return [
        {"name": "odd-openai", "prefix": "/odd-openai", "upstream": url, "api": "openai"},
        {"name": "odd-anthropic", "prefix": "/odd-anthropic", "upstream": url, "api": "anthropic"},
    ]
