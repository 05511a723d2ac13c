"""The replay engine in the real daemon: a multi-step agent run (OpenTelemetry SDK spans
and ``openai`` SDK calls through the proxy, streaming included) is kept, fetched back whole,
replayed with the provider stopped to the same outputs, and a changed prompt fails loudly;
planted secrets are nowhere in the stored bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.trace import Tracer

    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]
TOKEN = "tok"
REPLY = "The answer is forty two"
SECRETS = ("sk-live-abcdefghijklmnopqrstuv", "jane.doe@example.com", "4111 1111 1111 1111")
API_KEY = "sk-proj-headerkey0123456789abcdef"


class Provider:
    """The stand-in provider as a process the test can stop."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "fakes" / "provider.py"),
                "--port",
                "0",
                "--reply-text",
                REPLY,
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider()
    yield running
    running.stop()


@pytest.fixture
def daemon(make_daemon, provider: Provider) -> DaemonProcess:
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "replay": {"redaction": {"patterns": ["ticket-[0-9]{4}"]}},
    }
    return make_daemon(config).start()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def tracer_for(daemon: DaemonProcess) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": "planner-svc"}))
    exporter = OTLPSpanExporter(endpoint=daemon.addresses["otlp_grpc"], insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test-agent")


def agent_run(daemon: DaemonProcess, prompt: str) -> tuple[str, list[str]]:
    """A small agent: plan (a JSON call), a tool span, answer (a streamed call). Returns the
    trace id and what the agent produced."""
    tracer_provider, tracer = tracer_for(daemon)
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key=API_KEY, max_retries=0
    )
    outputs = []
    with tracer.start_as_current_span(
        "invoke_agent planner", attributes={"agent.span.kind": "AGENT_TASK", "agent.id": "planner"}
    ) as root:
        headers: dict[str, str] = {}
        inject(headers)
        plan = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            extra_headers=headers,
        )
        outputs.append(plan.choices[0].message.content or "")
        with tracer.start_as_current_span(
            "execute_tool search",
            attributes={"agent.span.kind": "TOOL_CALL", "gen_ai.tool.name": "search"},
        ):
            outputs.append("searched")
        headers = {}
        inject(headers)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": outputs[0]},
                {"role": "user", "content": "now answer"},
            ],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        outputs.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        trace_id = format(root.get_span_context().trace_id, "032x")
    tracer_provider.shutdown()
    return trace_id, outputs


def prompt_with_secrets() -> str:
    return (
        f"Plan a trip. My key is {SECRETS[0]}, mail {SECRETS[1]}, card {SECRETS[2]}, ticket-1234."
    )


def test_a_run_is_kept_replayed_offline_and_redacted(
    daemon: DaemonProcess, provider: Provider
) -> None:
    trace_id, recorded = agent_run(daemon, prompt_with_secrets())
    assert recorded[0] == REPLY and recorded[2] == REPLY

    # the whole trace comes back: the agent's spans and the proxy's spans of its calls
    listed = get(daemon.url("admin", "/v1/traces?agent=planner"))["traces"]
    assert [t["trace_id"] for t in listed] == [trace_id]
    assert listed[0]["calls_captured"] == 2
    assert set(listed[0]["kinds"]) >= {"AGENT_TASK", "TOOL_CALL", "LLM_INFERENCE"}
    otlp = get(daemon.url("admin", f"/v1/traces/{trace_id}"))
    spans = [s for r in otlp["resourceSpans"] for ss in r["scopeSpans"] for s in ss["spans"]]
    assert {s["traceId"] for s in spans} == {trace_id}
    names = sorted(s["name"] for s in spans)
    assert names == sorted(
        ["invoke_agent planner", "execute_tool search", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    )
    tree = get(daemon.url("admin", f"/v1/traces/{trace_id}/spans"))["spans"]
    assert tree[0]["name"] == "invoke_agent planner" and tree[0]["depth"] == 0
    llm = [row for row in tree if row["kind"] == "LLM_INFERENCE"]
    assert all(row["depth"] == 1 and row["output_tokens"] == 5 for row in llm)

    # replay with the provider down: the same outputs, streaming included
    provider.stop()
    session = post(
        daemon.url("admin", "/v1/replay/sessions"), {"trace_id": trace_id, "prefix": "/openai"}
    )
    assert session["calls"] == 2
    _, replayed = agent_run(daemon, prompt_with_secrets())
    assert replayed == recorded
    sessions = get(daemon.url("admin", "/v1/replay/sessions"))["sessions"]
    assert sessions[0]["answered"] == 2 and sessions[0]["remaining"] == 0

    # a changed prompt fails loudly with the nearest recorded request and the difference
    session = post(daemon.url("admin", "/v1/replay/sessions"), {"trace_id": trace_id})
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key=API_KEY,
        max_retries=2,
        default_headers={"X-Agent-SRE-Replay": session["id"]},
    )
    with pytest.raises(openai.ConflictError) as mismatch:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a cruise."}]
        )
    message = str(mismatch.value)
    assert "matches no recorded call" in message
    assert "messages[0].content" in message and "Plan a cruise." in message
    assert mismatch.value.response.headers["x-agent-sre-error"] == "replay_mismatch"
    # an unknown session named in the header never reaches an upstream either
    with pytest.raises(openai.ConflictError, match="no replay session"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-SRE-Replay": "nope"},
        )

    # redaction: no planted secret and no API key in any stored byte
    daemon.stop()
    stored = b"".join(p.read_bytes() for p in Path(daemon.config["state_dir"]).rglob("*")
                      if p.is_file())  # fmt: skip
    assert b"Plan a trip" in stored  # bodies were captured...
    for secret in (*SECRETS, API_KEY, "ticket-1234"):
        assert secret.encode() not in stored, secret  # ...but not the secrets


def test_bad_queries_and_sessions_get_clear_errors(daemon: DaemonProcess) -> None:
    cases = [
        ("/v1/traces?status=broken", 400, "status"),
        ("/v1/traces?kind=NOPE", 400, "kind"),
        ("/v1/traces?since=yesterday", 400, "since"),
        ("/v1/traces?limit=0", 400, "limit"),
        ("/v1/traces/xyz", 400, "not a trace id"),
        ("/v1/traces/" + "ab" * 16, 404, "not in the trace buffer"),
        ("/v1/traces/diff?a=" + "ab" * 16, 400, "query b"),
    ]
    for path, status, words in cases:
        with pytest.raises(urllib.error.HTTPError) as bad:
            get(daemon.url("admin", path))
        assert bad.value.code == status, path
        assert words in json.load(bad.value)["error"]["message"], path
    for body, status, words in [
        ({"trace_id": "ab" * 16}, 404, "no captured calls"),
        ({"trace_id": "ab" * 16, "extra": 1}, 400, "unknown field"),
        ({"trace_id": "ab" * 16, "prefix": "openai"}, 400, "prefix"),
        ({"trace_id": "short"}, 400, "not a trace id"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as bad:
            post(daemon.url("admin", "/v1/replay/sessions"), body)
        assert bad.value.code == status, body
        assert words in json.load(bad.value)["error"]["message"], body
    # and the daemon keeps serving
    assert get(daemon.url("admin", "/v1/traces"))["traces"] == []
