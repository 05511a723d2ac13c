"""The terminal stage: sends the call to its upstream and relays the answer.

JSON (and small bodies of known size) are relayed in one piece and read for usage; server-
sent events are written to the client chunk by chunk through the provider's stream tap;
anything else is streamed through as it arrives. Chunk taps other stages added
(``call.add_chunk_tap``) see every chunk on its way to the client.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from yarl import URL

from agent_sre.gateway.providers import facts_from_json
from agent_sre.gateway.sse import stream_tap
from agent_sre_daemon.errors import proxy_error
from agent_sre_daemon.proxy.stages.routing import response_headers

if TYPE_CHECKING:
    from multidict import CIMultiDict
    from prometheus_client import Counter

    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.proxy.call import Call
    from agent_sre_daemon.proxy.stage import StageSlot

log = logging.getLogger("agent_sre.proxy")

WHOLE_BODY_LIMIT = 1024 * 1024
"""Non-JSON responses up to this size (by Content-Length) are relayed in one piece; larger
or unsized ones are streamed through as they arrive."""
USAGE_READ_LIMIT = 16 * 1024 * 1024
"""The most of a JSON response the proxy holds and reads for usage, compressed or inflated
(a ~1 MiB gzip body can inflate to gigabytes). A larger one is streamed through untouched;
its usage is unknown, so a priced call settles at its reservation."""
TOO_LARGE = f"the response is beyond the {USAGE_READ_LIMIT}-byte limit usage is read within"


class UpstreamStage:
    name = "upstream"
    slot: StageSlot = "forward"

    def __init__(
        self, session: aiohttp.ClientSession, clock: Clock, oversized: Counter | None = None
    ) -> None:
        self._session = session
        self._clock = clock
        self._oversized = oversized
        """Counts events the tap passed on unread (by route)."""

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        clock = self._clock
        call.added = clock.monotonic() - call.started
        route = call.route
        if route.sign is not None:  # after every stage that may change the URL or body
            try:
                await route.sign(call.request.method, call.upstream_url, call.upstream_headers,
                                 call.plan.body)  # fmt: skip
            except Exception as exc:  # credentials that cannot be had: the call cannot go
                log.warning("route %s: signing failed (%s)", route.name, type(exc).__name__)
                return _failed(call, "upstream_unreachable", f"signing for {route.name} failed")
        try:
            upstream_cm = self._session.request(
                call.request.method,
                URL(call.upstream_url, encoded=True),
                headers=call.upstream_headers,
                data=call.plan.body or None,
                allow_redirects=False,
                timeout=route.timeout,
                auto_decompress=False,
            )
            async with upstream_cm as upstream:
                call.reached_upstream = True
                call.status = upstream.status
                content_type = upstream.content_type
                if (
                    content_type == "text/event-stream"
                    or content_type == route.provider.stream_type
                ):
                    return await self._stream(call, upstream, parse=True)
                if _is_json(content_type) or _small(upstream):
                    return await self._whole(call, upstream)
                return await self._stream(call, upstream, parse=False)
        except asyncio.TimeoutError:
            return _failed(call, "upstream_timeout", f"upstream {route.name} timed out")
        except aiohttp.ClientError as exc:
            return _failed(
                call,
                "upstream_unreachable",
                f"upstream {route.name} unreachable: {type(exc).__name__}",
            )

    async def on_response(self, call: Call) -> None:
        return None

    async def _whole(self, call: Call, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        length = upstream.content_length
        if length is not None and length > USAGE_READ_LIMIT:
            call.facts.usage_problem = TOO_LARGE
            return await self._stream(call, upstream, parse=False)
        body = await _read_at_most(upstream, USAGE_READ_LIMIT)
        if len(body) > USAGE_READ_LIMIT:  # unsized and larger: the rest streams after it
            call.facts.usage_problem = TOO_LARGE
            return await self._stream(call, upstream, parse=False, head=body)
        mark = self._clock.monotonic()
        if call.plan.operation is not None and _is_json(upstream.content_type):
            decoded = _decoded(body, upstream)
            if decoded is None:
                call.facts.usage_problem = TOO_LARGE
            else:
                call.facts = facts_from_json(call.plan, decoded)
        if call.taps:
            body = await call.tapped(body)
        response = web.Response(
            status=upstream.status,
            reason=upstream.reason,
            body=body,
            headers=_headers(call, upstream),
        )
        call.added += self._clock.monotonic() - mark
        return response

    async def _stream(
        self, call: Call, upstream: aiohttp.ClientResponse, parse: bool, head: bytes = b""
    ) -> web.StreamResponse:
        """Relays the body as it arrives (after ``head``, already read); ``parse`` taps
        server-sent events for usage."""
        clock = self._clock
        mark = clock.monotonic()
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=_headers(call, upstream),
        )
        tap = stream_tap(call.plan, upstream.content_type) if parse else None
        if tap is not None:
            call.facts = tap.facts
        await response.prepare(call.request)
        call.streamed = True
        call.added += clock.monotonic() - mark
        try:
            if head:
                await response.write(await call.tapped(head) if call.taps else head)
            # hot path: per chunk of a streamed call
            async for chunk in upstream.content.iter_any():
                out = tap.feed(chunk) if tap is not None else chunk
                if out and call.taps:
                    out = await call.tapped(out)
                if out:
                    if call.ttft is None:
                        call.ttft = clock.monotonic() - call.started
                    await response.write(out)
            rest = tap.finish() if tap is not None else b""
            if rest and call.taps:
                rest = await call.tapped(rest)
            if rest:
                await response.write(rest)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            if tap is not None:
                tap.finish()
            call.fail("client_disconnected", f"client went away mid-stream ({type(exc).__name__})")
            log.info("route %s: client left a stream early", call.route.name)
        except (aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            if tap is not None:
                tap.finish()
            call.fail("upstream_stream_error", type(exc).__name__)
            # Cut the client's connection too: ending the chunked body cleanly would make a
            # truncated stream look complete.
            if call.request.transport is not None:
                call.request.transport.abort()
        finally:
            if tap is not None and tap.oversized and self._oversized is not None:
                self._oversized.labels(call.route.name).inc(tap.oversized)
        return response


def _headers(call: Call, upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    headers = response_headers(upstream.headers)
    if call.response_headers:
        headers.update(call.response_headers)
    return headers


def _failed(call: Call, kind: str, message: str) -> web.StreamResponse:
    call.fail(kind, message)
    if call.streamed:  # headers already sent: all we can do is cut the stream
        raise ConnectionResetError(message)
    return proxy_error(call.route.config.api, kind, message)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _small(upstream: aiohttp.ClientResponse) -> bool:
    length = upstream.content_length
    return length is not None and length <= WHOLE_BODY_LIMIT


async def _read_at_most(upstream: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first ``limit`` bytes and more (then the rest is still unread)."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await upstream.content.read(limit + 1 - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _decoded(body: bytes, upstream: aiohttp.ClientResponse) -> bytes | None:
    """The body inflated within :data:`USAGE_READ_LIMIT` (None beyond it; ``b""`` when it
    cannot be inflated: usage unknown). The client gets ``body`` as it came either way."""
    encoding = upstream.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        return b""
    inflater = zlib.decompressobj(47)  # gzip or zlib header, detected
    try:
        out = inflater.decompress(body, USAGE_READ_LIMIT + 1)
    except zlib.error:
        return b""
    if len(out) > USAGE_READ_LIMIT or inflater.unconsumed_tail:
        return None
    return out
