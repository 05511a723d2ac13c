"""Which admin reads are private: those that hand out captured prompts and answers (a whole
trace, a cassette, a diff of two runs) or the header values of replay sessions.

A component marks such a handler with :func:`private_read`; the admin server's one
middleware then asks for the admin token on that read whatever the client's address, where
other reads stay open to loopback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aiohttp import web

F = TypeVar("F")

_MARK = "agent_sre_private_read"
_PUBLIC = "agent_sre_public_page"


def private_read(handler: F) -> F:
    """Marks an admin route's handler: reading it needs the admin token, loopback or not."""
    setattr(handler, _MARK, True)
    return handler


def is_private(request: web.Request) -> bool:
    """Whether the route ``request`` matched was marked with :func:`private_read`."""
    return bool(getattr(request.match_info.route.handler, _MARK, False))


def public_page(handler: F) -> F:
    """Marks a route of the status page's own files (HTML, CSS, JavaScript: no data of the
    node): read by any client, so a browser without the token gets the login form. Only GET
    and HEAD; the data the page shows is read from the API under its rules."""
    setattr(handler, _PUBLIC, True)
    return handler


def is_public(request: web.Request) -> bool:
    """Whether the route ``request`` matched was marked with :func:`public_page`."""
    return bool(getattr(request.match_info.route.handler, _PUBLIC, False))
