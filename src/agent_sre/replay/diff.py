"""The difference of two runs: their span trees aligned by kind, name and order.

Children of matched spans are aligned as sequences of ``(kind, name)`` (a longest common
subsequence, as ``diff`` aligns lines); each matched pair is compared on what a person asks
about a run — model, tool arguments, tokens, cost, errors, outcome, and latency when it
changed by more than ``latency_tolerance`` (a run never takes exactly as long twice). When
both spans of a pair are the proxy's spans of captured calls, the calls' bodies are compared
too (:mod:`agent_sre.replay.bodies`): the request's prompt, the answer's text and the tool
calls the model asked for.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.replay.bodies import compare_calls
from agent_sre.tracing import conventions as conv

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.replay.exchange import Exchange
    from agent_sre.replay.traces import SpanRow

COMPARED: tuple[tuple[str, str], ...] = (
    ("model", conv.GEN_AI_REQUEST_MODEL),
    ("response model", conv.GEN_AI_RESPONSE_MODEL),
    ("tool", conv.GEN_AI_TOOL_NAME),
    ("tool arguments", "gen_ai.tool.call.arguments"),
    ("input tokens", conv.GEN_AI_USAGE_INPUT_TOKENS),
    ("output tokens", conv.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cost", conv.AGENT_SRE_COST_USD),
    ("outcome", conv.AGENT_TASK_SUCCESS),
    ("fault", conv.AGENT_SRE_CHAOS_FAULT),
    ("status", "http.response.status_code"),
)


@dataclass(frozen=True)
class Change:
    """One difference: ``what`` changed at ``path`` (``a`` in the first run, ``b`` in the
    second; ``added``/``removed`` spans have one side empty). A change of a captured call's
    bodies (``request``, ``answer``, ``tool calls``) says ``where`` they first differ (a
    JSON path in the body, a character) and shows ``a`` and ``b`` cut around it."""

    path: str
    what: str
    a: Any = None
    b: Any = None
    where: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "what": self.what, "where": self.where, "a": self.a,
                "b": self.b}  # fmt: skip

    def __str__(self) -> str:
        if self.what in ("added", "removed"):
            return f"{self.path}: span {self.what}"
        where = f" ({self.where})" if self.where else ""
        return f"{self.path}: {self.what}{where} {self.a!r} -> {self.b!r}"


@dataclass
class _Diff:
    tolerance: float
    calls_a: dict[str, Exchange]
    calls_b: dict[str, Exchange]
    out: list[Change]


def diff_traces(
    a: list[SpanRow],
    b: list[SpanRow],
    latency_tolerance: float = 0.5,
    calls_a: Iterable[Exchange] = (),
    calls_b: Iterable[Exchange] = (),
) -> list[Change]:
    """What changed from run ``a`` to run ``b`` (empty when they agree).

    Args:
        a, b: the runs' span trees.
        latency_tolerance: the share by which a span's duration may change unreported.
        calls_a, calls_b: the runs' captured calls; a call belongs to the span whose id is
            its ``span_id`` (the proxy's span of the call).
    """
    diff = _Diff(
        latency_tolerance,
        {e.span_id: e for e in calls_a if e.span_id},
        {e.span_id: e for e in calls_b if e.span_id},
        [],
    )
    _align(a, b, "", diff)
    return diff.out


def _key(row: SpanRow) -> tuple[str, str]:
    return (row.kind, row.name)


def _align(a: list[SpanRow], b: list[SpanRow], path: str, diff: _Diff) -> None:
    out = diff.out
    matcher = difflib.SequenceMatcher(None, [_key(r) for r in a], [_key(r) for r in b],
                                      autojunk=False)  # fmt: skip
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for row_a, row_b in zip(a[i1:i2], b[j1:j2], strict=False):
                _compare(row_a, row_b, _path(path, row_a, a), diff)
            continue
        # a replaced run of spans: pair them up where kinds agree, the rest added/removed
        pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(pairs):
            row_a, row_b = a[i1 + k], b[j1 + k]
            if row_a.kind == row_b.kind:
                where = _path(path, row_a, a)
                out.append(Change(where, "name", row_a.name, row_b.name))
                _compare(row_a, row_b, where, diff)
            else:
                out.append(Change(_path(path, row_a, a), "removed", row_a.name, None))
                out.append(Change(_path(path, row_b, b), "added", None, row_b.name))
        for row in a[i1 + pairs : i2]:
            out.append(Change(_path(path, row, a), "removed", row.name, None))
        for row in b[j1 + pairs : j2]:
            out.append(Change(_path(path, row, b), "added", None, row.name))


def _path(parent: str, row: SpanRow, siblings: list[SpanRow]) -> str:
    same = [s for s in siblings if _key(s) == _key(row)]
    label = f"{row.kind or 'span'}:{row.name}"
    if len(same) > 1:
        label += f"[{same.index(row)}]"
    return f"{parent}/{label}" if parent else label


def _compare(a: SpanRow, b: SpanRow, path: str, diff: _Diff) -> None:
    out, tolerance = diff.out, diff.tolerance
    for what, key in COMPARED:
        va, vb = a.attributes.get(key), b.attributes.get(key)
        if va != vb:
            out.append(Change(path, what, va, vb))
    if a.error != b.error:
        out.append(Change(path, "error", a.error or None, b.error or None))
    da, db = a.duration, b.duration
    if max(da, db) > 0 and abs(da - db) > tolerance * max(da, db, 1e-3):
        out.append(Change(path, "latency", round(da, 6), round(db, 6)))
    call_a, call_b = diff.calls_a.get(a.span_id), diff.calls_b.get(b.span_id)
    if call_a is not None and call_b is not None:
        for body in compare_calls(call_a, call_b):
            out.append(Change(path, body.what, body.a, body.b, body.where))
    _align(a.children, b.children, path, diff)
