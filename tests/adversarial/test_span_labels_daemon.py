"""Metric labels from span attributes: ``agent_sre.role`` (the daemon marks second views of an
LLM call with it, but any client can send it) became a label value of
``agent_sre_spans_second_view_total`` as it came, so a client sending a new value a span grew
the exposition without bound, and showed whatever it held (a key too). It goes through the
label gate as model names do: cut to a length, credentials redacted, and past a few values
counted as ``__overflow__``; nothing is lost from the counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_sre_daemon.metrics import MAX_LABEL_LENGTH, MAX_ROLE_LABELS, OVERFLOW_LABEL
from tests.adversarial.test_span_numbers_daemon import post_spans
from tests.support.metrics import scrape
from tests.support.spans import make_request

if TYPE_CHECKING:
    from collections.abc import Callable

ROLES = 200
SECOND_VIEW = "agent_sre_spans_second_view_total"
SECRET = "sk-proj-" + "A1b2C3d4" * 6


def test_a_client_making_up_roles_cannot_grow_the_exposition(
    make_daemon: Callable[..., Any],
) -> None:
    daemon = make_daemon({}).start()
    # a role holding a key, first (so it gets a label of its own): redacted at the gate
    request = make_request(1, service="role-maker")
    role = request.resource_spans[0].scope_spans[0].spans[0].attributes.add()
    role.key, role.value.string_value = "agent_sre.role", SECRET
    assert post_spans(daemon, request.SerializeToString()) == 200
    for batch in range(ROLES // 20):
        request = make_request(20, service="role-maker")
        for index, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
            role = span.attributes.add()
            role.key = "agent_sre.role"
            role.value.string_value = f"role-{batch * 20 + index}-" + "r" * 4096
        assert post_spans(daemon, request.SerializeToString()) == 200
    # the daemon's own roles are still told apart, and the daemon still answers
    request = make_request(2, service="proxy-like")
    for span, role_name in zip(
        request.resource_spans[0].scope_spans[0].spans, ("gateway", "duplicate"), strict=True
    ):
        role = span.attributes.add()
        role.key = "agent_sre.role"
        role.value.string_value = role_name
    assert post_spans(daemon, request.SerializeToString()) == 200

    metrics = scrape(daemon.url("metrics", "/metrics"))
    roles = {
        dict(labels)["role"]: value
        for (name, labels), value in metrics.items()
        if name == SECOND_VIEW
    }
    assert len(roles) <= MAX_ROLE_LABELS + 3  # and __overflow__, gateway, duplicate
    assert all(len(role) <= MAX_LABEL_LENGTH for role in roles)
    assert roles.get(OVERFLOW_LABEL, 0) > 0
    assert roles.get("gateway") == 1 and roles.get("duplicate") == 1
    assert sum(roles.values()) == ROLES + 3  # merged past the cap, never dropped
    assert not any("A1b2C3d4" in role for role in roles) and "[REDACTED]" in roles
