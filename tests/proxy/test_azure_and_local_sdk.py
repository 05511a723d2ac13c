"""Azure OpenAI (the openai SDK's AzureOpenAI client) and OpenAI-compatible servers (vLLM,
Ollama, LM Studio) through the proxy."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price
from openai import AsyncAzureOpenAI, AsyncOpenAI, PermissionDeniedError

KEY = "azure-key-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def azure_price(model: str, input_tokens: int, output_tokens: int) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model, provider_id="azure").total_price)


@pytest.fixture
async def aproxy(make_proxy, provider):
    provider.azure_models = {"prod-4o": "gpt-4o-2024-08-06"}
    return await make_proxy(
        routes=[
            {
                "name": "azure",
                "prefix": "/azure",
                "upstream": provider.url,
                "api": "azure_openai",
                "deployments": {"prod-4o": "gpt-4o"},
            },
            {
                "name": "local",
                "prefix": "/local",
                "upstream": provider.url + "/v1",
                "api": "openai_compatible",
                "prices": {"priced-llama": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            },
        ]  # fmt: skip
    )


async def test_azure_deployment_priced_as_its_model(aproxy, provider) -> None:
    sdk = AsyncAzureOpenAI(
        azure_endpoint=aproxy.url + "/azure",
        api_key=KEY,
        api_version="2024-10-21",
        default_headers={"X-Agent-Id": "az"},
    )
    answer = await sdk.chat.completions.create(model="prod-4o", messages=MESSAGES, max_tokens=32)
    received = provider.requests[-1]
    assert received.path == "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    assert received.headers["api-key"] == KEY
    attrs = aproxy.span_attrs()
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert answer.usage is not None
    expected = azure_price("gpt-4o", answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert attrs["agent_sre.cost_usd"] == pytest.approx(expected)


async def test_azure_stream_and_v1_path(aproxy, provider) -> None:
    sdk = AsyncAzureOpenAI(azure_endpoint=aproxy.url + "/azure", api_key=KEY, api_version="v1")
    stream = await sdk.chat.completions.create(model="prod-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)  # the usage we asked for is taken out
    attrs = aproxy.span_attrs()
    assert attrs["agent_sre.cost.estimated"] is False and attrs["gen_ai.usage.output_tokens"] == 5
    v1 = AsyncOpenAI(base_url=aproxy.url + "/azure/openai/v1", api_key=KEY)
    await v1.chat.completions.create(model="prod-4o", messages=MESSAGES)
    assert provider.requests[-1].path == "/openai/v1/chat/completions"
    assert aproxy.span_attrs()["gen_ai.request.model"] == "gpt-4o"


async def test_azure_refusal_in_openai_shape(make_proxy, provider) -> None:
    proxy = await make_proxy(
        routes=[
            {"name": "azure", "prefix": "/azure", "upstream": provider.url, "api": "azure_openai"}
        ],  # fmt: skip
        budgets={"budgets": [{"name": "tiny", "scope": "global", "limit_usd": 0.000001}]},
    )
    sdk = AsyncAzureOpenAI(azure_endpoint=proxy.url + "/azure", api_key=KEY, api_version="v1")
    with pytest.raises(PermissionDeniedError) as info:
        await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100_000)
    assert info.value.code == "budget_exceeded"
    assert provider.calls == 0


async def test_local_server_costs_zero_unless_priced(aproxy, provider) -> None:
    sdk = AsyncOpenAI(base_url=aproxy.url + "/local", api_key="ollama")
    await sdk.chat.completions.create(model="llama3.2:3b", messages=MESSAGES)
    attrs = aproxy.span_attrs()
    assert attrs["gen_ai.provider.name"] == "openai_compatible"
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["agent_sre.cost_usd"] == 0.0
    assert "agent_sre.cost.unpriced" not in attrs
    answer = await sdk.chat.completions.create(model="priced-llama", messages=MESSAGES)
    assert answer.usage is not None
    expected = (answer.usage.prompt_tokens * 1.0 + answer.usage.completion_tokens * 2.0) / 1e6
    assert aproxy.span_attrs()["agent_sre.cost_usd"] == pytest.approx(expected)


async def test_local_server_is_never_unpriced_for_budgets(make_proxy, provider) -> None:
    proxy = await make_proxy(
        routes=[
            {
                "name": "local",
                "prefix": "/local",
                "upstream": provider.url + "/v1",
                "api": "openai_compatible",
            }
        ],  # fmt: skip
        budgets={"budgets": [{"name": "b", "scope": "agent", "limit_usd": 1.0}]},
    )
    sdk = AsyncOpenAI(base_url=proxy.url + "/local", api_key="x")
    answer = await sdk.chat.completions.create(model="qwen2.5:7b", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello word word word word"
    assert proxy.span_attrs()["agent_sre.budget.decision"] == "admitted"
