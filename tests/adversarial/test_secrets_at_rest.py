"""Secrets at rest: a credential the daemon can recognise (by its shape, or by the name of the
query parameter, header, attribute or JSON field it came in) is in no file under
``state_dir``, whatever field a client put it in.

Keys are planted in every field a client controls, through the real daemon and real clients:
OpenTelemetry SDK exporters (span and event names, attribute keys and values, arrays,
resource attributes, events, links, status messages), a raw OTLP/HTTP request (bytes and
nested map values, scope attributes), the ``openai`` and ``anthropic`` SDKs through the proxy
(headers, query strings, JSON bodies, the model, answers streamed a few characters per
event), a tool call and an MCP call. Then every byte of every file under ``state_dir`` is
searched, SQLite files also through a dump of their rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, StatusCode

from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.fakes.provider import FakeProvider
    from tests.support.daemon import DaemonProcess

TOKEN = "admin-token-for-tests"
PLANTED: dict[str, str] = {}
"""Every planted credential by the field it went into (filled as the tests plant them)."""


def shaped(field: str) -> str:
    """A credential recognisable by its shape (an OpenAI-style key), one per field."""
    digest = hashlib.sha256(field.encode()).hexdigest()[:24]
    PLANTED[f"shape:{field}"] = value = f"sk-proj-{digest}"
    return value


def named(field: str) -> str:
    """A credential of no known shape: only the name it comes under says what it is."""
    digest = hashlib.sha256(field.encode()).hexdigest()[:20]
    PLANTED[f"name:{field}"] = value = f"Opq{digest}"
    return value


def google(field: str) -> str:
    digest = hashlib.sha256(field.encode()).hexdigest()
    PLANTED[f"google:{field}"] = value = ("AIzaSy" + digest)[:39]
    return value


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with ThreadedProvider() as provider:
        yield provider


def daemon_config(url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "proxy": {
            "correlation": {"hold": "0s"},
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": url, "api": "openai"},
                {"name": "anthropic", "prefix": "/anthropic", "upstream": url, "api": "anthropic"},
                {"name": "search", "prefix": "/search", "upstream": f"{url}/tool", "api": "tool"},
                {"name": "mcp", "prefix": "/mcp", "upstream": f"{url}/mcp", "api": "mcp"},
            ],
        },
        "admin": {"token": TOKEN},
        "replay": {"enabled": True},
        "chaos": {"allow_header_faults": True},
        # notifications wait in the outbox (the receiver is down)
        "alerting": {
            "receivers": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]
        },
        # the ledger keeps spend per agent: an agent id is a field a client chose
        "budgets": {
            "budgets": [{"name": "per-agent", "scope": "agent", "limit_usd": 100, "window": "day"}],
            "unpriced_models": "block",  # a refused model is named in a signal, an incident
        },
    }
    config.update(extra)
    return config


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- the clients ----------------------------------------------------------------------------


def proxy_traffic(daemon: DaemonProcess, fake: FakeProvider) -> None:
    """Every field a proxied call's client controls, through the official SDKs and plain
    HTTP: headers (never stored), query parameters, bodies, the model, streamed answers."""
    proxy = f"http://{daemon.addresses['proxy']}"
    streamed = shaped("answer_streamed")
    fake.reply_pieces = ["Your ", "key ", "is ", *pieces(streamed), " ok"]
    fake.reply_words = 100
    headers = {
        "X-Agent-Id": "planner",
        "X-Agent-Task-Id": f"task {shaped('task_id_header')}",
        "X-Api-Key": named("x_api_key_header"),
    }
    client = openai.OpenAI(
        base_url=f"{proxy}/openai/v1",
        api_key=shaped("openai_authorization"),
        max_retries=0,
        default_headers=headers,
    )
    query = {"api_key": named("query_api_key"), "key": google("query_key"), "q": "fine"}
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Plan a trip with {shaped('openai_body')}"}],
        extra_query=query,
        extra_body={"metadata": {"api_key": named("body_json_api_key")}},
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Plan a trip, streamed"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_query={"token": named("query_token_streamed")},
    )
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed in answer  # the agent gets its answer untouched
    with pytest.raises(openai.PermissionDeniedError):  # no price: refused, and signalled
        client.chat.completions.create(
            model=shaped("model_name"),
            messages=[{"role": "user", "content": "an odd model"}],
        )
    client.chat.completions.create(  # spend is kept per agent, by the id the client chose
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "who am I"}],
        extra_headers={"X-Agent-Id": shaped("agent_id_llm_header")},
    )
    claude = anthropic.Anthropic(
        base_url=f"{proxy}/anthropic",
        api_key=shaped("anthropic_x_api_key"),
        max_retries=0,
        default_headers=headers,
    )
    with claude.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=200,
        messages=[{"role": "user", "content": f"Hello {shaped('anthropic_body')}"}],
    ) as events:
        assert streamed in "".join(events.text_stream)
    tool_query = f"key={google('tool_query_key')}&access_token={named('tool_query_token')}&q=x"
    send(
        f"{proxy}/search/lookup?{tool_query}",
        {"password": named("tool_body_password"), "text": f"see {shaped('tool_body')}"},
        {"Authorization": f"Bearer {named('tool_authorization')}", **headers},
    )
    send(
        f"{proxy}/mcp",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "get_weather",
                "arguments": {"api_key": named("mcp_argument"), "note": shaped("mcp_note")},
            },
        },
        {**headers, "X-Agent-Id": shaped("agent_id_header")},
    )
    # the daemon's own control header, echoed in its refusal and the span's status message
    send(
        f"{proxy}/openai/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        {"x-agent-sre-fault": f"error; status={shaped('fault_header')}", **headers},
        expect_error=True,
    )


def send(url: str, body: Any, headers: dict[str, str], expect_error: bool = False) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if not expect_error:
            raise
        exc.read()


def sdk_spans(daemon: DaemonProcess) -> None:
    """Spans from the OpenTelemetry SDK over OTLP/gRPC, a key in every field it has."""
    resource = Resource.create(
        {
            "service.name": "planner-svc",
            "deployment.note": shaped("resource_value"),
            "cloud.api_key": named("resource_api_key"),
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=daemon.addresses["otlp_grpc"], insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent", attributes={"scope.note": shaped("scope_value")})
    url = f"https://generativelanguage.googleapis.com/v1beta/models?key={named('url_full_key')}"
    with tracer.start_as_current_span(
        f"invoke_agent {shaped('root_span_name')}",
        attributes={
            "agent.span.kind": "AGENT_TASK",
            "agent.id": "planner",
            "gen_ai.prompt": f"Plan a trip with {shaped('attribute_value')}",
            "notes": ["fine", shaped("attribute_array")],
            shaped("attribute_key"): "a key as an attribute's name",
            "api_key": named("attribute_api_key"),
            "user.password": named("attribute_password"),
            "http.request.header.authorization": [f"Bearer {named('attribute_bearer')}"],
            "http.request.header.x-goog-api-key": [named("attribute_header_goog")],
            "url.full": url,
            "url.query": f"api_key={named('url_query_api_key')}&q=ok",
        },
    ) as root:
        root.add_event(
            f"retry {shaped('event_name')}",
            {"note": shaped("event_value"), "client_secret": named("event_client_secret")},
        )
        with tracer.start_as_current_span(
            "execute_tool search",
            attributes={"agent.span.kind": "TOOL_CALL", "agent.id": shaped("agent_id_attr")},
            links=[Link(root.get_span_context(), {"why": shaped("link_value")})],
        ) as child:
            child.set_status(StatusCode.ERROR, f"failed with {shaped('status_message')}")
    provider.shutdown()


def raw_otlp(daemon: DaemonProcess) -> None:
    """What the SDK cannot send but a careless client can: bytes and nested map values."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="raw"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "raw"
    span = scope_spans.spans.add()
    span.trace_id = bytes.fromhex("5b8aa5a2d2c872e8321cf37308d69df2")
    span.span_id = bytes.fromhex("051581bf3cb55c13")
    span.name = f"raw {shaped('raw_span_name')}"
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = 1_700_000_001_000_000_000
    bearer = f"Authorization: Bearer {named('bytes_bearer')}".encode()
    span.attributes.add(key="http.raw", value=AnyValue(bytes_value=bearer))
    span.attributes.add(key="blob", value=AnyValue(bytes_value=shaped("bytes_value").encode()))
    nested = AnyValue()
    nested.kvlist_value.values.extend(
        [
            KeyValue(key="client_secret", value=AnyValue(string_value=named("kvlist_secret"))),
            KeyValue(key="text", value=AnyValue(string_value=shaped("kvlist_value"))),
        ]
    )
    span.attributes.add(key="config", value=nested)
    array = AnyValue()
    array.array_value.values.add(bytes_value=shaped("bytes_array").encode())
    span.attributes.add(key="blobs", value=array)
    http = urllib.request.Request(
        f"http://{daemon.addresses['otlp_http']}/v1/traces",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(http, timeout=10) as response:
        assert response.status == 200


# -- what is stored -------------------------------------------------------------------------


def stored_files(state_dir: Path) -> dict[str, bytes]:
    """Every file's raw bytes; SQLite files also as the text of a dump of their rows."""
    found: dict[str, bytes] = {}
    for path in sorted(state_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found[str(path.relative_to(state_dir))] = data
        if data.startswith(b"SQLite format 3"):
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                dump = "\n".join(db.iterdump()).encode()
                if path.name == "replay.sqlite":
                    rows = db.execute("SELECT body FROM exchanges")
                    answers = [json.loads(row[0]) for row in rows]
                    found["captured answers, streams reassembled"] = reassembled(answers)
            finally:
                db.close()
            found[f"{path.relative_to(state_dir)} (rows)"] = dump
    return found


def reassembled(exchanges: list[dict[str, Any]]) -> bytes:
    """The text of each captured streamed answer as its reader puts it together: OpenAI's
    ``choices[].delta.content``, Anthropic's ``delta.text``."""
    texts = []
    for exchange in exchanges:
        stream = "".join(chunk["data"] for chunk in exchange["chunks"])
        parts = []
        for line in stream.splitlines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
            parts.append((event.get("delta") or {}).get("text") or "")
        texts.append("".join(parts))
    return "\n".join(texts).encode()


def leaks(files: dict[str, bytes], planted: dict[str, str]) -> list[str]:
    return [
        f"{field} in {name}"
        for field, secret in planted.items()
        for name, data in files.items()
        if secret.encode() in data
    ]


def stopped(daemon: DaemonProcess) -> dict[str, bytes]:
    assert daemon.stop() == 0, daemon.log()
    return stored_files(Path(daemon.config["state_dir"]))


def test_no_planted_credential_reaches_any_file_under_state_dir(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    PLANTED.clear()
    daemon = make_daemon(daemon_config(fake.url)).start()
    sdk_spans(daemon)
    raw_otlp(daemon)
    proxy_traffic(daemon, fake)
    files = stopped(daemon)
    assert {"ledger.sqlite", "replay.sqlite", "incidents.sqlite"} <= set(files), sorted(files)
    everything = b"".join(files.values())
    # what was planted was kept, redacted: the test looks where the secrets would be
    assert b"Plan a trip" in everything and b"[REDACTED]" in everything
    assert any(name.startswith("replay.segments") for name in files), sorted(files)
    streams = files["captured answers, streams reassembled"]
    assert streams.count(b"Your key is ") == 2, streams  # the streamed answers were kept
    found = leaks(files, PLANTED)
    assert not found, "\n".join(found)


def test_spans_the_daemon_made_are_queued_without_credentials(
    make_daemon: Callable[..., DaemonProcess],
    fake: FakeProvider,
) -> None:
    """The proxy's own spans wait in the durable queue (its upstream unreachable): no
    credential of any proxied call is in them."""
    PLANTED.clear()
    exporters = {
        "otlp": {"endpoint": "127.0.0.1:9", "retry": {"initial_interval": "5s"}},
        "prometheus": {"endpoint": "127.0.0.1:0"},
    }
    daemon = make_daemon(daemon_config(fake.url, exporters=exporters)).start()
    proxy_traffic(daemon, fake)
    files = stopped(daemon)
    assert any(name.startswith("queue") for name in files), sorted(files)
    found = leaks(files, PLANTED)
    assert not found, "\n".join(found)
