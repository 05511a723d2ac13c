"""One exposition of ``/metrics``, with the families that are costly to compute rendered off
the event loop.

A collector whose families take long to compute (the SLO families: a report per instance)
registers a renderer with :func:`render_off_loop`: an async function that copies what it
needs on the loop (cheap) and computes and encodes its families in a worker thread. During
:func:`exposition` such collectors yield nothing from ``collect()`` (:data:`OFF_LOOP` is set)
and their text is appended after the registry's: the names, labels and values are those
``collect()`` would give; only the families' place in the text moves to the end.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING

from prometheus_client import generate_latest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prometheus_client import CollectorRegistry

OFF_LOOP: ContextVar[bool] = ContextVar("agent_sre_scrape_off_loop", default=False)
"""True while :func:`exposition` collects the registry: collectors with a renderer yield
nothing then (their families come from the renderer)."""

_RENDERERS: weakref.WeakKeyDictionary[CollectorRegistry, list[Callable[[], Awaitable[bytes]]]]
_RENDERERS = weakref.WeakKeyDictionary()


def render_off_loop(registry: CollectorRegistry, render: Callable[[], Awaitable[bytes]]) -> None:
    """Registers ``render`` (the exposition text of a collector's families, computed off the
    loop) for every :func:`exposition` of ``registry``."""
    _RENDERERS.setdefault(registry, []).append(render)


async def exposition(registry: CollectorRegistry) -> bytes:
    """The text format of ``registry``: its collectors on the loop, except those with a
    renderer, whose text is awaited first and appended."""
    rendered = [await render() for render in list(_RENDERERS.get(registry, ()))]
    token = OFF_LOOP.set(True)
    try:
        body = generate_latest(registry)
    finally:
        OFF_LOOP.reset(token)
    return body + b"".join(rendered)
