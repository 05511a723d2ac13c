"""Slow and numerous clients: header and body timeouts, a connection cap per listener, a cap
on request bytes in flight on the proxy, the open files limit raised at start."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from aiohttp import web

from agent_sre_daemon import http_site
from agent_sre_daemon.node import is_loopback_address
from agent_sre_daemon.proxy import server as proxy_server

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing (raises TimeoutError if it never closes)."""
    return await asyncio.wait_for(reader.read(), seconds)


def head(path: str, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}{extra}\r\n"
    ).encode()


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(http_site, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(http_site, "BODY_TIMEOUT", 0.5)


async def test_idle_and_partial_head_connections_are_closed(quick, make_proxy) -> None:
    proxy = await make_proxy()
    idle_reader, _ = await connect(proxy.url)
    partial_reader, partial = await connect(proxy.url)
    partial.write(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    await partial.drain()
    assert await closed_within(idle_reader, 10) == b""
    assert await closed_within(partial_reader, 10) == b""


async def test_a_trickled_body_gets_408(quick, make_proxy, provider) -> None:
    proxy = await make_proxy()
    reader, writer = await connect(proxy.url)
    writer.write(head("/openai/v1/chat/completions", len(CHAT)) + CHAT[:5].encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"type": "request_timeout"' in answer
    assert provider.calls == 0
    assert proxy.server._bodies.held == 0


async def test_connection_cap_per_listener(monkeypatch, make_proxy) -> None:
    monkeypatch.setattr(http_site, "connection_cap", lambda: 3)
    proxy = await make_proxy()
    held = [await connect(proxy.url) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, _ = await connect(proxy.url)
    answer = await closed_within(reader, 10)
    assert answer.startswith(b"HTTP/1.1 503")
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    reader, writer = await connect(proxy.url)  # room again
    writer.write(head("/openai/v1/chat/completions", len(CHAT), "Connection: close\r\n"))
    writer.write(CHAT.encode())
    assert (await closed_within(reader, 10)).startswith(b"HTTP/1.1 200")


async def test_request_bytes_in_flight_are_capped(monkeypatch, make_proxy, provider) -> None:
    monkeypatch.setattr(proxy_server, "BODIES_IN_FLIGHT_BYTES", 1000)
    proxy = await make_proxy()
    slow_reader, slow = await connect(proxy.url)
    slow.write(head("/openai/v1/chat/completions", 990) + b"{")  # holds 990 bytes of room
    await slow.drain()
    await asyncio.sleep(0.1)
    reader, writer = await connect(proxy.url)
    writer.write(head("/openai/v1/chat/completions", len(CHAT)) + CHAT.encode())
    answer = await reader.read(4096)
    assert answer.startswith(b"HTTP/1.1 503")
    assert b"proxy_busy" in answer
    assert b"retry-after: 1" in answer.lower()
    # an unsized (chunked) body takes its room as it arrives, and is refused past it
    reader, writer = await connect(proxy.url)
    chunk = b"x" * 300
    writer.write(
        head("/openai/v1/chat/completions", None, "Transfer-Encoding: chunked\r\n")
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
    )
    assert (await reader.read(4096)).startswith(b"HTTP/1.1 503")
    slow.close()
    await asyncio.sleep(0.2)
    assert proxy.server._bodies.held == 0
    reader, writer = await connect(proxy.url)
    writer.write(head("/openai/v1/chat/completions", len(CHAT)) + CHAT.encode())
    assert (await reader.read(4096)).startswith(b"HTTP/1.1 200")
    del slow_reader


async def test_an_oversized_body_is_413_in_the_provider_shape(make_proxy, provider) -> None:
    proxy = await make_proxy()
    reader, writer = await connect(proxy.url)
    writer.write(head("/openai/v1/chat/completions", proxy_server.MAX_REQUEST_BYTES + 1))
    answer = await reader.read(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"type": "request_too_large"' in answer
    assert provider.calls == 0


async def test_every_listener_started_through_start_site_is_guarded(monkeypatch, quick) -> None:
    monkeypatch.setattr(http_site, "connection_cap", lambda: 2)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/", echo)
    runner, address = await http_site.start_site(app, "127.0.0.1:0")
    try:
        url = f"http://{address}"
        reader, writer = await connect(url)
        writer.write(head("/", 10) + b"abc")  # body never completes: connection closed
        assert await closed_within(reader, 10) == b""
        held = [await connect(url) for _ in range(2)]
        await asyncio.sleep(0.05)
        reader, _ = await connect(url)
        assert (await closed_within(reader, 10)).startswith(b"HTTP/1.1 503")
        del held
    finally:
        await runner.cleanup()


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    code = (
        "import resource\n"
        "from agent_sre_daemon.http_site import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "print(raise_open_files_limit()[0] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]"
        " == (hard if hard != resource.RLIM_INFINITY else max(256, 1 << 20)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:8790", True),
        ("127.3.4.5:1", True),
        ("[::1]:8790", True),
        ("localhost:8790", True),
        ("0.0.0.0:8790", False),
        ("[::]:4317", False),
        ("10.0.0.5:9464", False),
        ("node.example:8790", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback_address(address) is loopback
