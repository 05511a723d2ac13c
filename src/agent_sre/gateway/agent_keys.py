"""Agent keys: per-agent keys the operator issues (``agent-sre agent-key new AGENT``), like a
gateway's virtual keys. The key decides who makes the call, whatever ``X-Agent-Id`` says; it
never goes upstream (the route's ``inject_api_key_env`` supplies the provider key, which stays
with the daemon). Only SHA-256 digests are configured, so the configuration holds no secret.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from agent_sre.config import AgentKeysConfig

KEY_PREFIX = "ask_"
"""Every agent key starts so: a credential with it is an agent key, never a provider's."""
KEY_HEADERS = ("authorization", "x-api-key")
"""Where SDKs send their key (OpenAI ``Authorization: Bearer``, Anthropic ``x-api-key``)."""


def new_key(random_bytes: Callable[[int], bytes]) -> str:
    """A fresh agent key (256 random bits)."""
    return KEY_PREFIX + base64.urlsafe_b64encode(random_bytes(32)).decode().rstrip("=")


def key_digest(key: str) -> str:
    """What the configuration holds of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyCheck:
    """The outcome for one request: the agent its key names (or None), the header that
    carried an agent key (taken out before forwarding), and why it is refused (or None)."""

    agent_id: str | None = None
    header: str | None = None
    refusal: str | None = None


class AgentKeys:
    """Agent keys in force (replaced whole on reload)."""

    def __init__(self, config: AgentKeysConfig) -> None:
        self.required = config.required
        self._agents = {entry.sha256: entry.agent for entry in config.keys}

    @property
    def enabled(self) -> bool:
        return self.required or bool(self._agents)

    def check(self, headers: Mapping[str, str]) -> KeyCheck:
        if not self.enabled:
            return KeyCheck()
        for header in KEY_HEADERS:
            value = headers.get(header, "").strip()
            if header == "authorization":
                scheme, _, value = value.partition(" ")
                if scheme.lower() != "bearer":
                    continue
                value = value.strip()
            if not value.startswith(KEY_PREFIX):
                continue
            agent = self._agents.get(key_digest(value))
            if agent is None:
                return KeyCheck(header=header, refusal="unknown or revoked agent key")
            return KeyCheck(agent_id=agent, header=header)
        if self.required:
            return KeyCheck(
                refusal="this proxy requires an agent key (Authorization: Bearer ask_... or "
                "x-api-key: ask_...); ask the operator for one"
            )
        return KeyCheck()
