"""The few Kubernetes API calls the operator makes besides kopf's watches.

The connection (server, CA, token or client certificate) is the one kopf logged in with, so
the operator has one identity. Answers of 200 and 201 are both taken for a create.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    import kopf

MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = aiohttp.ClientTimeout(total=15)


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    ca_path: str | None = None
    ca_data: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    insecure: bool = False

    @classmethod
    def from_kopf(cls, info: kopf.ConnectionInfo) -> Connection:
        if info.certificate_data or info.private_key_data:
            raise ValueError(
                "client certificates given inline are not supported; give their files "
                "(client-certificate, client-key) in the kubeconfig"
            )
        return cls(
            server=info.server.rstrip("/"),
            token=info.token,
            ca_path=str(info.ca_path) if info.ca_path else None,
            ca_data=info.ca_data.decode("ascii")
            if isinstance(info.ca_data, bytes)
            else info.ca_data,
            certificate_path=str(info.certificate_path) if info.certificate_path else None,
            private_key_path=str(info.private_key_path) if info.private_key_path else None,
            insecure=bool(info.insecure),
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(
                cafile=self.ca_path,
                cadata=self.ca_data,
            )
        if self.certificate_path:
            context.load_cert_chain(self.certificate_path, self.private_key_path)
        return context


class Kube:
    """An open session to the API server."""

    def __init__(self, connection: Connection, identity: str = "") -> None:
        self.connection = connection
        # the replica in the User-Agent: the API server's audit log says which one wrote
        agent = f"agent-sre-operator/{identity}" if identity else "agent-sre-operator"
        headers = {"Accept": "application/json", "User-Agent": agent}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self.session = aiohttp.ClientSession(
            headers=headers,
            timeout=TIMEOUT,
            connector=aiohttp.TCPConnector(ssl=connection.ssl_context()),
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        url = self.connection.server + path
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.text()
            if response.status >= 400:
                try:
                    message = json.loads(text).get("message", text)
                except (ValueError, AttributeError):
                    message = text
                raise KubeError(response.status, str(message)[:500])
            return json.loads(text) if text else None

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def get_or_none(self, path: str) -> Any:
        try:
            return await self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, body, MERGE_PATCH)


def configmap_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return base if name is None else f"{base}/{name}"


def pods_path(namespace: str, selector: str) -> str:
    from urllib.parse import quote

    return f"/api/v1/namespaces/{namespace}/pods?labelSelector={quote(selector)}"


def custom_path(group_version: str, namespace: str, plural: str, name: str) -> str:
    return f"/apis/{group_version}/namespaces/{namespace}/{plural}/{name}"
