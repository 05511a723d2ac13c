"""A replay script: the recorded calls of one run, answered in recorded order.

A live call matches the first not yet used recorded call with the same method, path and
canonical body; when none does, :meth:`ReplayScript.answer` returns a
:class:`Mismatch` naming the nearest recorded request and how it differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sre.replay.canonical import RPC_ID_FREE_APIS, differences, distance, request_key

if TYPE_CHECKING:
    from agent_sre.replay.exchange import Exchange
    from agent_sre.replay.redaction import Redactor


@dataclass(frozen=True)
class Mismatch:
    """No recorded call matches: ``message`` says which is nearest and how it differs."""

    message: str
    nearest: Exchange | None


class ReplayScript:
    """Recorded calls consumed as they are matched.

    Args:
        exchanges: the recorded calls in order (truncated ones are never matched).
        redactor: applied to live request bodies before comparing (recorded ones are).
    """

    def __init__(self, exchanges: list[Exchange], redactor: Redactor) -> None:
        self.exchanges = sorted(exchanges, key=lambda e: e.at)
        self.redactor = redactor
        self.used = [False] * len(self.exchanges)
        self._id_free = [e.api in RPC_ID_FREE_APIS for e in self.exchanges]
        self._keys = [
            request_key(e.method, e.full_path, e.request, rpc_id=not free)
            for e, free in zip(self.exchanges, self._id_free, strict=True)
        ]

    @property
    def remaining(self) -> int:
        return self.used.count(False)

    def answer(self, method: str, full_path: str, body: bytes) -> Exchange | Mismatch:
        """The recorded call for this live one (marked used), or why there is none."""
        live = self.redactor.redact(body)
        full_path = self.redactor.redact_text(full_path)  # recorded paths are redacted too
        key = request_key(method, full_path, live)
        free = request_key(method, full_path, live, rpc_id=False) if any(self._id_free) else key
        for i, exchange in enumerate(self.exchanges):
            wanted = free if self._id_free[i] else key
            if not self.used[i] and self._keys[i] == wanted and not exchange.truncated:
                self.used[i] = True
                return exchange
        return self._mismatch(method, full_path, live)

    def _mismatch(self, method: str, full_path: str, live: bytes) -> Mismatch:
        candidates = [
            e
            for i, e in enumerate(self.exchanges)
            if not self.used[i] and e.method == method.upper() and e.full_path == full_path
        ]
        if not candidates:
            left = [f"{e.method} {e.full_path}" for i, e in enumerate(self.exchanges)
                    if not self.used[i]]  # fmt: skip
            if not left:
                return Mismatch(
                    f"replay: no recorded call left for {method} {full_path} "
                    f"(all {len(self.exchanges)} recorded calls were answered)",
                    None,
                )
            return Mismatch(
                f"replay: no recorded call to {method} {full_path}; "
                f"recorded calls left: {', '.join(sorted(set(left)))}",
                None,
            )
        nearest = min(candidates, key=lambda e: distance(e.request, live))
        if nearest.truncated and not differences(nearest.request, live):
            return Mismatch(
                f"replay: the recorded call to {method} {full_path} was cut at the capture "
                "size limit and cannot be replayed",
                nearest,
            )
        diff = "; ".join(differences(nearest.request, live))
        return Mismatch(
            f"replay: request to {method} {full_path} matches no recorded call; nearest "
            f"recorded (span {nearest.span_id or '?'}) differs: {diff}",
            nearest,
        )
