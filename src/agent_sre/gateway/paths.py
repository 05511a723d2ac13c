"""The one canonical form of a proxied request's path.

The proxy decides what a call is (which route, which operation, so whether it is priced)
and what it forwards from the same string, so no spelling of a path can look unpriced here
and be an LLM call upstream: each segment is percent-decoded once and re-encoded the one
way (``completion%73`` is forwarded as ``completions``); empty segments (doubled slashes)
are dropped, a trailing slash is kept. Dot segments (``.``, ``..``, ``%2e%2e``, ``..;x``)
are refused rather than resolved, so a call never leaves its route's upstream base; so are
segments that decode to a slash, a backslash or a control character, which upstreams
disagree about.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes, unquote_to_bytes

_SAFE = "!$&'()*+,;=:@-._~"
"""RFC 3986 ``pchar`` besides unreserved characters: kept as they are."""
_FORBIDDEN = frozenset(b"/\\\x7f") | frozenset(range(0x20))


class PathError(ValueError):
    """A path the proxy refuses to forward (the message says which segment and why)."""


def canonical_path(raw_path: str) -> str:
    """``raw_path`` (no query string) in canonical form; raises :class:`PathError`."""
    if not raw_path.startswith("/"):
        raise PathError("the path must start with '/'")
    segments = raw_path.split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if not segment:
            continue
        decoded = unquote_to_bytes(segment)
        if decoded.split(b";", 1)[0] in (b".", b".."):
            raise PathError(
                f"dot segment {segment!r} in the path: the proxy does not resolve '.' or "
                "'..' (a call never leaves its route's upstream base)"
            )
        if not _FORBIDDEN.isdisjoint(decoded):
            raise PathError(
                f"path segment {segment!r} decodes to a slash, backslash or control character"
            )
        out.append(quote_from_bytes(decoded, safe=_SAFE))
    path = "/" + "/".join(out)
    if out and raw_path.endswith("/"):
        path += "/"
    return path
