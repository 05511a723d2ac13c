"""The one check of private reads: a route marked ``private_read`` needs the token on
loopback too (GET and HEAD alike); the replay engine marks every route that hands out
captured bodies or session keys, and only those."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_sre.config import Config
from agent_sre_daemon.admin.access import private_read
from agent_sre_daemon.admin.server import AdminServer
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.replay.admin import ReplayAdmin
from tests.support.context import node_context


@private_read
async def bodies(request: web.Request) -> web.Response:
    return web.json_response({"prompt": "private"})


async def listing(request: web.Request) -> web.Response:
    return web.json_response({"traces": []})


def make_admin(token: str) -> AdminServer:
    context = node_context(
        Config.model_validate({"admin": {"token": token}}), ManualClock(), node_name="n"
    )

    async def reload() -> tuple[bool, str]:
        return True, "ok"

    routes = [web.get("/v1/bodies", bodies), web.get("/v1/listing", listing)]
    return AdminServer(context, status=lambda: {}, reload=reload, routes=lambda: routes)


async def call(admin: AdminServer, method: str, path: str, **headers: Any) -> int:
    async with TestClient(TestServer(admin.app(), host="127.0.0.1")) as client:
        response = await client.request(method, path, headers=headers)
        return response.status


async def test_a_private_read_needs_the_token_on_loopback() -> None:
    admin = make_admin("tok")
    assert await call(admin, "GET", "/v1/listing") == 200
    for method in ("GET", "HEAD"):
        assert await call(admin, method, "/v1/bodies") == 401
        assert await call(admin, method, "/v1/bodies", Authorization="Bearer nope") == 401
        assert await call(admin, method, "/v1/bodies", Authorization="Bearer tok") == 200
    assert await call(make_admin(""), "GET", "/v1/bodies") == 403


def test_the_replay_routes_holding_bodies_or_session_keys_are_private() -> None:
    private = {
        (route.method, route.path)
        for route in ReplayAdmin(engine=None).routes()  # type: ignore[arg-type]
        if route.method == "GET" and getattr(route.handler, "agent_sre_private_read", False)
    }
    assert private == {
        ("GET", "/v1/traces/{trace_id}"),
        ("GET", "/v1/traces/{trace_id}/cassette"),
        ("GET", "/v1/traces/diff"),
        ("GET", "/v1/replay/sessions"),
    }
