"""The route table: which configured route (and so which upstream and API shape) a request
path belongs to. Looked up before the chain: the route decides how the request is read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from agent_sre.gateway.providers import PROVIDERS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.providers.base import Provider
    from agent_sre_daemon.proxy.signing import Signer

log = logging.getLogger("agent_sre.proxy")


@dataclass(frozen=True)
class Route:
    """A configured route with what is derived from it once."""

    config: ProxyRoute
    provider: Provider
    prefix: str
    upstream: str
    injected_key: str | None
    timeout: aiohttp.ClientTimeout
    sign: Signer | None = None
    """Signs the call as it goes upstream (SigV4 for ``api: bedrock``), None for most."""

    @property
    def name(self) -> str:
        return self.config.name


def make_route(config: ProxyRoute, environ: Mapping[str, str]) -> Route:
    key = environ.get(config.inject_api_key_env) if config.inject_api_key_env else None
    if config.inject_api_key_env and not key:
        log.warning(
            "route %s: inject_api_key_env %s is not set; calls go out with the caller's key",
            config.name,
            config.inject_api_key_env,
        )
    sign = None
    provider = PROVIDERS[config.api]
    if provider.signing == "aws_sigv4" and config.aws_signing == "proxy" and not key:
        from agent_sre_daemon.proxy.signing import aws_signer

        sign = aws_signer(config, environ)
    return Route(
        config=config,
        sign=sign,
        provider=provider,
        prefix="/" + config.prefix.strip("/"),
        upstream=config.upstream.rstrip("/"),
        injected_key=key or None,
        timeout=aiohttp.ClientTimeout(
            total=config.deadline, sock_connect=10.0, sock_read=config.timeout
        ),
    )


class RouteTable:
    """Routes by prefix; the longest matching prefix wins, on whole path segments."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            if path == route.prefix or path.startswith(route.prefix + "/"):
                return route
        return None
