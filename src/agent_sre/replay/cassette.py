"""Cassettes: one run's trace and captured calls in one self-contained JSON file.

``agent-sre replay export TRACE --cassette FILE`` writes one; ``agent-sre replay serve
--cassette FILE`` answers from it with no daemon state. Bodies are stored redacted, as
captured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
        data = json.loads(text)
    except ValueError as exc:
        raise CassetteError(f"{where}: not JSON ({exc})") from None
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
            exchanges.append(Exchange.from_json(item, f"{where}: exchanges[{i}]"))
        except ValueError as exc:
            raise CassetteError(str(exc)) from None
    trace = data.get("trace")
    trace = trace if isinstance(trace, dict) else {}
    redaction = data.get("redaction", [])
    if not isinstance(redaction, list) or not all(isinstance(p, str) for p in redaction):
        raise CassetteError(f"{where}: redaction: expected a list of patterns")
    return Cassette(str(data.get("trace_id", "")), exchanges, trace, redaction)
