"""boto3's bedrock-runtime client (endpoint_url at the proxy) through the proxy: Converse
and ConverseStream priced from their usage (the event stream read in flight), the call
re-signed with the proxy's own credentials, errors as AWS codes."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from genai_prices import Usage, calc_price

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]
PROXY_KEY = ("AKIDPROXY0000000000", "proxy-secret-0123456789")
CLIENT_KEY = ("AKIDCLIENT000000000", "client-secret-9876543210")


def price(input_tokens: int, output_tokens: int) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, MODEL, provider_id="aws").total_price)


def bedrock(url: str, **headers: str) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=CLIENT_KEY[0],
        aws_secret_access_key=CLIENT_KEY[1],
        config=BotoConfig(retries={"max_attempts": 1}),
    )
    if headers:

        def add(request: Any, **_: Any) -> None:
            for name, value in headers.items():
                request.headers[name] = value

        client.meta.events.register_first("before-sign.bedrock-runtime.*", add)
    return client


def route(provider_url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "bedrock", "prefix": "/bedrock", "upstream": provider_url,
            "api": "bedrock", "aws_region": "us-east-1", **extra}  # fmt: skip


@pytest.fixture
async def bproxy(make_proxy, provider, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", PROXY_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PROXY_KEY[1])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    provider.aws_credentials = PROXY_KEY
    return await make_proxy(routes=[route(provider.url)])


async def test_converse_resigned_and_priced(bproxy, provider) -> None:
    client = bedrock(bproxy.url + "/bedrock", **{"X-Agent-Id": "aws-agent"})
    answer = await asyncio.to_thread(
        client.converse, modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 64}
    )
    assert answer["output"]["message"]["content"][0]["text"] == "Hello word word word word"
    assert provider.signatures == [True]  # signed again, with the proxy's credentials
    received = provider.requests[-1]
    assert PROXY_KEY[0] in received.headers["Authorization"]
    assert CLIENT_KEY[0] not in received.headers["Authorization"]
    attrs = bproxy.span_attrs()
    assert attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["agent.id"] == "aws-agent"
    assert attrs["gen_ai.request.max_tokens"] == 64
    usage = answer["usage"]
    assert attrs["gen_ai.usage.input_tokens"] == usage["inputTokens"]
    assert attrs["agent_sre.cost_usd"] == pytest.approx(price(usage["inputTokens"], 5))


async def test_converse_stream_read_in_flight(bproxy, provider) -> None:
    client = bedrock(bproxy.url + "/bedrock")

    def run() -> tuple[str, dict[str, Any]]:
        answer = client.converse_stream(modelId=MODEL, messages=MESSAGES)
        text, usage = "", {}
        for event in answer["stream"]:
            if "contentBlockDelta" in event:
                text += event["contentBlockDelta"]["delta"]["text"]
            if "metadata" in event:
                usage = event["metadata"]["usage"]
        return text, usage

    text, usage = await asyncio.to_thread(run)
    assert text == "Hello word word word word"
    assert provider.signatures == [True]
    attrs = bproxy.span_attrs()
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == usage["outputTokens"] == 5
    assert attrs["agent_sre.cost.estimated"] is False
    assert attrs["agent_sre.cost_usd"] == pytest.approx(price(usage["inputTokens"], 5))


async def test_errors_reach_boto3_as_aws_codes(bproxy, provider) -> None:
    provider.status = 429
    client = bedrock(bproxy.url + "/bedrock")
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.converse, modelId=MODEL, messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"


async def test_refusal_reads_as_an_aws_error(make_proxy, provider, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", PROXY_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PROXY_KEY[1])
    proxy = await make_proxy(
        routes=[route(provider.url)],
        budgets={"budgets": [{"name": "tiny", "scope": "global", "limit_usd": 0.000001}]},
    )
    client = bedrock(proxy.url + "/bedrock")
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(
            client.converse, modelId=MODEL, messages=MESSAGES,
            inferenceConfig={"maxTokens": 100_000},
        )  # fmt: skip
    assert info.value.response["Error"]["Code"] == "budget_exceeded"
    assert provider.calls == 0


async def test_client_signing_forwards_the_clients_signature(
    make_proxy, provider, monkeypatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    provider.aws_credentials = CLIENT_KEY
    proxy = await make_proxy(routes=[route(provider.url, aws_signing="client")])
    client = bedrock(proxy.url + "/bedrock")
    await asyncio.to_thread(client.converse, modelId=MODEL, messages=MESSAGES)
    # made for the proxy's host and path: it does not hold upstream (what the docs say)
    assert provider.signatures == [False]
    assert CLIENT_KEY[0] in provider.requests[-1].headers["Authorization"]


async def test_signing_that_fails_refuses_the_call_and_leaks_nothing(
    make_proxy, provider, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", PROXY_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PROXY_KEY[1])
    proxy = await make_proxy(
        routes=[route(provider.url)],
        budgets={"budgets": [{"name": "b", "scope": "agent", "limit_usd": 10}]},
    )

    async def expired(*_: Any) -> None:
        raise RuntimeError("the role's session expired")

    (bedrock_route,) = [r for r in proxy.server._routes.routes if r.name == "bedrock"]
    object.__setattr__(bedrock_route, "sign", expired)
    client = bedrock(proxy.url + "/bedrock", **{"X-Agent-Id": "a"})
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.converse, modelId=MODEL, messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == "upstream_unreachable"
    assert provider.calls == 0
    budgets = await proxy.server.gate.budgets(proxy.server.clock.time())
    subjects = budgets[0]["subjects"]
    assert all(subject["spent_usd"] == 0 for subject in subjects)  # the reservation went back


def test_a_route_that_cannot_be_signed_for_says_why(monkeypatch, tmp_path) -> None:
    from agent_sre.config import ProxyRoute
    from agent_sre_daemon.proxy.signing import SigningError, aws_signer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    regional = ProxyRoute(name="b", prefix="/b", api="bedrock",
                          upstream="https://bedrock-runtime.eu-west-3.amazonaws.com")  # fmt: skip
    with pytest.raises(SigningError, match="no AWS credentials"):
        aws_signer(regional, {})
    nowhere = ProxyRoute(name="b", prefix="/b", api="bedrock", upstream="http://gateway:8080")
    with pytest.raises(SigningError, match="aws_region is not set"):
        aws_signer(nowhere, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert aws_signer(regional, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
