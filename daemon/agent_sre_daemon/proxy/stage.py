"""A proxied call passes through a chain of stages, each a small object.

Slots, in order: ``identity`` -> ``admission`` (kill switch, rate limits, budgets) ->
``routing`` (route, rollout variant, upstream) -> ``faults`` (chaos) -> ``capture``
(replay) -> ``forward`` -> ``settle`` (cost, record, span). On the way in each stage either
answers the call itself (returns a response: a refusal, an injected fault, a replayed answer)
or lets it go on (returns None). On the way out every stage whose ``on_request`` ran sees the
finished call in reverse order through ``on_response`` (which runs even when the client went
away, so nothing reserved leaks). Stages know nothing of each other; what they share is the
call object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.proxy.call import Call

StageSlot = Literal["identity", "admission", "routing", "faults", "capture", "forward", "settle"]
SLOT_ORDER: tuple[StageSlot, ...] = (
    "identity",
    "admission",
    "routing",
    "faults",
    "capture",
    "forward",
    "settle",
)


class Stage(Protocol):
    """One step of every proxied call."""

    name: str
    slot: StageSlot

    async def on_request(self, call: Call) -> web.StreamResponse | None:
        """Answers the call (a response) or lets it go on (None)."""
        ...

    async def on_response(self, call: Call) -> None:
        """Sees the finished call (status, facts, cost) on its way back."""
        ...


def ordered(stages: list[Stage]) -> list[Stage]:
    """Stages sorted by slot, keeping the given order within a slot."""
    return sorted(stages, key=lambda stage: SLOT_ORDER.index(stage.slot))
