"""A proxied call passes through a chain of stages, each a small object.

Slots, in the order a call enters them: ``record`` (the span and metrics) -> ``identity`` ->
``admission`` (kill switch, rate limits, budgets) -> ``routing`` (upstream, rollout
variant) -> ``faults`` (chaos) -> ``capture`` (replay) -> ``settle`` (usage and cost) ->
``forward`` (the upstream). On the way in each stage either answers the call itself (returns
a response: a refusal, an injected fault, a replayed answer) or lets it go on (returns
None); the ``forward`` stage always answers. On the way back every stage whose
``on_request`` ran sees the finished call in reverse order through ``on_response`` (which
runs even when the client went away, so nothing reserved leaks): ``settle`` first (it
prices what passed, for everyone after it), ``admission`` books that cost, ``record`` last
(so a refusal or an injected fault is recorded too). Stages know nothing of each other;
what they share is the call object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from agent_sre.gateway.outcome import Slot

if TYPE_CHECKING:
    from aiohttp import web

    from agent_sre_daemon.proxy.call import Call

StageSlot = Slot
"""The slot names (named once, in the core, with who decides an answer given in each)."""
SLOT_ORDER: tuple[StageSlot, ...] = (
    "record",
    "identity",
    "admission",
    "routing",
    "faults",
    "capture",
    "settle",
    "forward",
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
