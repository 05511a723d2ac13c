"""Routing, identity, trace context, tools, upstream failures and the no-open-proxy rule."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say hello"}]


async def raw_request(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    await writer.drain()
    data = await reader.read(4096)
    writer.close()
    return data


@pytest.mark.parametrize(
    "payload",
    [
        b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    ],
)
async def test_not_an_open_proxy(proxy, provider, payload: bytes) -> None:
    data = await raw_request(proxy.url, payload)
    assert data.startswith(b"HTTP/1.1 400")
    assert b'"type": "route_not_found"' in data
    assert provider.calls == 0


@pytest.mark.parametrize("path", ["/nope/v1/chat/completions", "/openaiX/v1/models", "/"])
async def test_unknown_prefix_is_route_not_found(proxy, provider, path: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(proxy.url + path) as r:
        assert r.status == 404
        assert (await r.json())["error"]["type"] == "route_not_found"
    assert provider.calls == 0


async def test_host_header_cannot_redirect_upstream(proxy, provider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={"Host": "evil.example"},
        ) as r,
    ):
        assert r.status == 200
    assert provider.requests[-1].headers["Host"] == provider.url.removeprefix("http://")


async def test_query_string_and_method_pass_through(proxy, provider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url + "/tools/search/find?q=a%20b&n=2") as r,
    ):
        assert r.status == 200
        assert (await r.json())["path"] == "/tool/find"
    assert provider.requests[-1].path == "/tool/find?q=a%20b&n=2"
    assert provider.requests[-1].method == "GET"


async def test_traceparent_parents_span_and_reaches_upstream(proxy, provider) -> None:
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="k",
        default_headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = proxy.span()
    assert span.trace_id.hex() == trace_id
    assert span.parent_span_id.hex() == parent
    assert provider.requests[-1].headers["traceparent"] == (
        f"00-{trace_id}-{span.span_id.hex()}-01"
    )
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == 3  # CLIENT
    assert span.end_time_unix_nano > span.start_time_unix_nano
    resource = {
        kv.key: kv.value.string_value
        for kv in proxy.spans[-1].resource_spans[0].resource.attributes
    }
    assert resource["agent_sre.node"] == "test-node"


async def test_without_traceparent_a_new_trace_starts(proxy, provider) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key="k")
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = proxy.span()
    assert len(span.trace_id) == 16 and span.parent_span_id == b""
    assert provider.requests[-1].headers["traceparent"].split("-")[1] == span.trace_id.hex()


async def test_identity_headers_win_over_baggage(proxy, provider) -> None:
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="k",
        default_headers={
            "X-Agent-Id": "from-header",
            "X-Agent-Version": "1.2",
            "baggage": "agent.id=from-baggage,agent.task.id=t%209",
        },
    )
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = proxy.span_attrs()
    assert attrs["agent.id"] == "from-header"
    assert attrs["agent.task.id"] == "t 9"
    assert attrs["agent.version"] == "1.2"


async def test_upstream_unreachable(make_proxy, provider) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proxy = await make_proxy(
        routes=[{"name": "dead", "prefix": "/dead", "upstream": dead, "api": "openai"}]
    )
    client = openai.AsyncOpenAI(base_url=proxy.url + "/dead/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.body["type"] == "upstream_unreachable"
    assert proxy.span_attrs()["error.type"] == "upstream_unreachable"


async def test_upstream_timeout(make_proxy, provider) -> None:
    provider.latency = 1.0
    proxy = await make_proxy(
        routes=[
            {
                "name": "slow",
                "prefix": "/slow",
                "upstream": provider.url,
                "api": "anthropic",
                "timeout": "200ms",
            }
        ]
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/slow/v1/messages",
            json={"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": MESSAGES},
        ) as r,
    ):
        assert r.status == 504
        body = await r.json()
    assert body == {
        "type": "error",
        "error": {"type": "upstream_timeout", "message": body["error"]["message"]},
    }


async def test_inject_api_key_from_environment(make_proxy, provider, monkeypatch) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-injected")
    proxy = await make_proxy(
        routes=[
            {
                "name": "inj",
                "prefix": "/inj",
                "upstream": provider.url,
                "api": "openai",
                "inject_api_key_env": "TEST_PROVIDER_KEY",
            },
            {
                "name": "inj-a",
                "prefix": "/inj-a",
                "upstream": provider.url,
                "api": "anthropic",
                "inject_api_key_env": "TEST_PROVIDER_KEY",
            },
        ]
    )
    client = openai.AsyncOpenAI(base_url=proxy.url + "/inj/v1", api_key="placeholder")
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert provider.requests[-1].headers["Authorization"] == "Bearer sk-injected"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/inj-a/v1/messages",
            json={"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": MESSAGES},
            headers={"Authorization": "Bearer placeholder"},
        ) as r,
    ):
        assert r.status == 200
    assert provider.requests[-1].headers["x-api-key"] == "sk-injected"
    assert "Authorization" not in provider.requests[-1].headers


async def test_tool_route_span(proxy, provider) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            proxy.url + "/tools/search/run", json={"q": "x"}, headers={"X-Agent-Id": "a"}
        ) as r:
            assert (await r.json())["echo"] == {"q": "x"}
        provider.status = 500
        async with session.post(proxy.url + "/tools/search/run", json={"q": "x"}) as r:
            assert r.status == 500
    ok, failed = proxy.span(-2), proxy.span(-1)
    attrs = proxy.span_attrs(-2)
    assert ok.name == "execute_tool web_search"
    assert attrs["agent.span.kind"] == "TOOL_CALL"
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "web_search"
    assert ok.status.code == 0
    assert failed.status.code == 2
    assert proxy.span_attrs(-1)["error.type"] == "500"


@pytest.mark.parametrize(
    ("tool", "error"),
    [("read_file", None), ("failing", "tool_error"), ("missing", "tool_error")],
)
async def test_mcp_tools_call_span(proxy, provider, tool: str, error: str | None) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"path": "/x"}},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + "/mcp-files/mcp", json=call) as r,
    ):
        assert r.status == 200
        assert (await r.json())["id"] == 7
    span = proxy.span()
    attrs = proxy.span_attrs()
    assert span.name == f"execute_tool {tool}"
    assert attrs["agent.span.kind"] == "TOOL_CALL"
    assert attrs.get("error.type") == error
    assert span.status.code == (2 if error else 0)


async def test_mcp_non_tool_messages_are_not_tool_calls(proxy, provider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/mcp-files/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        ) as r,
    ):
        assert r.status == 200
    assert "agent.span.kind" not in proxy.span_attrs()


async def test_passthrough_route_forwards_without_pricing(proxy, provider) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/raw/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
        ) as r,
    ):
        assert r.status == 200
    attrs = proxy.span_attrs()
    assert "agent_sre.cost_usd" not in attrs
    assert attrs["agent_sre.proxy.route"] == "raw"


async def test_gzip_response_passes_compressed_and_is_still_priced(proxy, provider) -> None:
    provider.gzip = True
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.post(
            provider.url + "/v1/chat/completions", json=body, headers={"Accept-Encoding": "gzip"}
        ) as r:
            direct = await r.read()
        async with session.post(
            proxy.url + "/openai/v1/chat/completions",
            json=body,
            headers={"Accept-Encoding": "br, zstd, gzip"},
        ) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
            proxied = await r.read()
    assert proxied == direct
    assert provider.requests[-1].headers["Accept-Encoding"] == "gzip"
    assert proxy.span_attrs()["gen_ai.usage.output_tokens"] == 5
    assert proxy.span_attrs()["agent_sre.cost.estimated"] is False


async def test_unsized_non_sse_body_is_relayed_as_it_arrives(proxy, provider) -> None:
    provider.chunk_delay = 0.1
    arrivals = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url + "/tools/search/ndjson") as r,
    ):
        assert r.headers["Content-Type"] == "application/x-ndjson"
        lines = []
        async for line in r.content:
            arrivals.append(loop.time() - started)
            lines.append(line)
    assert lines == [b'{"line":%d}\n' % i for i in range(5)]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) > 0.05, gaps
    assert proxy.span_attrs()["agent.span.kind"] == "TOOL_CALL"


async def test_upstream_dying_mid_stream_cuts_the_stream_and_is_estimated(proxy, provider) -> None:
    provider.cut_stream_after = 3
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + "/openai/v1/chat/completions", json=body) as r,
    ):
        assert r.status == 200
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                received += chunk
    assert received.count(b"data: ") == 3
    attrs = proxy.span_attrs()
    assert attrs["error.type"] == "upstream_stream_error"
    assert attrs["agent_sre.cost.estimated"] is True
    assert attrs["agent_sre.cost_usd"] > 0


async def test_a_failing_span_sink_never_breaks_a_call(make_proxy, provider, caplog) -> None:
    proxy = await make_proxy()

    proxy.sink.fail = RuntimeError("pipeline down")
    client = openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key="k")
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert "span sink failed" in caplog.text


async def test_refusals_tell_sdks_not_to_retry(make_proxy, provider) -> None:
    proxy = await make_proxy(
        budgets={"budgets": [{"name": "t", "scope": "global", "limit_usd": 1e-9}]}
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            proxy.url + "/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
        ) as r,
    ):
        assert r.status == 403
        assert r.headers["x-should-retry"] == "false"
        assert r.headers["x-agent-sre-error"] == "budget_exceeded"
