"""Paging and searching of long admin lists (agents, budget subjects): ``?q=&limit=&offset=``.

``q`` keeps the rows whose key holds it (case-insensitive, at most :data:`MAX_QUERY` chars);
``limit`` is 1 to :data:`MAX_LIMIT`, ``offset`` 0 or more (both through the numbers gate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from agent_sre_daemon.admin.inputs import query_number
from agent_sre_daemon.errors import AdminInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

T = TypeVar("T")

MAX_LIMIT = 1000
MAX_QUERY = 256
MAX_OFFSET = 10**9
PAGING_KEYS = ("q", "limit", "offset")


def asks_for_page(query: Mapping[str, str]) -> bool:
    """Whether the request names any of ``q``, ``limit``, ``offset``."""
    return any(key in query for key in PAGING_KEYS)


def page(
    rows: Sequence[T], query: Mapping[str, str], key: Callable[[T], str], default_limit: int = 100
) -> tuple[list[T], dict[str, int]]:
    """The rows of the asked page and ``{"total", "offset", "limit"}`` (``total``: rows that
    match ``q``).

    Raises:
        AdminInputError: ``q`` too long, or ``limit``/``offset`` not a whole number in range.
    """
    text = query.get("q", "")
    if len(text) > MAX_QUERY:
        raise AdminInputError(f"q: longer than {MAX_QUERY} characters")
    limit = query_number(query, "limit", default_limit, minimum=1, maximum=MAX_LIMIT, integer=True)
    offset = query_number(query, "offset", 0, minimum=0, maximum=MAX_OFFSET, integer=True)
    needle = text.casefold()
    found = [row for row in rows if needle in key(row).casefold()] if needle else list(rows)
    return found[offset : offset + limit], {"total": len(found), "offset": offset, "limit": limit}
