"""SigV4 re-signing of a route's calls (``api: bedrock``, ``aws_signing: proxy``).

An AWS SDK pointed at the proxy (``endpoint_url``) signs for the proxy's host, a signature
Bedrock would refuse. The proxy takes the client's signature out and signs the call it
actually sends (URL, body and headers after every stage) with the AWS credentials of its
own environment: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` when
set, otherwise botocore's own chain (profile, SSO, container or instance role), whose
refreshes run on a worker thread. botocore is needed only for such a route
(``pip install 'agent-sre[bedrock]'``).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from multidict import CIMultiDict

    from agent_sre.config import ProxyRoute

    Signer = Callable[[str, str, CIMultiDict[str], bytes], Awaitable[None]]

SIGNATURE_HEADERS = (
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-SHA256",
)
"""What a client's own signature consists of: taken out before the proxy signs."""
_REGION = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")
SERVICE = "bedrock"


class SigningError(ValueError):
    """A route the proxy cannot sign for (no botocore, no credentials, no region)."""


def region_of(route: ProxyRoute) -> str:
    """The route's ``aws_region``, else the one its upstream's host names."""
    if route.aws_region:
        return route.aws_region
    host = route.upstream.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    found = _REGION.match(host)
    if found is None:
        raise SigningError(
            f"route {route.name}: aws_region is not set and the upstream's host {host!r} "
            "names no region (bedrock-runtime.REGION.amazonaws.com)"
        )
    return found.group(1)


def aws_signer(route: ProxyRoute, environ: Mapping[str, str]) -> Signer:
    """A signer for ``route`` with the credentials of ``environ`` (or botocore's chain)."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials, RefreshableCredentials
        from botocore.session import Session
    except ImportError as exc:
        raise SigningError(
            f"route {route.name}: aws_signing: proxy needs botocore "
            "(pip install 'agent-sre[bedrock]'), or set aws_signing: client"
        ) from exc
    region = region_of(route)
    key_id = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    credentials: Any
    if key_id and secret:
        credentials = Credentials(key_id, secret, environ.get("AWS_SESSION_TOKEN") or None)
    else:
        credentials = Session().get_credentials()
    if credentials is None:
        raise SigningError(
            f"route {route.name}: aws_signing: proxy found no AWS credentials in the "
            "proxy's environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "
            "or a role), or set aws_signing: client"
        )
    refreshable = isinstance(credentials, RefreshableCredentials)

    def sign_now(method: str, url: str, headers: CIMultiDict[str], body: bytes) -> None:
        frozen = credentials.get_frozen_credentials()
        for name in SIGNATURE_HEADERS:
            headers.popall(name, None)
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(frozen, SERVICE, region).add_auth(request)
        for name in SIGNATURE_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value

    async def sign(method: str, url: str, headers: CIMultiDict[str], body: bytes) -> None:
        if refreshable:  # a refresh may ask a metadata service: not on the loop
            await asyncio.to_thread(sign_now, method, url, headers, body)
        else:
            sign_now(method, url, headers, body)

    return sign
