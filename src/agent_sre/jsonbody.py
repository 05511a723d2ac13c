"""The one reader of JSON that comes from outside: admin bodies, proxied requests and answers,
OTLP/JSON, cassettes.

:func:`read_json` bounds the size and the depth of what it reads and never lets a deep
document escape as a ``RecursionError`` (which is no ``ValueError`` and so used to become a
500): a document nested deeper than allowed is a :class:`JsonBodyError` like any other bad
body. With ``numbers=True`` (admin bodies, cassettes) every number also passes the numbers
gate (:mod:`agent_sre.numbers`), the ``NaN``/``Infinity`` literals Python's parser accepts
included, and the message names where it is (``analysis.checks[0].threshold: ...``). Every
value it returns can be walked by recursive code up to ``max_depth`` levels.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent_sre.numbers import NumberError, checked_number

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_DEPTH = 64
"""Default nesting limit: deeper than any admin body, cassette field or OTLP/JSON span."""
PROXY_MAX_DEPTH = 200
"""Nesting limit of proxied request and answer bodies (JSON schemas of tools nest deep)."""

_SCALARS = (str, int, float, bool, type(None))


class JsonBodyError(ValueError):
    """A body refused by the JSON reader; the message says why (and where, for a number)."""


class JsonTooDeepError(JsonBodyError):
    """A document nested deeper than the reader allows."""


def read_json(
    data: bytes | str,
    *,
    max_bytes: int | None = None,
    max_depth: int | None = MAX_DEPTH,
    numbers: bool = False,
    what: str = "body",
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """``data`` decoded as JSON.

    Args:
        data: the document (UTF-8, -16 or -32 when bytes).
        max_bytes: refuse a longer document (None: no limit here; the listener has one).
        max_depth: refuse a document nested deeper (arrays and objects); None: only what
            the parser itself cannot take (no walk: for a caller that re-reads nothing
            recursively, such as the proxy's planning after :func:`too_deep` ran).
        numbers: check every number with the numbers gate and refuse ``NaN``/``Infinity``.
        what: how messages name the document (``body``, ``cassette x.json``).
        object_pairs_hook: as :func:`json.loads` has it (its ValueError is a refusal too).

    Raises:
        JsonBodyError: not JSON, too long, too deep, or (``numbers``) a number refused.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise JsonBodyError(f"{what}: longer than {max_bytes} bytes")
    try:
        # NaN and Infinity read as floats: the walk names where they are
        value = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        limit = max_depth if max_depth is not None else "the parser's"
        raise JsonTooDeepError(f"{what}: nested deeper than {limit} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise JsonBodyError(f"{what}: not JSON ({_cut(str(exc))})") from None
    if type(value) in _SCALARS:
        if numbers:
            _check(value, what, ())
        return value
    if numbers:
        _walk(value, max_depth, what)
    elif max_depth is not None:
        raw = data.encode() if isinstance(data, str) else data
        if raw.count(b"[") + raw.count(b"{") > max_depth:  # else it cannot be that deep
            _check_depth(value, max_depth, what)
    return value


def _check_depth(value: Any, max_depth: int, what: str) -> None:
    """Refuses ``value`` nested deeper than ``max_depth``: one level at a time, without
    recursion (a comprehension per level: about half the cost of the parse)."""
    level = [value]
    depth = 1
    while level:
        if depth > max_depth:
            raise JsonTooDeepError(f"{what}: nested deeper than {max_depth} levels")
        level = [
            item
            for node in level
            for item in (node.values() if type(node) is dict else node)
            if type(item) is dict or type(item) is list
        ]
        depth += 1


def _walk(value: Any, max_depth: int | None, what: str) -> None:
    """Checks depth and numbers without recursion, naming where a number is refused."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if max_depth is not None and depth > max_depth:
            raise JsonTooDeepError(f"{what}: nested deeper than {max_depth} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (*path, key)))
            elif isinstance(item, (int, float)):
                _check(item, what, (*path, key))


def _check(value: Any, what: str, path: tuple[str | int, ...]) -> None:
    try:
        checked_number(value)
    except NumberError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        raise JsonBodyError(f"{where or what}: {exc}") from None


def _cut(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
