"""Cassettes: one run's trace and captured calls in one self-contained JSON file.

``agent-sre replay export TRACE --cassette FILE`` writes one; ``agent-sre replay serve
--cassette FILE`` answers from it with no daemon state. Bodies are stored redacted, as
captured.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, JsonBodyError, JsonTooDeepError, read_json
from agent_sre.numbers import NumberError, checked_tree
from agent_sre.replay.exchange import Exchange

FORMAT = "agent-sre-cassette"
VERSION = 1


class CassetteError(ValueError):
    """The file is not a cassette this version reads (the message says where and what)."""


@dataclass
class Cassette:
    trace_id: str
    exchanges: list[Exchange]
    trace: dict[str, Any] = field(default_factory=dict)
    """The trace in OTLP/JSON."""
    redaction: list[str] = field(default_factory=list)
    """The configured redaction patterns the bodies were redacted with (live requests are
    redacted the same way before they are matched)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "trace_id": self.trace_id,
            "exchanges": [e.to_json() for e in self.exchanges],
            "trace": self.trace,
            "redaction": self.redaction,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"


def loads(text: str | bytes, where: str = "cassette") -> Cassette:
    """Reads a cassette.

    Raises:
        CassetteError: not JSON, not a cassette, a newer version, or a bad exchange.
    """
    try:
        data = read_json(text, max_depth=PROXY_MAX_DEPTH, what=where)
    except JsonBodyError as exc:
        raise CassetteError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CassetteError(f'{where}: not an agent-sre cassette (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise CassetteError(
            f"{where}: cassette version {data.get('version')!r}; this agent-sre reads {VERSION}"
        )
    items = data.get("exchanges")
    if not isinstance(items, list):
        raise CassetteError(f"{where}: exchanges: expected a list")
    exchanges = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CassetteError(f"{where}: exchanges[{i}]: expected an object")
        try:
            checked_tree(item)  # times and statuses through the numbers gate
            exchange = Exchange.from_json(item, f"{where}: exchanges[{i}]")
        except NumberError as exc:
            raise CassetteError(f"{where}: exchanges[{i}]: {exc}") from None
        except ValueError as exc:
            raise CassetteError(str(exc)) from None
        if not 100 <= exchange.status <= 599:
            raise CassetteError(
                f"{where}: exchanges[{i}].status: {exchange.status} is no HTTP status"
            )
        for part, body in (("request", exchange.request), ("answer", exchange.body)):
            try:  # what the server will read of it: refused here, not when a call comes
                read_json(body, max_depth=PROXY_MAX_DEPTH, what=f"{where}: exchanges[{i}].{part}")
            except JsonTooDeepError as exc:
                raise CassetteError(str(exc)) from None
            except JsonBodyError:
                pass  # not JSON: compared as bytes
        exchanges.append(exchange)
    trace = data.get("trace")
    trace = trace if isinstance(trace, dict) else {}
    redaction = data.get("redaction", [])
    if not isinstance(redaction, list) or not all(isinstance(p, str) for p in redaction):
        raise CassetteError(f"{where}: redaction: expected a list of patterns")
    for i, pattern in enumerate(redaction):
        try:
            re.compile(pattern.encode())
        except (re.error, RecursionError, OverflowError) as exc:
            raise CassetteError(
                f"{where}: redaction[{i}]: {pattern!r} is not a pattern ({exc})"
            ) from None
    return Cassette(str(data.get("trace_id", "")), exchanges, trace, redaction)
