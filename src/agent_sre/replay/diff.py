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
from collections import Counter
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


MAX_ALIGNED = 1_000_000
"""Past this many pairs of siblings (after the common head and tail), two lists of spans are
paired in order instead of aligned (the alignment is quadratic)."""


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
    # an explicit stack, not recursion: a trace may be a parent chain thousands deep. Each
    # step's tasks go on in reverse, so changes come out in depth-first order, parents first.
    stack: list[_Task] = [_Align(a, b, "")]
    while stack:
        task = stack.pop()
        if isinstance(task, Change):
            diff.out.append(task)
        elif isinstance(task, _Align):
            stack.extend(reversed(_align(task.a, task.b, task.path)))
        else:
            stack.extend(reversed(_compare(task.a, task.b, task.path, diff)))
    return diff.out


@dataclass(frozen=True)
class _Align:
    a: list[SpanRow]
    b: list[SpanRow]
    path: str


@dataclass(frozen=True)
class _Compare:
    a: SpanRow
    b: SpanRow
    path: str


_Task = Change | _Align | _Compare


def _key(row: SpanRow) -> tuple[str, str]:
    return (row.kind, row.name)


def _align(a: list[SpanRow], b: list[SpanRow], path: str) -> list[_Task]:
    """The tasks of aligning two lists of siblings: changes, and pairs to compare."""
    out: list[_Task] = []
    paths_a, paths_b = _paths(path, a), _paths(path, b)
    for op, i1, i2, j1, j2 in _opcodes([_key(r) for r in a], [_key(r) for r in b]):
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=False):
                out.append(_Compare(a[i], b[j], paths_a[i]))
            continue
        # a replaced run of spans: pair them up where kinds agree, the rest added/removed
        pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(pairs):
            row_a, row_b = a[i1 + k], b[j1 + k]
            if row_a.kind == row_b.kind:
                out.append(Change(paths_a[i1 + k], "name", row_a.name, row_b.name))
                out.append(_Compare(row_a, row_b, paths_a[i1 + k]))
            else:
                out.append(Change(paths_a[i1 + k], "removed", row_a.name, None))
                out.append(Change(paths_b[j1 + k], "added", None, row_b.name))
        for i in range(i1 + pairs, i2):
            out.append(Change(paths_a[i], "removed", a[i].name, None))
        for j in range(j1 + pairs, j2):
            out.append(Change(paths_b[j], "added", None, b[j].name))
    return out


def _opcodes(
    a: list[tuple[str, str]], b: list[tuple[str, str]]
) -> list[tuple[str, int, int, int, int]]:
    """``SequenceMatcher``'s opcodes, with the common head and tail matched first: two runs
    of one agent mostly agree, and the matcher is quadratic on long lists of few names."""
    shorter = min(len(a), len(b))
    head = 0
    while head < shorter and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shorter - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    out: list[tuple[str, int, int, int, int]] = []
    if head:
        out.append(("equal", 0, head, 0, head))
    middle_a, middle_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if len(middle_a) * len(middle_b) > MAX_ALIGNED:  # pair them in order: bounded work
        out.append(("replace", head, len(a) - tail, head, len(b) - tail))
    elif middle_a or middle_b:
        matcher = difflib.SequenceMatcher(None, middle_a, middle_b, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            out.append((op, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        out.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return out


def _paths(parent: str, siblings: list[SpanRow]) -> list[str]:
    """Each sibling's path: ``kind:name``, with its index among siblings of the same kind
    and name when there are several (one pass, however many siblings)."""
    counts = Counter(_key(row) for row in siblings)
    seen: Counter[tuple[str, str]] = Counter()
    out = []
    for row in siblings:
        key = _key(row)
        label = f"{row.kind or 'span'}:{row.name}"
        if counts[key] > 1:
            label += f"[{seen[key]}]"
            seen[key] += 1
        out.append(f"{parent}/{label}" if parent else label)
    return out


def _compare(a: SpanRow, b: SpanRow, path: str, diff: _Diff) -> list[_Task]:
    """The changes of one matched pair, then the alignment of their children."""
    out: list[_Task] = []
    tolerance = diff.tolerance
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
    out.append(_Align(a.children, b.children, path))
    return out
