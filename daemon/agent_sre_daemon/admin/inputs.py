"""The admin API's gates: one reader of request bodies and one of query parameters.

Every handler reads its body with :func:`json_body` (JSON only, at most
:data:`MAX_BODY_BYTES`, nested at most :data:`~agent_sre.jsonbody.MAX_DEPTH` deep, every number
through the numbers gate) and its numeric query parameters with :func:`query_number`; both
raise :class:`~agent_sre_daemon.errors.AdminInputError`, which the admin server answers with
a 400 naming the field. ``tests/adversarial`` checks that no handler reads a body another way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from aiohttp import web

from agent_sre.jsonbody import JsonBodyError, read_json
from agent_sre.numbers import NumberError, number_from_text
from agent_sre_daemon.errors import AdminInputError

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_BODY_BYTES = 256 * 1024
"""The longest admin body (a rollout spec is a few hundred bytes)."""

_MISSING: Any = object()


async def json_body(request: web.Request, *, required: bool = True) -> Any:
    """The request's body as JSON (None when it has none and ``required`` is false).

    Raises:
        AdminInputError: no body when one is required, too long, not JSON, too deep, or a
            number the numbers gate refuses.
    """
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise AdminInputError(f"body: longer than {MAX_BODY_BYTES} bytes", status=413)
    try:
        data = await request.read() if request.can_read_body else b""
    except web.HTTPRequestEntityTooLarge:
        raise AdminInputError(f"body: longer than {MAX_BODY_BYTES} bytes", status=413) from None
    except web.HTTPException as exc:
        raise AdminInputError(f"body: {exc.reason}", status=exc.status) from None
    if len(data) > MAX_BODY_BYTES:
        raise AdminInputError(f"body: longer than {MAX_BODY_BYTES} bytes", status=413)
    if not data.strip():
        if required:
            raise AdminInputError("body: required (a JSON object)")
        return None
    try:
        return read_json(data, numbers=True)
    except JsonBodyError as exc:
        raise AdminInputError(str(exc)) from None


@overload
def query_number(
    query: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: float,
    maximum: float,
    integer: bool = True,
) -> int: ...
@overload
def query_number(
    query: Mapping[str, str],
    name: str,
    default: float | None,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float | None: ...
def query_number(
    query: Mapping[str, str],
    name: str,
    default: Any,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> Any:
    """The query parameter ``name`` as a number from ``minimum`` to ``maximum`` (``default``
    when absent or empty).

    Raises:
        AdminInputError: not a (whole) number, refused by the numbers gate, or out of range.
    """
    text = query.get(name, "")
    if not text:
        return default
    try:
        value = number_from_text(text, integer=integer)
    except NumberError as exc:
        raise AdminInputError(f"{name}: {exc}") from None
    if not minimum <= value <= maximum:
        raise AdminInputError(f"{name}: {value:g} is out of range ({minimum:g} to {maximum:g})")
    return int(value) if integer else value
