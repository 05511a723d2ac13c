"""A2A routes against careless and hostile callers and callees, through the real daemon:
requests that are not one JSON-RPC request, huge and deeply nested params, a callee whose
server-sent events arrive in broken frames or stop mid-event, and a callee that never
answers. Each gets a clear answer, a span that says what happened, and a daemon that goes on.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import web

from tests.integration.conftest import forwarding
from tests.support.upstream import attrs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

TASK = "t-\u00e9\u4e16"  # multi-byte characters, to cut frames inside them
EVENTS = [
    {"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": TASK, "status": {"state": s}}}}
    for s in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED")
]
STREAM = b"".join(
    b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\r\n\r\n" for e in EVENTS
)


class Callee:
    """A raw A2A callee: what it answers is the test's choice."""

    def __init__(self) -> None:
        self.requests = 0
        self.mode = "stream"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests += 1
        if self.mode == "silent":
            await asyncio.sleep(3600)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.mode == "stream":  # 5-byte frames: every line end and character cut
            for start in range(0, len(STREAM), 5):
                await response.write(STREAM[start : start + 5])
                await asyncio.sleep(0)
            await response.write_eof()
        else:  # "cut": the first event, then half of the second, then the connection goes
            first = STREAM.index(b"\r\n\r\n") + 4
            await response.write(STREAM[: first + 20])
            assert request.transport is not None
            request.transport.abort()
        return response


@pytest.fixture
async def callee() -> AsyncIterator[tuple[Callee, str]]:
    server = Callee()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield server, f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
def daemon(
    make_daemon: Callable[..., DaemonProcess],
    upstream: RecordingUpstream,
    callee: tuple[Callee, str],
) -> DaemonProcess:
    config = forwarding(upstream)
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        "correlation": {"hold": "0s"},
        "routes": [
            {
                "name": "callee",
                "prefix": "/callee",
                "upstream": callee[1],
                "api": "a2a",
                "timeout": "1s",
            }
        ],
    }
    return make_daemon(config).start()


def url(daemon: DaemonProcess) -> str:
    return f"http://{daemon.addresses['proxy']}/callee/"


def spans(upstream: RecordingUpstream) -> list[dict[str, Any]]:
    return [attrs(span.attributes) for _, span in upstream.spans()]


HANDOFF = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "SendStreamingMessage",
    "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"null",
        b'[{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}]',
        b'{"jsonrpc":"2.0","id":1,"method":["message/send"]}',
        b'{"jsonrpc":"2.0","id":1,"method":"tasks/get","method":"message/send","params":{}}',
        b'{"jsonrpc":"2.0","id":1,"method":"message/send","params":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    ],
    ids=["not-json", "empty", "null", "batch", "method-not-string", "method-twice", "deep"],
)
async def test_what_is_not_one_json_rpc_request_never_reaches_the_callee(
    daemon: DaemonProcess, callee: tuple[Callee, str], body: bytes
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url(daemon), content=body)
        assert response.status_code == 200
        error = response.json()["error"]
        assert error["code"] == -32600 and error["data"] == {"type": "bad_request"}
        assert response.headers["x-should-retry"] == "false"
        assert callee[0].requests == 0
        # the daemon goes on
        ok = await http.post(url(daemon), json=HANDOFF)
        assert ok.status_code == 200 and ok.content == STREAM


async def test_huge_params_pass_and_are_read(
    daemon: DaemonProcess, callee: tuple[Callee, str], upstream: RecordingUpstream
) -> None:
    huge = {**HANDOFF, "id": "x" * 100_000}
    huge["params"] = {"message": {"parts": [{"text": "y" * 8_000_000}], "taskId": "z" * 10_000}}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(url(daemon), json=huge)
    assert response.status_code == 200 and response.content == STREAM
    assert upstream.wait_for(lambda: any(s.get("rpc.method") for s in spans(upstream)))
    (span,) = spans(upstream)
    assert len(span["rpc.jsonrpc.request_id"]) <= 256  # bounded, however long the id
    assert span["agent.delegation.task.id"] == TASK


async def test_broken_frames_are_passed_on_byte_for_byte_and_read(
    daemon: DaemonProcess, upstream: RecordingUpstream
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url(daemon), json=HANDOFF)
    assert response.content == STREAM
    assert upstream.wait_for(lambda: bool(spans(upstream)))
    (span,) = spans(upstream)
    assert span["agent.span.kind"] == "DELEGATION"
    assert span["agent.delegation.task.id"] == TASK
    assert span["a2a.task.state"] == "TASK_STATE_COMPLETED"
    assert "error.type" not in span


async def test_a_stream_cut_mid_event_fails_the_delegation_and_cuts_the_client(
    daemon: DaemonProcess, callee: tuple[Callee, str], upstream: RecordingUpstream
) -> None:
    callee[0].mode = "cut"
    async with httpx.AsyncClient(timeout=30) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url(daemon), json=HANDOFF)
    assert upstream.wait_for(lambda: bool(spans(upstream)))
    (span,) = spans(upstream)
    assert span["error.type"] == "upstream_stream_error"
    assert span["a2a.task.state"] == "TASK_STATE_SUBMITTED"  # what was read before the cut


async def test_a_callee_that_never_answers_is_a_timed_out_delegation(
    daemon: DaemonProcess, callee: tuple[Callee, str], upstream: RecordingUpstream
) -> None:
    callee[0].mode = "silent"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url(daemon), json=HANDOFF)
    # retryable, as a timeout is: its status kept, the body a JSON-RPC error
    assert response.status_code == 504
    body = response.json()
    assert body["id"] == 1 and body["error"]["code"] == -32603
    assert body["error"]["data"] == {"type": "upstream_timeout"}
    assert upstream.wait_for(lambda: bool(spans(upstream)))
    (span,) = spans(upstream)
    assert span["agent.span.kind"] == "DELEGATION"
    assert span["error.type"] == "upstream_timeout"
