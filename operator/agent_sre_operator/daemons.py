"""The daemons the operator drives, found as pods, reached through their admin API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger("agent_sre_operator")

TIMEOUT = aiohttp.ClientTimeout(total=10)
ADMIN_PORT_NAME = "admin"


@dataclass(frozen=True)
class Daemon:
    """One daemon pod: its name and where its admin API listens."""

    pod: str
    address: str

    @property
    def base(self) -> str:
        return f"http://{self.address}"


def daemons_of(pods: dict[str, Any], selector: dict[str, str]) -> list[Daemon]:
    """The running daemon pods of a pod list: those carrying every ``selector`` label (the
    API server filters already; checked again here), with an IP and a container port
    named ``admin``."""
    found = []
    for pod in pods.get("items") or []:
        meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        ip = status.get("podIP")
        port = _admin_port(spec)
        if not ip or port is None:
            continue
        host = f"[{ip}]" if ":" in ip else ip
        found.append(Daemon(meta.get("name", ""), f"{host}:{port}"))
    return sorted(found, key=lambda d: d.pod)


def _admin_port(spec: dict[str, Any]) -> int | None:
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == ADMIN_PORT_NAME and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return None


@dataclass
class DaemonState:
    """What one pass learned of one daemon."""

    daemon: Daemon
    running: str | None = None
    """Digest of the configuration it runs (None: unreachable)."""
    on_disk: str | None = None
    error: str = ""
    restart_needed: str = ""
    answers: dict[str, Any] = field(default_factory=dict)
    """Path -> JSON answer (``/v1/slos``, ...), read once it runs the wanted configuration."""


class AdminClient:
    """Talks to every daemon's admin API with the admin token."""

    def __init__(self, token: str) -> None:
        headers = {"Accept": "application/json", "User-Agent": "agent-sre-operator"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.session = aiohttp.ClientSession(headers=headers, timeout=TIMEOUT)

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, daemon: Daemon, path: str) -> tuple[int, Any]:
        async with self.session.request(method, daemon.base + path) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            return response.status, body

    async def sync(
        self, daemons: list[Daemon], digest: str, reads: tuple[str, ...]
    ) -> list[DaemonState]:
        """Brings every daemon to the configuration ``digest`` (a reload once its file holds
        it) and reads ``reads`` from those that run it; all daemons at once."""
        return list(await asyncio.gather(*(self._sync(d, digest, reads) for d in daemons)))

    async def _sync(self, daemon: Daemon, digest: str, reads: tuple[str, ...]) -> DaemonState:
        state = DaemonState(daemon)
        try:
            await self._read_digests(state)
            if state.running != digest and state.on_disk == digest:
                status, body = await self.call("POST", daemon, "/v1/reload")
                if status != 200:
                    state.error = f"reload refused ({status}): {_message(body)}"
                else:
                    message = str((body or {}).get("message", ""))
                    if "restart" in message:
                        state.restart_needed = message
                    await self._read_digests(state)
            if state.running == digest:
                for path in reads:
                    status, body = await self.call("GET", daemon, path)
                    if status == 200:
                        state.answers[path] = body
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            state.error = f"unreachable: {exc or type(exc).__name__}"
        if state.error:
            log.warning("daemon %s (%s): %s", daemon.pod, daemon.address, state.error)
        return state

    async def _read_digests(self, state: DaemonState) -> None:
        status, body = await self.call("GET", state.daemon, "/v1/status")
        if status != 200 or not isinstance(body, dict):
            state.error = f"GET /v1/status answered {status}: {_message(body)}"
            return
        config = body.get("config")
        config = config if isinstance(config, dict) else {}
        state.running = config.get("sha256")
        state.on_disk = config.get("file_sha256")
        # what reloads since the daemon started changed that only a restart applies: said
        # on every pass until the pod restarts (older daemons: the reload's answer only)
        pending = config.get("restart_needed")
        if isinstance(pending, list) and pending:
            items = ", ".join(str(p)[:100] for p in pending[:20])
            state.restart_needed = f"{items} changed and take effect on restart"

    async def post_each(self, daemons: list[Daemon], path: str) -> list[str]:
        """POSTs ``path`` to every daemon; the problems (a 404 is none: nothing to stop)."""

        async def one(daemon: Daemon) -> str:
            try:
                status, body = await self.call("POST", daemon, path)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                return f"{daemon.pod}: unreachable: {exc or type(exc).__name__}"
            if status < 300 or status in (404, 409):
                return ""
            return f"{daemon.pod}: {status} {_message(body)}"

        return [p for p in await asyncio.gather(*(one(d) for d in daemons)) if p]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message", error))
        return str(body.get("message", body))[:300]
    return str(body)[:300]
