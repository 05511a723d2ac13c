"""The status page: HTML, CSS and JavaScript served by the admin listener at ``/``.

The files ship in the package (``static/``, package data; no build step, nothing fetched
from outside the node) and are read once, when the admin server builds its routes; a request
names a file from that fixed set, never a path. The page holds no data of the node: it reads
the ``/v1/*`` admin API from the browser under the API's own rules (loopback open, otherwise
the admin token, which the page keeps in ``sessionStorage`` and sends as
``Authorization: Bearer``). So the page's own routes are open to any client
(:func:`~agent_sre_daemon.admin.access.public_page`): a login form must reach a browser that
has no token yet.

Every answer carries a Content-Security-Policy without ``unsafe-inline`` (scripts and styles
only from the page's own files, no frames, no form posts, connections only to the admin
listener), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff`` and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from agent_sre_daemon.admin.access import public_page

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "Cross-Origin-Resource-Policy": "same-origin",
}
FILES = {
    "app.js": "application/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "charts.js": "application/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The assets under ``/ui/``, by name, with their content type."""
INDEX = "index.html"


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static").joinpath(name).read_bytes()


def page_routes() -> list[web.RouteDef]:
    """``GET /`` (the page) and ``GET /ui/{name}`` (its assets); anything else under ``/ui/``
    is a 404."""
    index = _read(INDEX)
    assets = {name: (_read(name), kind) for name, kind in FILES.items()}

    @public_page
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=index, content_type="text/html", charset="utf-8",
                            headers=HEADERS)  # fmt: skip

    @public_page
    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="not found\n", headers=HEADERS)
        body, kind = found
        return web.Response(body=body, headers={**HEADERS, "Content-Type": kind})

    return [web.get("/", page), web.get("/ui/{name}", asset)]
