"""Reading a running daemon's admin API, for the CLI commands."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminError(Exception):
    """The admin API could not be reached, or answered with an error (its message)."""


def get_json(admin: str, path: str) -> Any:
    """GETs ``path`` from the admin API at ``admin`` (``host:port``) and decodes the JSON.

    Raises:
        AdminError: saying which address failed and why, or the API's own error message.
    """
    try:
        with urllib.request.urlopen(f"http://{admin}{path}", timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise AdminError(f"{path}: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AdminError(f"cannot reach the admin API at {admin}: {exc}") from None
