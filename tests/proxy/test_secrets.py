"""A planted credential reaches the upstream and nowhere else: spans, logs, stores, metrics."""

from __future__ import annotations

import contextlib
import logging

import aiohttp
import anthropic
import openai
from aiohttp.test_utils import make_mocked_request
from prometheus_client import generate_latest

PLANTED = "sk-PLANTED-7f3a9c1e5b2d4f60"
MESSAGES = [{"role": "user", "content": "Say hello"}]


async def test_planted_key_never_leaves_the_request(make_proxy, provider, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await make_proxy(
        budgets={
            "budgets": [
                {"name": "small", "scope": "agent", "limit_usd": 0.01},
                {"name": "watch", "scope": "global", "limit_usd": 0.0000001, "action": "alert"},
            ],
        }
    )
    headers = {"X-Agent-Id": "agent-s", "x-api-key": PLANTED, "Cookie": f"s={PLANTED}"}
    oai = openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1", api_key=PLANTED, default_headers=headers, max_retries=0
    )
    ant = anthropic.AsyncAnthropic(
        base_url=proxy.url + "/anthropic", api_key=PLANTED, default_headers=headers, max_retries=0
    )
    await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    [chunk async for chunk in stream]
    await ant.messages.create(model="claude-3-5-haiku-latest", max_tokens=5, messages=MESSAGES)
    with contextlib.suppress(openai.PermissionDeniedError):  # refused by the budget
        await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100000)
    provider.status = 401
    with contextlib.suppress(openai.AuthenticationError):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + f"/tools/search/x?key={PLANTED}",
            headers={"Authorization": f"Bearer {PLANTED}"},
        ) as r,
    ):
        await r.read()
    admin_views = []
    app_routes = {route.path: route.handler for route in proxy.server.admin_routes()}
    for path in ("/v1/budgets", "/v1/agents"):
        response = await app_routes[path](make_mocked_request("GET", path))
        admin_views.append(response.body)
    await proxy.server.stop()

    assert all(
        PLANTED in (r.headers.get("Authorization", "") + r.headers.get("x-api-key", ""))
        for r in provider.requests
    )
    secret = PLANTED.encode()
    assert len(proxy.spans) == 6
    for request in proxy.spans:
        assert secret not in request.SerializeToString()
    assert PLANTED not in caplog.text
    assert secret not in generate_latest(proxy.registry)
    for body in admin_views:
        assert secret not in body
    files = [path for path in proxy.state_dir.rglob("*") if path.is_file()]
    assert any(path.name.startswith("ledger.sqlite") for path in files)
    for path in files:
        assert secret not in path.read_bytes(), path
