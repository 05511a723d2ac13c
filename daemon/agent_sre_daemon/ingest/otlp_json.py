"""OTLP/JSON decoding: the protobuf JSON mapping, except that trace and span ids are hex.

The OTLP specification encodes ``traceId``/``spanId``/``parentSpanId`` as hex strings, where
protobuf's JSON mapping expects base64; ids are rewritten in place before parsing.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from agent_sre.jsonbody import PROXY_MAX_DEPTH, JsonBodyError, read_json
from agent_sre_daemon.errors import InvalidArgumentError

M = TypeVar("M", bound=Message)

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
# Where ids occur, per signal: the path of lists from the request down to the id holders.
_ID_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ExportTraceServiceRequest": (
        ("resourceSpans", "scopeSpans", "spans"),
        ("resourceSpans", "scopeSpans", "spans", "links"),
    ),
    "ExportLogsServiceRequest": (("resourceLogs", "scopeLogs", "logRecords"),),
    "ExportMetricsServiceRequest": (),  # exemplars: handled by _fix_exemplars
}


def parse_otlp_json(body: bytes, message_type: type[M]) -> M:
    """Parses an OTLP/JSON body into ``message_type``.

    Raises:
        InvalidArgumentError: naming the position or field that is wrong.
    """
    try:
        data = read_json(body, max_depth=PROXY_MAX_DEPTH)
    except JsonBodyError as exc:
        raise InvalidArgumentError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError("body must be a JSON object (an OTLP Export*ServiceRequest)")
    name = message_type.DESCRIPTOR.name
    for path in _ID_PATHS.get(name, ()):
        _fix_ids(data, path, name)
    if name == "ExportMetricsServiceRequest":
        _fix_exemplars(data)
    try:
        return json_format.ParseDict(data, message_type(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InvalidArgumentError(f"body is not a valid {name}: {exc}") from None


def _fix_ids(node: Any, path: tuple[str, ...], where: str) -> None:
    if not path:
        if isinstance(node, dict):
            for key in _ID_KEYS:
                value = node.get(key)
                if isinstance(value, str):
                    node[key] = _hex_to_base64(value, f"{where}.{key}")
        return
    items = node.get(path[0]) if isinstance(node, dict) else None
    if isinstance(items, list):
        for index, item in enumerate(items):
            _fix_ids(item, path[1:], f"{where}.{path[0]}[{index}]")


def _fix_exemplars(data: dict[str, Any]) -> None:
    for resource in data.get("resourceMetrics") or []:
        for scope in (resource or {}).get("scopeMetrics") or []:
            for metric in (scope or {}).get("metrics") or []:
                for kind in ("gauge", "sum", "histogram", "exponentialHistogram"):
                    for point in ((metric or {}).get(kind) or {}).get("dataPoints") or []:
                        for exemplar in (point or {}).get("exemplars") or []:
                            _fix_ids(exemplar, (), "exemplar")


def _hex_to_base64(value: str, where: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidArgumentError(f"{where}: {value!r} is not a hex-encoded id") from None
    return base64.b64encode(raw).decode("ascii")


def to_otlp_json(message: Message) -> bytes:
    """Encodes a response (no ids in them) in the OTLP/JSON mapping."""
    return json_format.MessageToJson(message, indent=None).encode()
