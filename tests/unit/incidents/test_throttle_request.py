"""``POST /v1/throttles`` bodies: defaults, and every wrong field named in the refusal."""

from __future__ import annotations

from typing import Any

import pytest

from agent_sre.incidents.throttles import PutBy, ThrottleRequest, ThrottleRequestError


def test_a_request_takes_numbers_durations_and_defaults() -> None:
    assert ThrottleRequest.from_json({"agent_id": "a1"}) == ThrottleRequest("a1", 6.0, 600.0)
    assert ThrottleRequest.from_json(
        {"agent_id": "a1", "requests_per_minute": 0.5, "for": "1h30m", "by": " alice "}
    ) == ThrottleRequest("a1", 0.5, 5400.0, "alice")
    assert ThrottleRequest.from_json({"agent_id": "a1", "for": 90}).lasting == 90.0
    assert ThrottleRequest.from_json({"agent_id": "a1", "by": "x" * 500}).by == "x" * 100


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (None, "body", "must be a JSON object"),
        ([], "body", "must be a JSON object"),
        ({}, "agent_id", "required"),
        ({"agent_id": "  "}, "agent_id", "required"),
        ({"agent_id": 7}, "agent_id", "required"),
        ({"agent_id": "a" * 300}, "agent_id", "longer than 256"),
        ({"agent_id": "a", "requests_per_minute": 0}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "requests_per_minute": -1}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "requests_per_minute": True}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "requests_per_minute": "6"}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "requests_per_minute": float("inf")}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "requests_per_minute": float("nan")}, "requests_per_minute", "above 0"),
        ({"agent_id": "a", "for": "soon"}, "for", "not a duration"),
        ({"agent_id": "a", "for": 0}, "for", "longer than 0"),
        ({"agent_id": "a", "for": -5}, "for", "negative"),
        ({"agent_id": "a", "for": None}, "for", "must be a duration"),
        ({"agent_id": "a", "for": float("inf")}, "for", "not a duration"),
        ({"agent_id": "a", "by": 3}, "by", "must be a string"),
        ({"agent_id": "a", "rpm": 3}, "rpm", "unknown field"),
    ],
)
def test_a_wrong_field_is_named(body: Any, field: str, message: str) -> None:
    with pytest.raises(ThrottleRequestError) as refused:
        ThrottleRequest.from_json(body)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert message in str(refused.value)


def test_who_put_a_throttle_on_reads_well() -> None:
    assert PutBy(rule="slow", incident="inc-3").describe() == "rule slow (incident inc-3)"
    assert PutBy(rule="slow").describe() == "rule slow"
    assert PutBy(operator="alice").describe() == "operator alice"
    assert PutBy().describe() == "unknown"
