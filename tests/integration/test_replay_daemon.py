"""The replay engine in the real daemon: a multi-step agent run (OpenTelemetry SDK spans
and ``openai`` SDK calls through the proxy, streaming included) is kept, fetched back whole,
replayed with the provider stopped to the same outputs, and a changed prompt fails loudly;
planted secrets are nowhere in the stored bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support.daemon import merge

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

    def __init__(self, *flags: str) -> None:
        script = str(ROOT / "tests" / "fakes" / "provider.py")
        self.proc = subprocess.Popen(
            [sys.executable, script, "--port", "0", "--reply-text", REPLY, *flags],
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


def with_replay(config: dict[str, Any]) -> dict[str, Any]:
    """The replay engine is off by default; these tests run it. The proxy's spans go in at
    once (no wait for an agent's own span of the call, which these agents do not send)."""
    config.setdefault("replay", {}).setdefault("enabled", True)
    config.setdefault("proxy", {}).setdefault("correlation", {"hold": "0s"})
    return config


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
    return make_daemon(with_replay(config)).start()


def get(url: str) -> Any:
    """GETs with the admin token (captured bodies and sessions are read with it only)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def key(session: dict[str, Any]) -> str:
    """The value of the header that binds a call to ``session`` (its secret key)."""
    return str(session["header"].split(": ", 1)[1])


def post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def tracer_for(daemon: DaemonProcess | None) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": "planner-svc"}))
    if daemon is not None:
        exporter = OTLPSpanExporter(endpoint=daemon.addresses["otlp_grpc"], insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test-agent")


def agent_run(
    daemon: DaemonProcess | None, prompt: str, base_url: str = ""
) -> tuple[str, list[str]]:
    """A small agent: plan (a JSON call), a tool span, answer (a streamed call). Returns the
    trace id and what the agent produced. Its calls go through the daemon's proxy, or to
    ``base_url``; its spans to the daemon, if any."""
    tracer_provider, tracer = tracer_for(daemon)
    if daemon is not None and not base_url:
        base_url = f"http://{daemon.addresses['proxy']}/openai/v1"
    client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    outputs = []
    with tracer.start_as_current_span(
        "invoke_agent planner",
        attributes={
            "agent.span.kind": "AGENT_TASK",
            "agent.id": "planner",
            "gen_ai.prompt": prompt,
        },
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
        default_headers={"X-Agent-SRE-Replay": key(session)},
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


def cli(
    daemon: DaemonProcess, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", *args, "--admin", daemon.addresses["admin"]],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={**os.environ, "AGENT_SRE_ADMIN_TOKEN": TOKEN},
    )


def test_cli_lists_shows_exports_a_cassette_that_replays_in_a_fresh_directory(
    daemon: DaemonProcess, provider: Provider, tmp_path: Path
) -> None:
    trace_id, recorded = agent_run(daemon, "Plan a trip to Lisbon.")
    changed_id, _ = agent_run(daemon, "Plan a much longer trip to Lisbon and Porto.")

    listed = json.loads(cli(daemon, "replay", "list", "--agent", "planner", "--json").stdout)
    assert {t["trace_id"] for t in listed["traces"]} == {trace_id, changed_id}
    table = cli(daemon, "replay", "list").stdout
    assert trace_id in table and "invoke_agent planner" in table
    shown = cli(daemon, "replay", "show", trace_id).stdout
    assert "AGENT_TASK invoke_agent planner" in shown
    assert "LLM_INFERENCE chat gpt-4o-mini" in shown and "model=gpt-4o-mini" in shown
    assert "tokens=" in shown

    # diff: a run against itself is empty; against the changed run it names the change
    same = cli(daemon, "replay", "diff", trace_id, trace_id)
    assert same.returncode == 0 and "no difference" in same.stdout
    changed = json.loads(cli(daemon, "replay", "diff", trace_id, changed_id, "--json").stdout)
    whats = {(c["path"], c["what"]) for c in changed["changes"]}
    assert ("AGENT_TASK:invoke_agent planner/LLM_INFERENCE:chat gpt-4o-mini[0]",
            "input tokens") in whats  # fmt: skip

    otlp = cli(daemon, "replay", "export", trace_id)
    assert json.loads(otlp.stdout)["resourceSpans"]
    cassette = tmp_path / "run.cassette.json"
    exported = cli(daemon, "replay", "export", trace_id, "--cassette", str(cassette))
    assert exported.returncode == 0, exported.stderr
    assert "cassette with 2 calls" in exported.stderr

    # the cassette replays with no daemon and no provider, from a fresh directory
    daemon.stop()
    provider.stop()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "c.json").write_bytes(cassette.read_bytes())
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_sre_daemon.cli",
            "replay",
            "serve",
            "--cassette",
            "c.json",
            "--listen",
            "127.0.0.1:0",
        ],  # fmt: skip
        cwd=fresh,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert f"replaying 2 recorded calls of trace {trace_id}" in line, line
        url = line.split(" on ")[1].split(" ")[0]
        _, replayed = agent_run(None, "Plan a trip to Lisbon.", f"{url}/openai/v1")
        assert replayed == recorded
        with pytest.raises(openai.ConflictError, match="no recorded call left"):
            agent_run(None, "Plan a trip to Lisbon.", f"{url}/openai/v1")
    finally:
        server.terminate()
        assert server.wait(10) == 0
    assert list(fresh.iterdir()) == [fresh / "c.json"]  # no state written


def test_cli_errors_are_clear(daemon: DaemonProcess, tmp_path: Path) -> None:
    missing = cli(daemon, "replay", "show", "ab" * 16)
    assert missing.returncode == 1 and "not in the trace buffer" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    served = cli(daemon, "replay", "serve", "--cassette", str(bad))
    assert served.returncode == 1 and "not an agent-sre cassette" in served.stderr
    both = cli(daemon, "replay", "serve", "ab" * 16, "--cassette", str(bad))
    assert both.returncode == 2


@pytest.fixture
def strict_daemon(make_daemon, provider: Provider) -> DaemonProcess:
    """Captures only what went wrong (share 0), cuts bodies at 1 KiB, has a dead route."""
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"},
                {
                    "name": "dead",
                    "prefix": "/dead",
                    "upstream": "http://127.0.0.1:9",
                    "api": "openai",
                },
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "replay": {"capture": {"share": 0.0, "max_body_kib": 1}, "max_sessions": 1},
    }
    return make_daemon(with_replay(config)).start()


def chat(daemon: DaemonProcess, prefix: str, content: str, agent: str = "a1") -> str:
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}{prefix}/v1", api_key=API_KEY, max_retries=0
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": content}],
        extra_headers={"X-Agent-Id": agent},
    )
    return reply.choices[0].message.content or ""


def test_errors_and_refusals_are_always_captured_and_kept_for_longer(
    strict_daemon: DaemonProcess,
) -> None:
    daemon = strict_daemon
    assert chat(daemon, "/openai", "fine") == REPLY  # share 0: not captured
    with pytest.raises(openai.APIStatusError) as unreachable:
        chat(daemon, "/dead", "x" * 5000)
    assert unreachable.value.status_code == 502
    post(daemon.url("admin", "/v1/agents/bad-agent/block"), {})
    with pytest.raises(openai.PermissionDeniedError):
        chat(daemon, "/openai", "refused", agent="bad-agent")

    traces = get(daemon.url("admin", "/v1/traces"))["traces"]
    assert sorted((t["kept_because"], t["calls_captured"]) for t in traces) == [
        ([], 0),  # share 0: the fine call's bodies are not kept
        (["error"], 1),  # the unreachable upstream
        (["error", "refusal"], 1),  # the blocked agent
    ]
    errors = get(daemon.url("admin", "/v1/traces?status=error"))["traces"]
    assert len(errors) == 2

    # the cut body is marked, and a session never replays it
    cut = next(t for t in errors if "refusal" not in t["kept_because"])
    cassette = get(daemon.url("admin", f"/v1/traces/{cut['trace_id']}/cassette"))
    (exchange,) = cassette["exchanges"]
    assert exchange["truncated"] is True and len(exchange["request"]) == 1024
    assert exchange["status"] == 502 and exchange["error"] == "upstream_unreachable"
    session = post(
        daemon.url("admin", "/v1/replay/sessions"), {"trace_id": cut["trace_id"], "prefix": "/dead"}
    )
    with pytest.raises(openai.ConflictError):
        chat(daemon, "/dead", "x" * 5000)
    # one session at most (replay.max_sessions: 1); a closed one frees the place
    with pytest.raises(urllib.error.HTTPError) as full:
        post(daemon.url("admin", "/v1/replay/sessions"), {"trace_id": cut["trace_id"]})
    assert (
        full.value.code == 409
        and "replay.max_sessions" in json.load(full.value)["error"]["message"]
    )
    request = urllib.request.Request(
        daemon.url("admin", f"/v1/replay/sessions/{session['id']}"),
        method="DELETE",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as closed:
        assert json.load(closed) == {"closed": session["id"]}
    assert get(daemon.url("admin", "/v1/replay/sessions"))["sessions"] == []
    # a passthrough session sends what it has no recording for on to the provider
    post(
        daemon.url("admin", "/v1/replay/sessions"),
        {"trace_id": cut["trace_id"], "prefix": "/openai", "passthrough": True},
    )
    assert chat(daemon, "/openai", "not recorded") == REPLY
    (passing,) = get(daemon.url("admin", "/v1/replay/sessions"))["sessions"]
    assert passing["mismatches"] == 1
    request = urllib.request.Request(
        daemon.url("admin", f"/v1/replay/sessions/{passing['id']}"),
        method="DELETE",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    # with no session open, a call naming one still never reaches the upstream
    with pytest.raises(openai.ConflictError, match="no replay session"):
        client = openai.OpenAI(
            base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key=API_KEY,
            max_retries=0, default_headers={"X-Agent-SRE-Replay": key(session)},
        )  # fmt: skip
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_a_reload_changes_what_is_captured(make_daemon, provider: Provider) -> None:
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "replay": {"capture": {"share": 0.0}},
    }
    daemon = make_daemon(with_replay(config)).start()
    chat(daemon, "/openai", "before")
    daemon.write_config(merge(daemon.config, {"replay": {"capture": {"share": 1.0}}}))
    assert post(daemon.url("admin", "/v1/reload"), {})["reloaded"] is True
    chat(daemon, "/openai", "after")
    traces = get(daemon.url("admin", "/v1/traces"))["traces"]
    assert sorted(t["calls_captured"] for t in traces) == [0, 1]
    daemon.write_config(merge(daemon.config, {"replay": {"max_size_mib": -1}}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(daemon.url("admin", "/v1/reload"), {})
    assert "replay.max_size_mib" in json.load(refused.value)["error"]["message"]
    assert len(get(daemon.url("admin", "/v1/traces"))["traces"]) == 2  # still serving


def test_a_compressed_answer_is_stored_decoded_and_replays(make_daemon) -> None:
    gzipping = Provider("--gzip")
    try:
        config = {
            "proxy": {
                "endpoint": "127.0.0.1:0",
                "routes": [
                    {
                        "name": "openai",
                        "prefix": "/openai",
                        "upstream": gzipping.url,
                        "api": "openai",
                    }  # fmt: skip
                ],
            },
            "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        }
        daemon = make_daemon(with_replay(config)).start()
        assert chat(daemon, "/openai", "zip it") == REPLY
        (trace,) = get(daemon.url("admin", "/v1/traces"))["traces"]
        cassette = get(daemon.url("admin", f"/v1/traces/{trace['trace_id']}/cassette"))
        (exchange,) = cassette["exchanges"]
        assert (
            json.loads(exchange["chunks"][0]["data"])["choices"][0]["message"]["content"] == REPLY
        )
    finally:
        gzipping.stop()
    post(
        daemon.url("admin", "/v1/replay/sessions"),
        {"trace_id": trace["trace_id"], "prefix": "/openai"},
    )
    assert chat(daemon, "/openai", "zip it") == REPLY


def test_an_anthropic_stream_replays_from_a_cassette_with_recorded_timing(
    make_daemon, tmp_path: Path
) -> None:
    provider = Provider("--chunk-delay", "0.02")
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {
                    "name": "anthropic",
                    "prefix": "/anthropic",
                    "upstream": provider.url,
                    "api": "anthropic",
                }  # fmt: skip
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
    }
    daemon = make_daemon(with_replay(config)).start()

    def stream_text(base_url: str) -> list[str]:
        client = anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=0)
        with client.messages.stream(
            model="claude-test-model",
            max_tokens=64,
            messages=[{"role": "user", "content": "tell me"}],
        ) as stream:
            return list(stream.text_stream)

    recorded = stream_text(f"http://{daemon.addresses['proxy']}/anthropic")
    assert "".join(recorded) == REPLY
    (trace,) = get(daemon.url("admin", "/v1/traces"))["traces"]
    cassette = tmp_path / "a.json"
    exported = cli(daemon, "replay", "export", trace["trace_id"], "--cassette", str(cassette))
    assert exported.returncode == 0, exported.stderr
    (exchange,) = json.loads(cassette.read_text())["exchanges"]
    assert exchange["streamed"] is True and len(exchange["chunks"]) > 1
    daemon.stop()
    provider.stop()
    server, url = serve_cassette(cassette, "--timing")
    try:
        assert stream_text(f"{url}/anthropic") == recorded
    finally:
        server.terminate()
        server.wait(10)
        provider.stop()


def test_bodies_per_trace_are_capped_and_later_calls_keep_metadata_only(
    make_daemon, provider: Provider
) -> None:
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "replay": {"capture": {"max_trace_mib": 0.001}},  # about 1 KiB of bodies a trace
    }
    daemon = make_daemon(with_replay(config)).start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    for n in range(4):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {n}"}]
        )
    cassette = get(daemon.url("admin", f"/v1/traces/{trace_id}/cassette"))
    kept = [(e["truncated"], bool(e["chunks"])) for e in cassette["exchanges"]]
    assert len(kept) == 4
    assert kept[0] == (False, True)  # the first calls keep their bodies...
    assert kept[-1] == (True, False)  # ...the last ones only that they happened


def test_the_diff_of_two_runs_names_the_changed_prompt(daemon: DaemonProcess) -> None:
    trace_id, _ = agent_run(daemon, "Plan a trip to Lisbon.")
    changed_id, _ = agent_run(daemon, "Plan a trip to Porto.")
    llm = "AGENT_TASK:invoke_agent planner/LLM_INFERENCE:chat gpt-4o-mini"

    diff = get(daemon.url("admin", f"/v1/traces/diff?a={trace_id}&b={changed_id}"))
    requests = [c for c in diff["changes"] if c["what"] == "request"]
    assert [(c["path"], c["where"], c["a"], c["b"]) for c in requests] == [
        (f"{llm}[{n}]", "messages[0].content", "Plan a trip to Lisbon.", "Plan a trip to Porto.")
        for n in (0, 1)
    ]
    # the same answer (the stand-in's text, streamed in the second call) is no change
    assert not [c for c in diff["changes"] if c["what"] in ("answer", "tool calls")]
    assert get(daemon.url("admin", f"/v1/traces/diff?a={trace_id}&b={trace_id}"))["changes"] == []

    shown = cli(daemon, "replay", "diff", trace_id, changed_id)
    assert shown.returncode == 0, shown.stderr
    assert (
        f"{llm}[0]: request (messages[0].content) 'Plan a trip to Lisbon.' -> "
        "'Plan a trip to Porto.'" in shown.stdout
    )
    as_json = json.loads(cli(daemon, "replay", "diff", trace_id, changed_id, "--json").stdout)
    assert as_json["changes"] == diff["changes"]
    same = cli(daemon, "replay", "diff", changed_id, changed_id)
    assert same.returncode == 0 and "no difference" in same.stdout


def test_calls_a_session_refuses_are_signalled_at_most_once_a_minute(
    daemon: DaemonProcess,
) -> None:
    trace_id, _ = agent_run(daemon, "Plan a trip to Lisbon.")
    session = post(daemon.url("admin", "/v1/replay/sessions"), {"trace_id": trace_id})
    client = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Agent-SRE-Replay": key(session)},
    )
    for _ in range(3):
        with pytest.raises(openai.ConflictError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a cruise."}]
            )
    (listed,) = get(daemon.url("admin", "/v1/replay/sessions"))["sessions"]
    assert listed["mismatches"] == 3
    # the first refusal at once; the next two are held for the digest a minute later
    (signal,) = get(daemon.url("admin", "/v1/signals?type=replay_mismatch"))["signals"]
    assert (signal["source"], signal["severity"], signal["state"], signal["value"]) == (
        "replay", "warning", "firing", 1
    )  # fmt: skip
    assert signal["labels"] == {"session_id": session["id"], "trace_id": trace_id}
    # the signal names the call, not its body (signals are read without the token); the
    # session's last refusal, read with the token, says how it differed
    assert "POST /openai/v1/chat/completions" in signal["message"]
    assert "Plan a cruise." not in signal["message"]
    assert "Plan a cruise." in listed["last_mismatch"]


def serve_cassette(cassette: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``agent-sre replay serve`` on ``cassette`` (with ``options``); the process and its URL."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_sre_daemon.cli",
            "replay",
            "serve",
            "--cassette",
            str(cassette),
            "--listen",
            "127.0.0.1:0",
            *options,
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    assert " on " in line, line
    return server, line.split(" on ")[1].split(" ")[0]


def test_an_openai_sdk_default_stream_replays_from_a_cassette_and_a_session(
    daemon: DaemonProcess, provider: Provider, tmp_path: Path
) -> None:
    """The SDK's default streamed call (no ``stream_options``): the proxy asks the provider
    for usage on its way up, but the cassette holds the agent's own request, so
    ``replay serve`` (which sees only the agent's request) answers it, and so does a
    replay session in the daemon."""
    messages = [{"role": "user", "content": "stream me the answer"}]

    def streamed(base_url: str, headers: dict[str, str] | None = None) -> list[str]:
        client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, extra_headers=headers
        )
        return [c.choices[0].delta.content or "" for c in stream if c.choices]

    proxy_url = f"http://{daemon.addresses['proxy']}/openai/v1"
    recorded = streamed(proxy_url)
    assert "".join(recorded) == REPLY
    (trace,) = get(daemon.url("admin", "/v1/traces"))["traces"]
    cassette = tmp_path / "stream.json"
    exported = cli(daemon, "replay", "export", trace["trace_id"], "--cassette", str(cassette))
    assert exported.returncode == 0, exported.stderr
    (exchange,) = json.loads(cassette.read_text())["exchanges"]
    assert exchange["streamed"] is True
    assert "stream_options" not in json.dumps(exchange["request"])  # the agent's own request

    # a replay session in the daemon answers the same call, the provider down
    provider.stop()
    session = post(daemon.url("admin", "/v1/replay/sessions"), {"trace_id": trace["trace_id"]})
    assert streamed(proxy_url, {"X-Agent-SRE-Replay": key(session)}) == recorded
    daemon.stop()

    server, url = serve_cassette(cassette)
    try:
        # a request the agent did not make (usage asked for) is refused, naming the change
        client = openai.OpenAI(base_url=f"{url}/openai/v1", api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.ConflictError, match="stream_options"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        assert streamed(f"{url}/openai/v1") == recorded
    finally:
        server.terminate()
        assert server.wait(10) == 0


def test_a_call_a_rollout_sent_to_its_candidate_model_replays_from_a_cassette(
    make_daemon, provider: Provider, tmp_path: Path
) -> None:
    """The rollout rewrites the model on the way up; the cassette keeps the model the agent
    asked for, so the agent's own call replays."""
    config = {
        "proxy": {
            "endpoint": "127.0.0.1:0",
            "routes": [
                {"name": "openai", "prefix": "/openai", "upstream": provider.url, "api": "openai"}
            ],
        },
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
        "rollouts": {
            "rollouts": [
                {
                    "name": "gpt41",
                    "route": "openai",
                    "baseline": "gpt-4o",
                    "candidate": "gpt-4.1",
                    "steps": [{"weight": 100, "pause": True}],
                }
            ]
        },
    }
    daemon = make_daemon(with_replay(config)).start()

    def ask(base_url: str) -> str:
        client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "which model?"}]
        )
        return answer.model

    assert ask(f"http://{daemon.addresses['proxy']}/openai/v1") == "gpt-4.1"
    (trace,) = get(daemon.url("admin", "/v1/traces"))["traces"]
    cassette = tmp_path / "rollout.json"
    exported = cli(daemon, "replay", "export", trace["trace_id"], "--cassette", str(cassette))
    assert exported.returncode == 0, exported.stderr
    daemon.stop()
    server, url = serve_cassette(cassette)
    try:
        assert ask(f"{url}/openai/v1") == "gpt-4.1"  # the recorded answer
    finally:
        server.terminate()
        assert server.wait(10) == 0
