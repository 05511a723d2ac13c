"""The proxy inside the real daemon: the official openai SDK through agent-sre to a stand-in
provider; the call's span reaches upstream and the SLOs; a budget refuses the SDK's call."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
from genai_prices import Usage, calc_price

from tests.integration.conftest import forwarding
from tests.support.upstream import RecordingUpstream, attrs

ROOT = Path(__file__).parents[2]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_openai_sdk_through_the_daemon(
    make_daemon, upstream: RecordingUpstream, provider_url: str
) -> None:
    config = forwarding(upstream)
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        "routes": [
            {"name": "openai", "prefix": "/openai", "upstream": provider_url, "api": "openai"}
        ],
    }
    config["admin"] = {"endpoint": "127.0.0.1:0", "token": "tok"}
    config["slos"] = [
        {"name": "llm", "target": 0.99, "window": "30d", "sli": {"kind": "llm_success"}}
    ]
    config["budgets"] = {
        "budgets": [
            {
                "name": "a2-daily",
                "scope": "agent",
                "agents": ["a2"],
                "limit_usd": 0.000001,
                "window": "day",
            }
        ]
    }
    daemon = make_daemon(config).start()
    base_url = f"http://{daemon.addresses['proxy']}/openai/v1"

    client = openai.OpenAI(base_url=base_url, api_key="sk-test-planted-key", max_retries=2)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"X-Agent-Id": "a1", "X-Agent-Task-Id": "t1"},
    )
    assert reply.choices[0].message.content
    usage = reply.usage
    assert usage is not None

    # The call's span is forwarded upstream like any received span, priced.
    assert upstream.wait_for(lambda: len(upstream.spans()) == 1), daemon.log()
    resource, span = upstream.spans()[0]
    span_attrs = attrs(span.attributes)
    assert span_attrs["agent.span.kind"] == "LLM_INFERENCE"
    assert span_attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert span_attrs["agent.id"] == "a1"
    assert span_attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    expected = calc_price(
        Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert span_attrs["agent_sre.cost_usd"] == pytest.approx(float(expected))
    assert attrs(resource.attributes)["agent_sre.node"] == "test-node"
    assert "sk-test-planted-key" not in str(span) + str(resource)

    # ... and counted by the SLO engine.
    slo = get(daemon.url("admin", "/v1/slos/llm"))
    assert slo["overall"]["events_good"] == 1

    # A budget that cannot cover the call refuses it: the SDK raises at once, no retries.
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"X-Agent-Id": "a2"},
        )
    assert info.value.status_code not in (408, 409, 429) and info.value.status_code < 500
    body = info.value.body
    assert isinstance(body, dict)
    error = body.get("error", body)
    assert error["type"] == "budget_exceeded"
    budgets = get(daemon.url("admin", "/v1/budgets"))
    assert "a2-daily" in json.dumps(budgets)
    cli = [sys.executable, "-m", "agent_sre_daemon.cli"]
    table = subprocess.run(
        [*cli, "budgets", "--admin", daemon.addresses["admin"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "a2-daily" in table.stdout

    # The kill switch needs the admin token and refuses that agent's calls at once.
    request = urllib.request.Request(
        daemon.url("admin", "/v1/agents/a1/block"),
        method="POST",
        data=b"",
        headers={"Authorization": "Bearer tok"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["blocked"] is True
    with pytest.raises(openai.APIStatusError) as blocked:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-Id": "a1"},
        )
    blocked_body = blocked.value.body
    assert isinstance(blocked_body, dict)
    assert blocked_body.get("error", blocked_body)["type"] == "agent_blocked"
    agents = subprocess.run(
        [*cli, "agents", "--json", "--admin", daemon.addresses["admin"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert any(a["agent_id"] == "a1" and a["blocked"] for a in json.loads(agents.stdout)["agents"])

    # Reload: a raised limit and a new route apply at once, spend is kept.
    config = dict(daemon.config)
    config["budgets"] = {
        "budgets": [
            {
                "name": "a2-daily",
                "scope": "agent",
                "agents": ["a2"],
                "limit_usd": 5.0,
                "window": "day",
            }
        ]
    }
    config["proxy"] = {
        "endpoint": "127.0.0.1:0",
        "routes": [
            *config["proxy"]["routes"],
            {"name": "openai-2", "prefix": "/v2/openai", "upstream": provider_url, "api": "openai"},
        ],
    }
    daemon.write_config(config)
    reload = urllib.request.Request(
        daemon.url("admin", "/v1/reload"),
        method="POST",
        data=b"",
        headers={"Authorization": "Bearer tok"},
    )
    with urllib.request.urlopen(reload, timeout=10) as response:
        assert "restart" not in json.load(response)["message"]
    second = openai.OpenAI(
        base_url=f"http://{daemon.addresses['proxy']}/v2/openai/v1", api_key="sk-test-planted-key"
    )
    assert second.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Agent-Id": "a2"},
    ).choices
    # a1 stays blocked across the reload
    with pytest.raises(openai.PermissionDeniedError):
        second.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-Id": "a1"},
        )

    # The planted key reached no log line and no store.
    assert "sk-test-planted-key" not in daemon.log()
    for path in (daemon.workdir / "state").rglob("*"):
        if path.is_file():
            assert b"sk-test-planted-key" not in path.read_bytes(), path
