"""The canonical form of a request, for matching a live call to a recorded one.

JSON bodies compare as their parsed values (key order and whitespace do not matter);
anything else compares byte for byte. Both sides are redacted first, since recorded bodies
are.
"""

from __future__ import annotations

import json
from typing import Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json

_MISSING = object()


RPC_ID_FREE_APIS = frozenset({"a2a"})
"""APIs whose JSON-RPC request ``id`` is left out of matching: the A2A SDKs draw a new UUID
per call, so a re-run never sends the recorded one (a replayed answer carries the recorded
id; the A2A SDK does not check it). MCP clients number their calls and match answers by id:
theirs is kept."""


def canonical_body(body: bytes, rpc_id: bool = True) -> str:
    """A stable text of ``body``: sorted compact JSON, else the bytes as text; without
    ``rpc_id``, a JSON-RPC request's top-level ``id`` left out."""
    value = _parse(body)
    if value is _MISSING:
        return body.decode("utf-8", "replace")
    if not rpc_id and isinstance(value, dict) and value.get("jsonrpc") == "2.0":
        value.pop("id", None)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(method: str, path: str, body: bytes, rpc_id: bool = True) -> str:
    """What must be equal for a live call to match a recorded one."""
    return f"{method.upper()} {path}\n{canonical_body(body, rpc_id)}"


def differences(recorded: bytes, live: bytes, limit: int = 5) -> list[str]:
    """Where two bodies differ, in JSON paths (``messages[0].content: 'a' -> 'b'``)."""
    a, b = _parse(recorded), _parse(live)
    if a is _MISSING or b is _MISSING:
        if recorded == live:
            return []
        return [f"body: {_short(recorded.decode('utf-8', 'replace'))} -> "
                f"{_short(live.decode('utf-8', 'replace'))}"]  # fmt: skip
    found: list[str] = []
    _walk(a, b, "", found, limit)
    return found


def distance(recorded: bytes, live: bytes) -> int:
    """How far apart two bodies are (for naming the nearest recorded request)."""
    return len(differences(recorded, live, limit=1000))


def _walk(a: Any, b: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            where = f"{path}.{key}" if path else str(key)
            if key not in a:
                found.append(f"{where}: added {_short(b[key])}")
            elif key not in b:
                found.append(f"{where}: removed (was {_short(a[key])})")
            else:
                _walk(a[key], b[key], where, found, limit)
            if len(found) >= limit:
                return
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            where = f"{path}[{i}]"
            if i >= len(a):
                found.append(f"{where}: added {_short(b[i])}")
            elif i >= len(b):
                found.append(f"{where}: removed (was {_short(a[i])})")
            else:
                _walk(a[i], b[i], where, found, limit)
            if len(found) >= limit:
                return
    elif a != b or type(a) is not type(b):
        found.append(f"{path or 'body'}: {_short(a)} -> {_short(b)}")


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= width else text[: width - 3] + "..."


def _parse(body: bytes) -> Any:
    if not body:
        return None
    try:
        return read_json(body, max_depth=PROXY_MAX_DEPTH)
    except ValueError:
        return _MISSING
