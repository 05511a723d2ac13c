"""Each chaos fault, asked per call through ``x-agent-sre-fault`` (header faults), as the
official SDKs see it through the real daemon: the matching real failure, status and body
included, with the fault named on the response and on the call's span."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import anthropic
import httpx
import openai
import pytest

from tests.integration.conftest import forwarding
from tests.support.metrics import scrape
from tests.support.upstream import attrs

if TYPE_CHECKING:
    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

MESSAGES: Any = [{"role": "user", "content": "hello there"}]


def routes(provider_url: str) -> list[dict[str, str]]:
    return [
        {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"},
        {"name": "anthropic", "prefix": "/anthropic", "upstream": provider_url, "api": "anthropic"},
        {"name": "mcp", "prefix": "/mcp", "upstream": provider_url + "/mcp", "api": "mcp"},
        {"name": "search", "prefix": "/search", "upstream": provider_url + "/tool", "api": "tool"},
    ]


@pytest.fixture
def daemon(make_daemon, provider_url: str, upstream: RecordingUpstream) -> DaemonProcess:
    config = {
        "proxy": {"routes": routes(provider_url)},
        "admin": {"token": "tok"},
        "chaos": {"enabled": True, "allow_header_faults": True},
        **forwarding(upstream),
    }
    return make_daemon(config).start()


def oai(daemon: DaemonProcess, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/openai/v1", api_key="sk-test", **options
    )


def claude(daemon: DaemonProcess, **options: Any) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    return anthropic.Anthropic(
        base_url=f"http://{daemon.addresses['proxy']}/anthropic", api_key="sk-ant", **options
    )


def fault(value: str) -> dict[str, str]:
    return {"x-agent-sre-fault": value}


def post_json(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)


def injected(daemon: DaemonProcess) -> dict[str, float]:
    metrics = scrape(daemon.url("metrics", "/metrics"))
    return {
        dict(labels)["fault"]: value
        for (name, labels), value in metrics.items()
        if name == "agent_sre_chaos_faults_injected_total"
    }


def test_errors_and_rate_limits_in_the_providers_own_shape(daemon: DaemonProcess) -> None:
    with pytest.raises(openai.InternalServerError) as error:
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("error; status=503")
        )
    assert error.value.status_code == 503
    assert error.value.response.headers["x-agent-sre-chaos"] == "error"
    assert error.value.body["type"] == "server_error"  # type: ignore[index]

    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude(daemon).messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=20,
            messages=MESSAGES,
            extra_headers=fault("error; status=529"),
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]

    # a 429 is retried by the SDK after Retry-After: two attempts, both throttled
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude(daemon, max_retries=1).messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=20,
            messages=MESSAGES,
            extra_headers=fault("rate_limit; retry_after=1s"),
        )
    headers = limited.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert injected(daemon)["rate_limit"] == 2

    with pytest.raises(openai.RateLimitError) as openai_limited:
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("rate_limit")
        )
    assert openai_limited.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert openai_limited.value.code == "rate_limit_exceeded"


def test_timeouts_resets_and_broken_bodies(daemon: DaemonProcess) -> None:
    with pytest.raises(openai.APITimeoutError):
        oai(daemon, timeout=0.5).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("timeout; hold=30s")
        )
    with pytest.raises(openai.APIConnectionError):
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("connection_reset")
        )
    # what the SDK does with a 200 whose body is not JSON: the decoder's error
    with pytest.raises(json.JSONDecodeError):
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("malformed_response")
        )
    # a stream cut mid-way raises while the agent iterates it
    stream = oai(daemon).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=fault("truncated_stream; after_events=2"),
    )
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    # the daemon keeps serving
    reply = oai(daemon).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content


def test_slow_faults_and_rewrites_pass_with_the_fault_named(daemon: DaemonProcess) -> None:
    client = oai(daemon)
    slow = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("latency; delay=100ms")
    )
    assert slow.headers["x-agent-sre-chaos"] == "latency"
    assert slow.parse().choices[0].message.content

    plain = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    inflated = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("token_inflation; factor=10")
    )
    assert plain.usage is not None and inflated.usage is not None
    assert inflated.usage.completion_tokens == 10 * plain.usage.completion_tokens

    stream = claude(daemon).messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=20,
        messages=MESSAGES,
        stream=True,
        extra_headers=fault("slow_stream; delay=20ms"),
    )
    events = list(stream)
    assert events[-1].type == "message_stop"

    def output_tokens(events: list[Any]) -> int:
        return next(e.usage.output_tokens for e in events if e.type == "message_delta")

    inflated_stream = claude(daemon).messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=20,
        messages=MESSAGES,
        stream=True,
        extra_headers=fault("token_inflation; factor=10"),
    )
    assert output_tokens(list(inflated_stream)) == 10 * output_tokens(events)

    proxy = f"http://{daemon.addresses['proxy']}"
    status, headers, body = post_json(
        f"{proxy}/search/q", {"q": "x"}, fault("schema_drift; field=echo.q; rename_to=query")
    )
    assert status == 200 and headers["x-agent-sre-chaos"] == "schema_drift"
    assert body["echo"] == {"query": "x"}

    status, _, body = post_json(f"{proxy}/search/q", {"q": "x"}, fault("tool_error"))
    assert status == 500 and body["error"]["type"] == "tool_error"
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "lookup"}}
    status, _, body = post_json(f"{proxy}/mcp", call, fault("tool_error"))
    assert status == 200 and body["id"] == 7 and body["error"]["code"] == -32603


def test_a_bad_fault_header_is_refused_clearly(daemon: DaemonProcess) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("error; status=200")
        )
    assert "x-agent-sre-fault" in bad.value.message and "status" in bad.value.message
    with pytest.raises(openai.BadRequestError) as unknown:
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("meteor")
        )
    assert "type" in unknown.value.message
    reply = oai(daemon).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content


def test_the_faulted_calls_span_says_so(daemon: DaemonProcess, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.InternalServerError):
        oai(daemon).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("error; status=500")
        )
    plain = oai(daemon).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # inflated usage reaches the daemon's own accounting (the cost guard), not only the agent
    oai(daemon).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=fault("token_inflation; factor=4")
    )

    def all_three() -> bool:
        return len(upstream.spans()) >= 3

    assert upstream.wait_for(all_three)
    seen = [attrs(span.attributes) for _, span in upstream.spans()]
    faulted = {a["agent_sre.chaos.fault"]: a for a in seen if "agent_sre.chaos.fault" in a}
    assert set(faulted) == {"error", "token_inflation"}
    assert faulted["error"]["agent_sre.chaos.experiment"] == "header"
    assert faulted["error"]["error.type"] == "chaos_error"
    assert plain.usage is not None
    inflated = faulted["token_inflation"]
    assert inflated["gen_ai.usage.output_tokens"] == 4 * plain.usage.completion_tokens
    assert "error.type" not in inflated  # a fault that does not fail the call leaves no error
    untouched = [a for a in seen if "agent_sre.chaos.fault" not in a]
    assert len(untouched) == 1 and "error.type" not in untouched[0]
