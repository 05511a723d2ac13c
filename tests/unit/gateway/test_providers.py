"""The one list of API shapes, and what each says of itself."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from agent_sre.config import Config, ProxyRoute
from agent_sre.cost.windows import first_bucket, position
from agent_sre.gateway.providers import PROVIDERS, ApiName, facts_from_json, plan_call


def test_config_accepts_exactly_the_declared_shapes() -> None:
    assert set(get_args(ApiName)) == set(PROVIDERS)
    assert all(provider.api == name for name, provider in PROVIDERS.items())
    for name in PROVIDERS:
        ProxyRoute(name="r", prefix="/r", upstream="http://x", api=name)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="openai"):
        Config.model_validate(
            {"proxy": {"routes": [{"name": "r", "prefix": "/r", "upstream": "u", "api": "soap"}]}}
        )


def test_error_bodies_in_each_shape() -> None:
    assert PROVIDERS["openai"].error_body("budget_exceeded", "m") == {
        "error": {
            "message": "m",
            "type": "budget_exceeded",
            "param": None,
            "code": "budget_exceeded",
        }
    }
    assert PROVIDERS["anthropic"].error_body("agent_blocked", "m") == {
        "type": "error",
        "error": {"type": "agent_blocked", "message": "m"},
    }
    for name in ("tool", "mcp", "passthrough"):
        assert PROVIDERS[name].error_body("k", "m") == {"error": {"type": "k", "message": "m"}}


def test_injected_keys_go_where_each_shape_reads_them() -> None:
    assert PROVIDERS["anthropic"].key_header("k") == ("x-api-key", "k")
    assert PROVIDERS["openai"].key_header("k") == ("Authorization", "Bearer k")


def test_plans_and_facts_by_shape() -> None:
    route = ProxyRoute(name="files", prefix="/m", upstream="http://x", api="mcp")
    call = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file"}}'
    plan = plan_call(route, "POST", "/", call)
    assert (plan.operation, plan.tool_name, plan.mcp_request_id) == ("execute_tool", "read_file", 7)
    assert plan_call(route, "POST", "/", b'{"method":"tools/list"}').operation is None
    facts = facts_from_json(plan, b'{"jsonrpc":"2.0","id":7,"error":{"message":"denied"}}')
    assert facts.tool_error == "denied"
    tool = ProxyRoute(name="s", prefix="/s", upstream="http://x", api="tool", tool="search")
    assert plan_call(tool, "GET", "/q", b"").tool_name == "search"
    raw = ProxyRoute(name="p", prefix="/p", upstream="http://x", api="passthrough")
    assert not plan_call(raw, "POST", "/v1/chat/completions", b'{"model":"m"}').priced
    assert facts_from_json(plan, b"not json").output_chars == 8


def test_a_window_starts_span_minus_one_buckets_back() -> None:
    where = position("1h", 3600.0 * 10 + 5)
    assert where.first == first_bucket(where.bucket, where.span) == where.bucket - 59
    assert position("day", 0.0).first == position("day", 0.0).bucket
