"""The one client of a running daemon's admin API, for every CLI command.

The address comes from ``--admin`` (global or per command), else ``$AGENT_SRE_ADMIN``, else
``127.0.0.1:8791``; the admin token from ``$AGENT_SRE_ADMIN_TOKEN``, sent with every request
when set (changes need it, and so do reads of captured bodies and replay sessions). Both
variables are read here and nowhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from agent_sre.units import parse_duration
from agent_sre_daemon.cli import output
from agent_sre_daemon.clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rich.console import RenderableType

ADMIN_ENV = "AGENT_SRE_ADMIN"
TOKEN_ENV = "AGENT_SRE_ADMIN_TOKEN"
DEFAULT_ADMIN = "127.0.0.1:8791"
TIMEOUT = 10.0


class AdminError(Exception):
    """The admin API could not be reached, or answered with an error (its message)."""


class _RefusedError(AdminError):
    """The admin API wants the token (401, 403)."""


def add_since_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--since AGO`` (seconds or a duration) for list commands of the admin API."""
    parser.add_argument(
        "--since",
        type=seconds_ago,
        metavar="AGO",
        help=f"only {what} from this long ago on: seconds (300) or a duration (5m, 1h30m)",
    )


def seconds_ago(text: str) -> float:
    """``300`` or ``5m`` -> 300.0; argparse reports anything else as bad usage (exit 2)."""
    value: object = text
    with contextlib.suppress(ValueError):  # not a number of seconds: a duration
        value = float(text)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def since_param(args: argparse.Namespace) -> str:
    """The API's ``since`` (unix seconds) for ``--since``; empty (left out) when not given."""
    return "" if args.since is None else f"{SYSTEM_CLOCK.time() - args.since:.3f}"


def add_admin_option(parser: argparse.ArgumentParser) -> None:
    """``--admin HOST:PORT`` on a command; given after the command it wins over the global
    one given before it."""
    parser.add_argument(
        "--admin",
        default=argparse.SUPPRESS,
        metavar="HOST:PORT",
        help=f"admin API address (default: ${ADMIN_ENV} or {DEFAULT_ADMIN})",
    )


class AdminClient:
    """JSON over HTTP to one daemon's admin API."""

    def __init__(self, address: str, token: str | None = None) -> None:
        self.address = address
        self.token = token
        base = address if "://" in address else f"http://{address}"
        self.base_url = base.rstrip("/")

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> AdminClient:
        """The client the command line (and the environment) points at."""
        env = os.environ if environ is None else environ
        address = getattr(args, "admin", None) or env.get(ADMIN_ENV) or DEFAULT_ADMIN
        return cls(address, env.get(TOKEN_ENV) or None)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GETs ``path`` (with ``query``, empty values left out) and decodes the JSON.

        Raises:
            AdminError: saying which address failed and why, or the API's own message.
        """
        params = {key: value for key, value in (query or {}).items() if value}
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return self._call(urllib.request.Request(url, headers=headers), path)
        except _RefusedError as exc:
            if self.token:
                raise AdminError(str(exc)) from None
            raise AdminError(f"{exc} (this read needs the admin token: set ${TOKEN_ENV})") from None

    def post(self, path: str, body: Any = None) -> Any:
        """POSTs ``body`` as JSON with the admin token (changes need it).

        Raises:
            AdminError: as :meth:`get`; without a token it says how to give one.
        """
        return self._change("POST", path, json.dumps(body if body is not None else {}).encode())

    def delete(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """DELETEs ``path`` (with ``query``, empty values left out) with the admin token and
        decodes the JSON answer.

        Raises:
            AdminError: as :meth:`post`.
        """
        return self._change("DELETE", path, None, query)

    def _change(
        self, method: str, path: str, data: bytes | None, query: Mapping[str, str] | None = None
    ) -> Any:
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}{path}"
        params = {key: value for key, value in (query or {}).items() if value}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self._call(request, path)
        except AdminError as exc:
            if self.token:
                raise AdminError(str(exc)) from None
            raise AdminError(f"{exc} (changes need the admin token: set ${TOKEN_ENV})") from None

    def _call(self, request: urllib.request.Request, path: str) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                message = json.load(exc)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}"
            if exc.code in (401, 403):
                raise _RefusedError(f"{path}: {message}") from None
            raise AdminError(f"{path}: {message}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise AdminError(f"cannot reach the admin API at {self.address}: {exc}") from None


def show_get(
    args: argparse.Namespace,
    render: Callable[[Any], RenderableType],
    path: str,
    query: Mapping[str, str] | None = None,
) -> int:
    """GETs ``path`` from the admin API the command names and prints it (``--json``, else
    ``render``); returns the exit code (an API failure printed as its message)."""
    try:
        data = AdminClient.from_args(args).get(path, query)
    except AdminError as exc:
        return output.fail(exc)
    return output.show(args, data, render)


def get_json(admin: str, path: str) -> Any:
    """GETs ``path`` from the admin API at ``admin`` (``host:port``); see :class:`AdminClient`."""
    return AdminClient(admin).get(path)
