"""Agent keys: the key decides who makes the call (a blocked agent cannot send another id),
and the key never goes upstream; the provider key stays with the daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anthropic
import openai
import pytest

from agent_sre.config import Config
from agent_sre.gateway.agent_keys import key_digest, new_key

MESSAGES = [{"role": "user", "content": "hi"}]
A1_KEY = new_key(os.urandom)
A2_KEY = new_key(os.urandom)


def keyed(provider_url: str, required: bool = False) -> dict:
    return {
        "routes": [
            {
                "name": "keyed-openai",
                "prefix": "/keyed-openai",
                "upstream": provider_url,
                "api": "openai",
                "inject_api_key_env": "TEST_AGENT_KEYS_PROVIDER_KEY",
            },
            {
                "name": "keyed-anthropic",
                "prefix": "/keyed-anthropic",
                "upstream": provider_url,
                "api": "anthropic",
                "inject_api_key_env": "TEST_AGENT_KEYS_PROVIDER_KEY",
            },
        ],
    }


@pytest.fixture
async def keyed_proxy(make_proxy, provider, monkeypatch):
    monkeypatch.setenv("TEST_AGENT_KEYS_PROVIDER_KEY", "sk-daemon-held")

    async def start(required: bool = False):
        proxy = await make_proxy(**keyed(provider.url))
        new = proxy.server.config.model_copy(deep=True)
        data = new.model_dump(mode="json")
        data["proxy"]["agent_keys"] = {
            "required": required,
            "keys": [
                {"agent": "a1", "sha256": key_digest(A1_KEY)},
                {"agent": "a2", "sha256": key_digest(A2_KEY)},
            ],
        }
        prepared = await proxy.server.prepare_reload(Config.model_validate(data))
        await prepared.commit()  # keys arrive by reload, as an operator adds them
        return proxy

    return start


async def test_the_key_decides_the_identity_and_stays_home(keyed_proxy, provider) -> None:
    proxy = await keyed_proxy()
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/keyed-openai/v1",
        api_key=A1_KEY,
        default_headers={"X-Agent-Id": "someone-else"},
    )
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert proxy.span_attrs()["agent.id"] == "a1"
    sent = provider.requests[-1].headers
    assert sent["Authorization"] == "Bearer sk-daemon-held"
    assert A1_KEY not in json.dumps(dict(sent))
    assert A1_KEY not in str(proxy.span())


async def test_anthropic_sdk_key_in_x_api_key(keyed_proxy, provider) -> None:
    proxy = await keyed_proxy()
    client = anthropic.AsyncAnthropic(base_url=proxy.url + "/keyed-anthropic", api_key=A2_KEY)
    await client.messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=20, messages=MESSAGES
    )
    assert proxy.span_attrs()["agent.id"] == "a2"
    assert provider.requests[-1].headers["x-api-key"] == "sk-daemon-held"


async def test_a_blocked_agent_cannot_change_its_id(keyed_proxy, provider) -> None:
    proxy = await keyed_proxy()
    await proxy.server.gate.block("a1", "runaway")
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/keyed-openai/v1",
        api_key=A1_KEY,
        max_retries=0,
        default_headers={"X-Agent-Id": "fresh-new-agent"},
    )
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.body["type"] == "agent_blocked"
    assert provider.calls == 0


@pytest.mark.parametrize("required", [False, True])
async def test_an_unknown_agent_key_is_401(keyed_proxy, provider, required) -> None:
    proxy = await keyed_proxy(required)
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/keyed-openai/v1", api_key=new_key(os.urandom), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.body["type"] == "agent_key_invalid"
    assert provider.calls == 0


async def test_a_required_key_refuses_calls_without_one(keyed_proxy, provider) -> None:
    proxy = await keyed_proxy(required=True)
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/keyed-openai/v1",
        api_key="sk-provider-key",
        max_retries=0,
        default_headers={"X-Agent-Id": "a1"},
    )
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "requires an agent key" in info.value.body["message"]
    assert provider.calls == 0


async def test_without_keys_configured_nothing_changes(make_proxy, provider) -> None:
    proxy = await make_proxy()
    client = openai.AsyncOpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key=new_key(os.urandom),
        default_headers={"X-Agent-Id": "a9"},
    )
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert proxy.span_attrs()["agent.id"] == "a9"


def test_cli_issues_a_key_whose_digest_the_config_takes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "agent-key", "new", "a1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["key"].startswith("ask_")
    assert data["sha256"] == key_digest(data["key"])
    Config.model_validate(
        {"proxy": {"agent_keys": {"keys": [{"agent": "a1", "sha256": data["sha256"]}]}}}
    )
    with pytest.raises(ValueError, match="twice"):
        Config.model_validate(
            {
                "proxy": {
                    "agent_keys": {
                        "keys": [{"agent": a, "sha256": data["sha256"]} for a in ("a", "b")]
                    }
                }
            }
        )
