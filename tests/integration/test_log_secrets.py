"""No log line carries a header value or a query string, ours or a library's: malformed
requests with planted credentials against every listener leave no trace of them."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import pytest

from agent_sre_daemon.logs import redact

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess

PLANTED = ("sk-planted-secret-1", "sk-query-secret-2", "hunter2-cookie", "plain-key-value-3")
MALFORMED = (
    b"POST /openai/v1/chat?key=sk-query-secret-2 HTTP/1.1\r\nHost: x\r\n"
    b"Authorization: Bearer sk-planted-secret-1\r\nContent-Length: abc\r\n\r\n",
    b"GET /v1/x?token=sk-query-secret-2 HTTP/1.1\r\nCookie: s=hunter2-cookie\r\n"
    b"x-api-key: plain-key-value-3\r\nBad Header Line\r\n\r\n",
    b"GET /x HTTP/1.1\r\nAuthorization: Bearer sk-planted-secret-1" + b"A" * 9000 + b"\r\n\r\n",
    b"GET /x?sk-query-secret-2 HTTP/1.1\r\nX-Api-Key: plain-key-value-3"
    + b"B" * 9000
    + b"\r\n\r\n",
)


def send_raw(address: str, raw: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        try:
            return sock.recv(200)
        except (TimeoutError, ConnectionResetError):
            return b""


def test_malformed_requests_leave_no_secret_in_the_log(make_daemon) -> None:
    daemon: DaemonProcess = make_daemon().start()
    for listener in ("proxy", "otlp_http", "admin", "metrics"):
        for raw in MALFORMED:
            assert b" 400 " in send_raw(daemon.addresses[listener], raw)[:20]
    time.sleep(0.3)
    assert daemon.stop() == 0
    log = daemon.log()
    assert "malformed HTTP request refused" in log
    for secret in PLANTED:
        assert secret not in log


@pytest.mark.parametrize(
    ("line", "kept", "gone"),
    [
        ("Authorization: Bearer sk-abcdef123", "Authorization: [redacted]", "abcdef123"),
        ("{'x-api-key': 'k-123456'}", "x-api-key", "k-123456"),
        ("upstream call to https://h.example/v1/x?api_key=zzz9 failed", "/v1/x?", "zzz9"),
        ("GET /openai/v1/models?key=abc HTTP/1.1", "GET /openai/v1/models?[redacted]", "abc "),
        ("token sk-ant-api03-abcdefgh leaked", "sk-[redacted]", "abcdefgh"),
        ("cookie=session-42", "cookie=[redacted]", "session-42"),
    ],
)
def test_redact(line: str, kept: str, gone: str) -> None:
    out = redact(line)
    assert kept in out
    assert gone not in out
