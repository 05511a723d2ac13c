"""Admin reads are open to loopback clients naming a loopback host; anything else needs the
token (a browser page on the node reaching 127.0.0.1 through DNS rebinding names its own
host, and is refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_sre.config import Config
from agent_sre_daemon.admin.server import AdminServer
from agent_sre_daemon.clock import ManualClock
from tests.support.context import node_context

if TYPE_CHECKING:
    from aiohttp import web


def make_admin(token: str = "") -> AdminServer:
    config = Config.model_validate({"admin": {"token": token}})
    clock = ManualClock()
    context = node_context(config, clock, node_name="n")

    async def reload() -> tuple[bool, str]:
        return True, "ok"

    return AdminServer(context, status=lambda: {"ok": True}, reload=reload)


async def request(admin: AdminServer, path: str, **headers: Any) -> tuple[int, Any]:
    async with TestClient(TestServer(admin.app(), host="127.0.0.1")) as client:
        response = await client.get(path, headers=headers)
        return response.status, await response.json()


@pytest.mark.parametrize("host", ["127.0.0.1:8791", "localhost:8791", "[::1]:8791", "localhost"])
async def test_loopback_reads_are_open(host: str) -> None:
    status, body = await request(make_admin(), "/v1/status", Host=host)
    assert status == 200, body
    assert body == {"ok": True}


async def test_a_rebound_host_name_is_refused_without_the_token() -> None:
    status, body = await request(make_admin(), "/v1/status", Host="attacker.example:8791")
    assert status == 403
    assert body["error"]["type"] == "reads_disabled"
    admin = make_admin("tok")
    status, body = await request(admin, "/v1/status", Host="attacker.example:8791")
    assert status == 401
    status, body = await request(
        admin, "/v1/status", Host="attacker.example:8791", Authorization="Bearer tok"
    )
    assert status == 200


def test_requests_from_beyond_loopback_need_the_token() -> None:
    from aiohttp.test_utils import make_mocked_request

    from agent_sre_daemon.admin.server import _local_read

    def mocked(peer: str, host: str) -> web.Request:
        transport: Any = type(
            "T", (), {"get_extra_info": lambda self, name, default=None: (peer, 5000)}
        )()
        return make_mocked_request("GET", "/v1/status", headers={"Host": host}, transport=transport)

    assert _local_read(mocked("127.0.0.1", "127.0.0.1:8791"))
    assert not _local_read(mocked("10.1.2.3", "127.0.0.1:8791"))
    assert not _local_read(mocked("192.168.0.9", "localhost"))
