"""Replay sessions are found by route prefix with one lookup: the first session opened on a
prefix answers it (with or without trailing slashes), a session bound only by header answers
no route, and closing a session lets the next one on the same prefix answer."""

from __future__ import annotations

import pytest

from agent_sre.replay.redaction import Redactor
from agent_sre.replay.script import ReplayScript
from agent_sre_daemon.replay.sessions import ReplaySession, SessionTable


def session(prefix: str = "") -> ReplaySession:
    return ReplaySession(id="", trace_id="t", script=ReplayScript([], Redactor()), prefix=prefix)


def test_a_route_finds_the_first_session_opened_on_its_prefix() -> None:
    table = SessionTable(10)
    first = table.open(session("/openai"))
    second = table.open(session("/openai/"))  # another spelling of the same prefix
    header_only = table.open(session())
    assert table.bound("/openai", None) is first
    assert table.bound("/openai/", None) is first
    assert table.bound("/anthropic", None) is None
    assert table.bound("", None) is None  # a route with no prefix is nobody's
    assert table.bound("/anthropic", header_only.key) is header_only
    table.close(first.id)
    assert table.bound("/openai", None) is second
    table.close(second.id)
    assert table.bound("/openai", None) is None


def test_a_header_naming_no_session_is_refused_even_on_a_bound_prefix() -> None:
    table = SessionTable(10)
    table.open(session("/openai"))
    found = table.bound("/openai", "not-a-key")
    assert isinstance(found, str) and "no replay session" in found


def test_the_same_prefix_twice_is_refused() -> None:
    table = SessionTable(10)
    table.open(session("/openai"))
    with pytest.raises(ValueError, match="prefix"):
        table.open(session("/openai"))
