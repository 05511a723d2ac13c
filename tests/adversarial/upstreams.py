"""Hostile upstreams for a daemon under test: an aiohttp server on its own thread and event
loop (the daemon is another process), answering every request with a server-sent event
stream of ``size`` bytes that holds no blank line (one endless event), written in chunks
over a few seconds."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class EndlessEventUpstream:
    def __init__(self, size: int, chunk: int = 256 * 1024, pause: float = 0.01) -> None:
        self.size = size
        self.chunk = chunk
        self.pause = pause
        self.url = ""
        self.sent = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def payload(size: int) -> bytes:
        """The stream's bytes: ``data: xxx...`` lines with no blank line between them."""
        line = b"data: " + b"x" * 1017 + b"\n"  # 1 KiB
        return (line * (size // len(line) + 1))[:size]

    def start(self) -> EndlessEventUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the upstream did not start")
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        body = self.payload(self.size)
        for start in range(0, len(body), self.chunk):
            await response.write(body[start : start + self.chunk])
            self.sent = start + self.chunk
            await asyncio.sleep(self.pause)
        await response.write_eof()
        return response
