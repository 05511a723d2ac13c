"""Received LLM spans naming models nobody has heard of: each never-seen model was looked up
in the prices' data on the event loop (0.1-1 ms each), so one request of thousands of such
spans held the loop for seconds, and every name stayed in memory. Lookups now have a budget
(``LOOKUPS_PER_SECOND`` after a burst of ``LOOKUP_BURST``): past it a span is forwarded
without a cost and counted as deferred; the memos are bounded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from agent_sre.cost.span_cost import LOOKUP_BURST
from tests.adversarial.admin import TOKEN, send, strict_json
from tests.adversarial.test_span_numbers_daemon import post_spans
from tests.support.metrics import scrape
from tests.support.spans import llm_request

if TYPE_CHECKING:
    from collections.abc import Callable

MADE_UP = 3000


def test_a_request_of_made_up_models_is_priced_within_the_lookup_budget(
    make_daemon: Callable[..., Any],
) -> None:
    daemon = make_daemon({}).start()
    assert post_spans(daemon, known_model_request()) == 200  # looked up, remembered
    made_up = [f"made-up-model-{index}-" + "m" * 100 for index in range(MADE_UP)]
    request = llm_request(made_up, trace_id=os.urandom(16))
    assert post_spans(daemon, request.SerializeToString()) == 200
    # the model the prices know, right after: still priced (remembered, no lookup needed)
    assert post_spans(daemon, known_model_request()) == 200

    metrics = scrape(daemon.url("metrics", "/metrics"))
    deferred = metrics[("agent_sre_spans_pricing_deferred_total", ())]
    unpriced = sum(
        value for (name, _), value in metrics.items() if name == "agent_sre_spans_unpriced_total"
    )
    assert unpriced <= LOOKUP_BURST
    assert deferred + unpriced == MADE_UP  # every made-up one accounted for, none at zero cost
    assert metrics[("agent_sre_receiver_accepted_spans_total", (("protocol", "http"),))] == (
        MADE_UP + 2
    )


def known_model_request() -> bytes:
    return llm_request(["gpt-4o-mini"], provider=None, trace_id=os.urandom(16)).SerializeToString()


def test_model_names_too_long_to_be_real_are_unpriced_without_a_lookup(
    make_daemon: Callable[..., Any],
) -> None:
    """A lookup's time grows with the name (a 200,000-character one held the event loop
    41-47 ms) and the memos keep the names: names past ``MAX_NAME_LENGTH`` are unpriced at
    once, so a flood of them neither spends the lookup budget nor stays in memory; a real
    model never seen before is still priced in the same request."""
    daemon = make_daemon({
        "admin": {"endpoint": "127.0.0.1:0", "token": TOKEN}, "replay": {"enabled": True},
    }).start()  # fmt: skip
    long_names = [f"{index}-" + "m" * 20_000 for index in range(LOOKUP_BURST * 2)]
    trace_id = os.urandom(16)
    request = llm_request([*long_names, "gpt-4.1-mini"], trace_id=trace_id)
    assert post_spans(daemon, request.SerializeToString()) == 200

    metrics = scrape(daemon.url("metrics", "/metrics"))
    unpriced = sum(
        value for (name, _), value in metrics.items() if name == "agent_sre_spans_unpriced_total"
    )
    assert unpriced == len(long_names)  # each counted, none deferred, none at zero cost
    assert metrics[("agent_sre_spans_pricing_deferred_total", ())] == 0
    status, body = send(daemon, "GET", f"/v1/traces/{trace_id.hex()}/spans")
    assert status == 200, body
    assert strict_json(body)["trace"]["cost_usd"] > 0  # gpt-4.1-mini priced: the budget intact
