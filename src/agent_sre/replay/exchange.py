"""One captured call: its request and its answer (redacted), as stored and as in a cassette.

Bodies are text when they are UTF-8 and base64 otherwise; a streamed answer is its chunks,
each with its offset in seconds from the start of the call.
"""

from __future__ import annotations

import base64
import json
import json.encoder
from dataclasses import dataclass, field
from typing import Any

_quote = json.encoder.encode_basestring_ascii
"""The C escaping ``json.dumps`` uses for a string (ASCII: its length is its size)."""


@dataclass
class Exchange:
    """A captured call.

    Attributes:
        route: the proxy route's name; ``prefix`` its path prefix; ``api`` its shape.
        method, path, query: the request line (``path`` after the prefix).
        request: the request body (redacted, maybe cut at the size limit).
        status: the status answered; ``content_type`` the answer's media type.
        chunks: the answer as sent, ``(offset seconds, bytes)`` each; one chunk when whole.
        streamed: the answer was streamed (chunked) to the client.
        truncated: a body was cut at the size limit (such a call cannot be replayed).
        trace_id, span_id: hex ids of the proxy's span of the call.
        at: when the call started (epoch seconds).
    """

    route: str
    prefix: str
    api: str
    method: str
    path: str
    query: str = ""
    request: bytes = b""
    status: int = 0
    content_type: str = ""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    streamed: bool = False
    truncated: bool = False
    error: str = ""
    trace_id: str = ""
    span_id: str = ""
    at: float = 0.0

    @property
    def full_path(self) -> str:
        return self.prefix.rstrip("/") + self.path

    @property
    def body(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)

    def size(self) -> int:
        return len(self.request) + sum(len(chunk) for _, chunk in self.chunks)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "prefix": self.prefix,
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "request": _encode(self.request),
            "status": self.status,
            "content_type": self.content_type,
            "streamed": self.streamed,
            "chunks": [{"at": round(at, 6), "data": _encode(data)} for at, data in self.chunks],
            "truncated": self.truncated,
            "error": self.error,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "at": self.at,
        }

    # hot path: once per captured call, on the trace buffer's writer
    def to_json_text(self) -> str:
        """``json.dumps(self.to_json())``, the same text built without the general encoder
        (a fifth of its time: ``json.dumps`` makes an encoder and its closures per call, and
        formats floats in Python). A field of an unexpected type takes the general way."""
        q = _quote
        try:
            chunks = ", ".join(
                [
                    f'{{"at": {_float(round(at, 6))}, "data": {_body(data)}}}'
                    for at, data in self.chunks
                ]
            )
            if type(self.status) is not int:  # bool is an int json writes as true/false
                raise TypeError
            return (
                f'{{"route": {q(self.route)}, "prefix": {q(self.prefix)}, "api": {q(self.api)},'
                f' "method": {q(self.method)}, "path": {q(self.path)}, "query": {q(self.query)},'
                f' "request": {_body(self.request)}, "status": {int.__repr__(self.status)},'
                f' "content_type": {q(self.content_type)}, "streamed": {_bool(self.streamed)},'
                f' "chunks": [{chunks}], "truncated": {_bool(self.truncated)},'
                f' "error": {q(self.error)}, "trace_id": {q(self.trace_id)},'
                f' "span_id": {q(self.span_id)}, "at": {_float(self.at)}}}'
            )
        except TypeError:
            return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "exchange") -> Exchange:
        """Reads :meth:`to_json`'s shape.

        Raises:
            ValueError: a field is missing or of the wrong type (``where`` names the item).
        """
        try:
            return cls(
                route=str(data["route"]),
                prefix=str(data["prefix"]),
                api=str(data["api"]),
                method=str(data["method"]),
                path=str(data["path"]),
                query=str(data.get("query", "")),
                request=_decode(data.get("request", "")),
                status=int(data["status"]),
                content_type=str(data.get("content_type", "")),
                streamed=bool(data.get("streamed", False)),
                chunks=[(float(c["at"]), _decode(c["data"])) for c in data.get("chunks", [])],
                truncated=bool(data.get("truncated", False)),
                error=str(data.get("error", "")),
                trace_id=str(data.get("trace_id", "")),
                span_id=str(data.get("span_id", "")),
                at=float(data.get("at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad or missing field {exc}") from None


def _encode(data: bytes) -> str | dict[str, str]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _body(data: bytes) -> str:
    """:func:`_encode` as JSON text."""
    if type(data) is not bytes:
        raise TypeError
    try:
        return _quote(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f'{{"base64": "{base64.b64encode(data).decode("ascii")}"}}'


def _float(value: float) -> str:
    """A float as ``json.dumps`` writes it (NaN and the infinities as JavaScript names)."""
    if type(value) is not float:
        raise TypeError
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


_INF = float("inf")


def _bool(value: bool) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise TypeError


def _decode(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"])
    raise ValueError(f"body {value!r:.40} is neither text nor {{'base64': ...}}")
