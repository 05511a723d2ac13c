"""The A2A provider: what a JSON-RPC request plans as, what answers and stream events tell,
the caller's depth from headers and baggage, and agent cards rewritten to the proxy.
Adversarial: what a careless or hostile caller, callee or card would send."""

from __future__ import annotations

import json

import pytest

from agent_sre.config import ProxyRoute
from agent_sre.gateway.plan import ResponseFacts
from agent_sre.gateway.providers import a2a, facts_from_json, plan_call
from agent_sre.gateway.sse import StreamTap

ROUTE = ProxyRoute(name="researcher", prefix="/r", upstream="http://agent:9000", api="a2a")


def rpc(method: str, params: object = None, id_: object = 1) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
    ).encode()


@pytest.mark.parametrize(
    ("method", "stream"),
    [
        ("message/send", False),
        ("message/stream", True),
        ("SendMessage", False),
        ("SendStreamingMessage", True),
    ],
)
def test_a_message_is_a_hand_off(method: str, stream: bool) -> None:
    plan = plan_call(ROUTE, "POST", "/", rpc(method, {"message": {"taskId": "t1"}}, "x"))
    assert plan.delegation and plan.operation == "invoke_agent"
    assert plan.stream is stream
    assert (plan.callee, plan.rpc_method, plan.task_id, plan.mcp_request_id) == (
        "researcher",
        method,
        "t1",
        "x",
    )
    assert not plan.llm_call and not plan.priced and not plan.refusal


@pytest.mark.parametrize("method", ["tasks/get", "GetTask", "tasks/cancel", "CancelTask"])
def test_a_task_follow_up_is_no_hand_off(method: str) -> None:
    plan = plan_call(ROUTE, "POST", "/", rpc(method, {"id": "t9"}))
    assert not plan.delegation and plan.operation is None
    assert plan.task_id == "t9" and plan.rpc_method == method


def test_the_route_may_name_its_callee() -> None:
    route = ROUTE.model_copy(update={"callee": "agent-7"})
    assert plan_call(route, "POST", "/", rpc("SendMessage")).callee == "agent-7"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"message/send"}]', "batches"),
        (b'"message/send"', "string method"),
        (b'{"jsonrpc":"2.0","id":1}', "string method"),
        (b'{"jsonrpc":"2.0","id":1,"method":7}', "string method"),
        (b'{"method":"tasks/get","method":"message/send","id":1}', "names method twice"),
        (
            b'{"method":"message/send","params":{"message":{"taskId":"a","taskId":"b"}}}',
            "names taskId",
        ),
    ],
)
def test_what_cannot_be_read_as_one_request_is_refused(body: bytes, why: str) -> None:
    plan = plan_call(ROUTE, "POST", "/", body)
    assert why in plan.refusal


def test_deep_params_are_refused_and_huge_ones_read() -> None:
    deep = (
        b'{"jsonrpc":"2.0","id":1,"method":"message/send","params":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}"
    )
    assert "nest" in plan_call(ROUTE, "POST", "/", deep).refusal
    huge = rpc("message/send", {"message": {"parts": [{"text": "x" * 5_000_000}]}}, "h" * 10_000)
    plan = plan_call(ROUTE, "POST", "/", huge)
    assert plan.delegation and not plan.refusal


def test_answers_tell_the_task_and_failures() -> None:
    plan = plan_call(ROUTE, "POST", "/", rpc("SendMessage"))
    done = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"task": {"id": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}},
    }
    facts = facts_from_json(plan, json.dumps(done).encode())
    assert (facts.task_id, facts.task_state, facts.tool_error) == (
        "t1",
        "TASK_STATE_COMPLETED",
        None,
    )
    legacy = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"kind": "task", "id": "t2", "status": {"state": "failed"}},
    }
    facts = facts_from_json(plan, json.dumps(legacy).encode())
    assert facts.task_id == "t2" and facts.tool_error == "the delegated task ended failed"
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "Task not found"}}
    facts = facts_from_json(plan, json.dumps(error).encode())
    assert (facts.rpc_error_code, facts.tool_error) == (-32001, "Task not found")
    odd = {"jsonrpc": "2.0", "id": 1, "error": {"code": True, "message": ["x"] * 3}}
    facts = facts_from_json(plan, json.dumps(odd).encode())
    assert facts.rpc_error_code == 0 and facts.tool_error
    assert facts_from_json(plan, b'{"result": "not an object"}').tool_error is None
    assert facts_from_json(plan, b"[1,2]").tool_error is None


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_a_stream_is_read_event_by_event_and_passed_on_byte_for_byte() -> None:
    plan = plan_call(ROUTE, "POST", "/", rpc("SendStreamingMessage"))
    events = [
        _event(
            {"id": 1, "result": {"task": {"id": "t1", "status": {"state": "TASK_STATE_SUBMITTED"}}}}
        ),
        _event(
            {
                "id": 1,
                "result": {
                    "statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_WORKING"}}
                },
            }
        ),
        _event(
            {
                "id": 1,
                "result": {
                    "kind": "status-update",
                    "taskId": "t1",
                    "status": {"state": "completed"},
                    "final": True,
                },
            }
        ),
    ]
    stream = b"".join(events)
    tap = StreamTap(plan)
    # frames broken mid-event, even mid-UTF-8 and mid-line-end
    out = b"".join(tap.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + tap.finish()
    assert out == stream
    assert (tap.facts.task_id, tap.facts.task_state, tap.facts.tool_error) == (
        "t1",
        "completed",
        None,
    )


def test_a_stream_cut_mid_event_or_failing_is_told() -> None:
    plan = plan_call(ROUTE, "POST", "/", rpc("message/stream"))
    tap = StreamTap(plan)
    tap.feed(
        _event(
            {
                "id": 1,
                "result": {"kind": "status-update", "taskId": "t1", "status": {"state": "failed"}},
            }
        )
    )
    tap.feed(b'data: {"id": 1, "result": {"kind": "status-up')  # cut: never an event
    tap.finish()
    assert tap.facts.tool_error == "the delegated task ended failed"
    tap = StreamTap(plan)
    tap.feed(_event({"id": 1, "error": {"code": -32603, "message": "boom"}}))
    tap.finish()
    assert (tap.facts.rpc_error_code, tap.facts.tool_error) == (-32603, "boom")


@pytest.mark.parametrize(
    ("header", "bag", "expected"),
    [
        ([], [], 0),
        (["3"], [], 3),
        ([], [("agent.delegation.depth", "2;prop=1")], 2),
        (["1"], [("agent.delegation.depth", "5")], 1),  # the header wins
        (["2", "2"], [], 2),
    ],
)
def test_the_callers_depth(header: list[str], bag: list[tuple[str, str]], expected: int) -> None:
    assert a2a.caller_depth(header, bag) == expected


@pytest.mark.parametrize(
    "text",
    ["NaN", "-1", "1e309", "inf", "0x10", "1.0", " ", "", "١", "1001", "99999999999999999999"],
)
def test_a_depth_that_is_no_depth_is_refused(text: str) -> None:
    assert isinstance(a2a.caller_depth([text], []), str)
    assert isinstance(a2a.caller_depth([], [("agent.delegation.depth", text)]), str)


def test_depths_that_disagree_are_refused() -> None:
    assert "more than once" in str(a2a.caller_depth(["1", "4"], []))
    bag = [("agent.delegation.depth", "1"), ("agent.delegation.depth", "0")]
    assert "more than once" in str(a2a.caller_depth([], bag))


def test_the_cap_and_the_depth_onward() -> None:
    assert a2a.too_deep(3, 3, "x") == ""
    assert "depth 4" in a2a.too_deep(4, 3, "x")
    members = a2a.baggage_members(["agent.id=a, agent.delegation.depth=0", "k=v;p"])
    assert a2a.onward_baggage(members, 1) == "agent.id=a,k=v;p,agent.delegation.depth=1"


CARD = {
    "name": "r",
    "url": "http://agent:9000/",
    "supportedInterfaces": [
        {"url": "http://agent:9000/", "protocolBinding": "JSONRPC"},
        {"url": "http://elsewhere/", "protocolBinding": "JSONRPC"},
    ],
    "additionalInterfaces": [{"url": "http://agent:9000/rest", "transport": "HTTP+JSON"}],
}


def test_a_card_points_at_the_proxy() -> None:
    base = a2a.proxy_base("127.0.0.1:8790", "/r")
    assert base == "http://127.0.0.1:8790/r"
    card = json.loads(a2a.rewrite_card(json.dumps(CARD).encode(), "http://agent:9000", base))
    assert card["url"] == "http://127.0.0.1:8790/r/"
    assert [i["url"] for i in card["supportedInterfaces"]] == [
        "http://127.0.0.1:8790/r/",
        "http://elsewhere/",
    ]
    assert card["additionalInterfaces"][0]["url"] == "http://127.0.0.1:8790/r/rest"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({**CARD, "signatures": [{"protected": "x", "signature": "y"}]}).encode(),
        json.dumps({"name": "r", "url": "http://agent:90000/"}).encode(),  # not the upstream
        json.dumps({"url": "http://agent:9000.evil/"}).encode(),
        b"[" * 300 + b"]" * 300,
    ],
)
def test_a_card_the_proxy_should_not_touch_passes_byte_for_byte(body: bytes) -> None:
    assert a2a.rewrite_card(body, "http://agent:9000", "http://p/r") == body


@pytest.mark.parametrize("host", ["evil.com/x", "a b", "h\r\nx: y", "", "x@y"])
def test_a_host_that_is_no_host_leaves_the_card_alone(host: str) -> None:
    assert a2a.proxy_base(host, "/r") is None


def test_error_bodies_are_json_rpc_errors() -> None:
    body = a2a.PROVIDER.error_body("delegation_too_deep", "too deep")
    assert body == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32090, "message": "too deep", "data": {"type": "delegation_too_deep"}},
    }
    assert a2a.PROVIDER.error_body("upstream_timeout", "slow")["error"]["code"] == -32603  # type: ignore[index]
    assert ResponseFacts().task_id == ""
