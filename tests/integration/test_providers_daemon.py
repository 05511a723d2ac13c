"""Gemini, Azure OpenAI, an OpenAI-compatible server and Bedrock through the real daemon,
driven by their official SDKs: chaos faults in each provider's own shape, capture and
cassettes that replay offline, a rollout that varies a model named in the path, and the
agent's own span of a call linked to the proxy's (one call, one event)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3
import openai
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors, types
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

TOKEN = "tok"
GEMINI_KEY = "AIzaSyPLANTED0123456789abcdefghijklmnop"
GEMINI = "gemini-2.5-flash"
BEDROCK = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES: Any = [{"role": "user", "content": "hello there"}]
REPLY = "Hello word word word word"


def routes(url: str) -> list[dict[str, Any]]:
    return [
        {"name": "gemini", "prefix": "/gemini", "upstream": url, "api": "gemini"},
        {"name": "azure", "prefix": "/azure", "upstream": url, "api": "azure_openai",
         "deployments": {"prod": "gpt-4o"}},
        {"name": "local", "prefix": "/local", "upstream": url + "/v1", "api": "openai_compatible"},
        {"name": "bedrock", "prefix": "/bedrock", "upstream": url, "api": "bedrock",
         "aws_region": "us-east-1"},
    ]  # fmt: skip


AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIDPROXY0000000000", "AWS_SECRET_ACCESS_KEY": "proxy-secret"}


def start(make_daemon: Callable[..., DaemonProcess], url: str, **sections: Any) -> DaemonProcess:
    config = {
        "proxy": {"routes": routes(url), "correlation": {"hold": "0s"}},
        "admin": {"token": TOKEN},
        "chaos": {"enabled": True, "allow_header_faults": True},
        **sections,
    }
    return make_daemon(config, **AWS_ENV).start()


def proxy(daemon: DaemonProcess, prefix: str) -> str:
    return f"http://{daemon.addresses['proxy']}{prefix}"


def gemini(base: str, **headers: str) -> genai.Client:
    return genai.Client(
        api_key=GEMINI_KEY, http_options=types.HttpOptions(base_url=base, headers=headers)
    )


def bedrock(base: str, **headers: str) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=base,
        aws_access_key_id="AKIDCLIENT000000000",
        aws_secret_access_key="client-secret",
        config=BotoConfig(retries={"max_attempts": 1}),
    )

    def add(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    client.meta.events.register_first("before-sign.bedrock-runtime.*", add)
    return client


def fault(value: str) -> dict[str, str]:
    return {"x-agent-sre-fault": value}


def admin(daemon: DaemonProcess, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path),
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_faults_in_each_providers_own_shape(make_daemon, provider_url: str) -> None:
    daemon = start(make_daemon, provider_url)
    client = gemini(proxy(daemon, "/gemini"), **fault("error; status=503"))
    with pytest.raises(errors.ServerError) as unavailable:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    client = gemini(proxy(daemon, "/gemini"), **fault("rate_limit; retry_after=1s"))
    with pytest.raises(errors.ClientError) as exhausted:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert (exhausted.value.code, exhausted.value.status) == (429, "RESOURCE_EXHAUSTED")

    for prefix, model in (("/azure/openai/v1", "prod"), ("/local", "llama3.2")):
        sdk = openai.OpenAI(base_url=proxy(daemon, prefix), api_key="k", max_retries=0)
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.chat.completions.create(model=model, messages=MESSAGES,
                                        extra_headers=fault("rate_limit"))  # fmt: skip
        assert limited.value.code == "rate_limit_exceeded"

    for asked, code in (("error; status=503", "ServiceUnavailableException"),
                        ("rate_limit", "ThrottlingException")):  # fmt: skip
        aws = bedrock(proxy(daemon, "/bedrock"), **fault(asked))
        with pytest.raises(ClientError) as failed:
            aws.converse(modelId=BEDROCK, messages=[{"role": "user", "content": [{"text": "x"}]}])
        assert failed.value.response["Error"]["Code"] == code

    # a stream cut after two events: the SDK sees the stream end early, the span says why
    client = gemini(proxy(daemon, "/gemini"), **fault("truncated_stream; after_events=2"))
    pieces: list[str] = []
    with contextlib.suppress(Exception):  # whatever the SDK makes of a cut stream
        for chunk in client.models.generate_content_stream(model=GEMINI, contents="x"):
            pieces.append(chunk.text or "")
    assert "".join(pieces) == "Hello word"  # the two events let through
    metrics = scrape(daemon.url("metrics", "/metrics"))
    faults = {dict(labels)["fault"]: value for (name, labels), value in metrics.items()
              if name == "agent_sre_chaos_faults_injected_total"}  # fmt: skip
    # (an SDK may try a faulted call again: at least one of each per call made)
    assert faults["error"] >= 2 and faults["rate_limit"] >= 4 and faults["truncated_stream"] == 1


def test_each_provider_is_captured_and_replays_offline(
    make_daemon, provider_url: str, tmp_path: Path
) -> None:
    daemon = start(make_daemon, provider_url, replay={"enabled": True})

    def gemini_stream(base: str) -> str:
        client = gemini(base)  # (held: the stream reads on after the call returns)
        stream = client.models.generate_content_stream(model=GEMINI, contents="stream please")
        return "".join(chunk.text or "" for chunk in stream)

    assert gemini_stream(proxy(daemon, "/gemini")) == REPLY

    def converse_stream(base: str) -> str:
        answer = bedrock(base).converse_stream(
            modelId=BEDROCK, messages=[{"role": "user", "content": [{"text": "stream"}]}]
        )
        return "".join(
            e["contentBlockDelta"]["delta"]["text"] for e in answer["stream"]
            if "contentBlockDelta" in e
        )  # fmt: skip

    assert converse_stream(proxy(daemon, "/bedrock")) == REPLY
    # a key in the query and in the body (as careless clients send it): forwarded, never kept
    url = proxy(daemon, f"/gemini/v1beta/models/{GEMINI}:generateContent?key={GEMINI_KEY}")
    raw = json.dumps({"contents": [{"parts": [{"text": "x"}]}], "key": GEMINI_KEY}).encode()
    request = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    traces = admin(daemon, "/v1/traces")["traces"]
    assert len(traces) == 3
    for trace in traces:
        kept = json.dumps(admin(daemon, f"/v1/traces/{trace['trace_id']}"))
        assert GEMINI_KEY not in kept
    cassettes = []
    for trace in traces:
        cassette = tmp_path / f"{trace['trace_id']}.json"
        exported = subprocess.run(
            [sys.executable, "-m", "agent_sre_daemon.cli", "replay", "export", trace["trace_id"],
             "--cassette", str(cassette), "--admin", daemon.addresses["admin"]],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "AGENT_SRE_ADMIN_TOKEN": TOKEN},
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        cassettes.append(cassette)
        text = cassette.read_text()
        assert GEMINI_KEY not in text and "AKIDCLIENT" not in text
    daemon.stop()
    from tests.integration.test_replay_daemon import serve_cassette

    for cassette in cassettes:
        server, url = serve_cassette(cassette)
        try:
            (exchange,) = json.loads(cassette.read_text())["exchanges"]
            if exchange["path"].endswith(":streamGenerateContent"):
                assert gemini_stream(url + "/gemini") == REPLY
            elif exchange["prefix"] == "/bedrock":
                assert converse_stream(url + "/bedrock") == REPLY
            else:
                assert "key=[REDACTED]" in exchange["query"]
        finally:
            server.terminate()
            assert server.wait(10) == 0


def test_a_rollout_varies_a_model_named_in_the_path(make_daemon, provider_url: str) -> None:
    rollouts = {"rollouts": [
        {"name": "flash25", "route": "gemini", "baseline": "gemini-2.0-flash",
         "candidate": GEMINI, "steps": [{"weight": 100, "pause": True}]},
        {"name": "nova", "route": "bedrock", "baseline": BEDROCK,
         "candidate": "amazon.nova-lite-v1:0", "steps": [{"weight": 100, "pause": True}]},
    ]}  # fmt: skip
    daemon = start(make_daemon, provider_url, rollouts=rollouts)
    client = gemini(proxy(daemon, "/gemini"))
    answer = client.models.generate_content(model="gemini-2.0-flash", contents="which model?")
    assert answer.model_version == GEMINI  # the candidate answered
    bedrock(proxy(daemon, "/bedrock")).converse(
        modelId=BEDROCK, messages=[{"role": "user", "content": [{"text": "x"}]}]
    )
    metrics = scrape(daemon.url("metrics", "/metrics"))
    requests = {dict(labels)["rollout"]: value for (name, labels), value in metrics.items()
                if name == "agent_sre_rollout_requests_total"
                and dict(labels)["variant"] == "candidate"}  # fmt: skip
    assert requests == {"flash25": 1, "nova": 1}


def test_the_agents_own_span_of_a_call_is_linked_once(
    make_daemon, provider_url: str, upstream: RecordingUpstream
) -> None:
    config = forwarding(upstream)
    config["proxy"] = {"routes": routes(provider_url), "correlation": {"hold": "30s"}}
    daemon = make_daemon(config, **AWS_ENV).start()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    exporter = OTLPSpanExporter(endpoint=f"http://{daemon.addresses['otlp_grpc']}", insecure=True)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("gemini-agent")
    client = gemini(proxy(daemon, "/gemini"), **{"X-Agent-Id": "g1"})
    answer = client.models.generate_content(model=GEMINI, contents="hi")
    usage = answer.usage_metadata
    assert usage is not None
    with tracer.start_as_current_span(
        f"generate_content {GEMINI}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": GEMINI,
            "gen_ai.response.id": answer.response_id or "",
            "gen_ai.usage.input_tokens": usage.prompt_token_count or 0,
            "gen_ai.usage.output_tokens": usage.candidates_token_count or 0,
            "agent.id": "g1",
        },
    ):
        pass
    tracer_provider.shutdown()

    def linked() -> bool:
        metrics = scrape(daemon.url("metrics", "/metrics"))
        return sum(v for (n, _), v in metrics.items()
                   if n == "agent_sre_llm_calls_linked_total") == 1  # fmt: skip

    assert upstream.wait_for(linked), daemon.log()
    metrics = scrape(daemon.url("metrics", "/metrics"))
    assert metrics[("agent_sre_spans_total", (("kind", "LLM_INFERENCE"),))] == 1
