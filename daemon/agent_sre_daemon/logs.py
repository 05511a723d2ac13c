"""The daemon's logging: one format, and no secret in any line, ours or a library's.

Two layers. Malformed HTTP requests make aiohttp log a traceback whose message quotes the
offending line of the request (a request line with its query string, or a header line with
its value, ``Authorization`` included): :class:`MalformedRequestFilter` turns those records
into one line naming the error only. Then :class:`RedactingFormatter` scrubs every formatted
line of credential-shaped text (header values of credential headers, bearer tokens, provider
key prefixes) and of query strings, whatever logger wrote it.
"""

from __future__ import annotations

import logging
import re
import sys

from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "[redacted]"
_CREDENTIAL_HEADERS = (
    r"authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key|cookie|set-cookie"
)
_PATTERNS = (
    # "Authorization: Bearer abc", "x-api-key=abc", "'cookie': 'a=b'"
    (
        re.compile(
            rf"(?i)\b({_CREDENTIAL_HEADERS})(['\"]?\s*[:=]\s*['\"]?)"
            r"(?:bearer\s+|basic\s+)?[^\s'\",}]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(sk|sk-ant|sk-proj|rk|pk)-[A-Za-z0-9_-]{6,}"), rf"\1-{REDACTED}"),
    # a query string after a path or URL
    (re.compile(r"((?:https?://[^\s/?'\"]+)?/[^\s?'\"]*)\?[^\s'\"]+"), rf"\1?{REDACTED}"),
)


def redact(text: str) -> str:
    """``text`` with credential-shaped values and query strings replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then redacts the whole line (message, arguments and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class MalformedRequestFilter(logging.Filter):
    """Replaces aiohttp's traceback for a request it could not parse (which quotes the bad
    line) with one line: who sent it and what kind of error it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            said = record.getMessage()
            record.msg = "%s: malformed HTTP request refused (%s, status %s)"
            record.args = (said, type(exc).__name__, exc.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def configure_logging(level: str) -> None:
    """Sends every log line to stderr in one format, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MalformedRequestFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
