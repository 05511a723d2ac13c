"""One call, one event: linking the proxy's record of a call with the agent's own span.

When an agent's instrumentation and the proxy both describe one LLM call, or one tool call
(the proxy's ``tool`` and ``mcp`` routes, the agent's ``execute_tool`` span), two spans reach
the daemon. This module decides which one is *the event* (counted by SLOs, carrying
``agent_sre.cost_usd``) and which one is a second view of it, from what both sides see:

- **response id**: the proxy reads the provider's response id, GenAI instrumentations record
  it as ``gen_ai.response.id``; equal ids are the same call, different ids never are;
- **trace**: with ``traceparent`` the proxy's span sits in the agent's trace: the agent's
  LLM span is its parent, or contains it in time;
- **fingerprint** (the proxy's span started its own trace): same model, same token usage
  when both know it, same agent when both know it, and the agent's span contains the
  proxy's in time.

Tool calls are linked by the same rules with the tool's name in place of the model (the
``names`` a :class:`CallCorrelator` reads: :data:`TOOL_NAME_KEYS`) and no response id or
usage: by trace, else by fingerprint (same tool name, same agent when both know it, time
containment). An agent's MCP span of another JSON-RPC method than ``tools/call`` has no
tool name to link by. Tool calls and LLM calls are kept in two correlators, never mixed.

The rule, so that counts do not depend on which record arrives first: the proxy's record is
*held* up to ``hold`` seconds. An agent span that links to a held record is the event and
takes the proxy's facts; the proxy's span becomes the ``gateway`` view. A record no agent span
linked within the hold (or before an ``AGENT_TASK`` span of its trace that contains it
arrives) is released as the event. Whichever of the two arrives after the call was counted is
marked and not counted: a proxy record linking to an agent span seen earlier is the
``gateway`` view, an agent span linking to a released (or already claimed) record is a
``duplicate``. Both sides are remembered for ``remember`` seconds, at most ``max_calls`` each.
Records are held only while agents send their own spans of calls (:attr:`CallCorrelator.holding`):
once a held record's whole hold passed with no agent span arriving, records are the event at
once (remembered as released) until the next agent span arrives.

The agents' side runs in the span pass, once per LLM span, so it builds nothing while no
proxy record could link to the span (none known, or none sharing its trace, response id or a
model): the span is remembered by its view, and its facts are built and indexed only when a
proxy record arrives (:meth:`CallCorrelator.offer_agent`).

Pure: every time comes in as a parameter; the daemon holds the payloads (the proxy's
spans) and releases them when told.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agent_sre.tracing import conventions as c
from agent_sre.tracing.linking import identity_of
from agent_sre.tracing.view import INPUT_TOKEN_KEYS, OUTPUT_TOKEN_KEYS, first_int

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from agent_sre.tracing.view import AgentSpan, AttrValue

QuietRecord = tuple["Mapping[str, AttrValue]", bytes, bytes, int, int, bool, bytes, float]
"""A proxy record released at once, kept as what its facts are built from (its attributes,
trace and span ids, start and end, error, caller's span) and when it is forgotten: its facts
are built only if an agent span comes while it is remembered."""

P = TypeVar("P")

LINK_RESPONSE_ID = "response_id"
LINK_TRACE = "trace"
LINK_FINGERPRINT = "fingerprint"

DEFAULT_SKEW_S = 1.0
"""Tolerance when one span's time must contain the other's (both clocks are the node's)."""
_ORDER_MARGIN_NS = 2_000_000_000
"""Records arrive in about the order they end; scans stop this far past the window."""


class State(Enum):
    HELD = "held"
    """A proxy record waiting for the agent's span."""
    CLAIMED = "claimed"
    """A proxy record an agent span took: that span is the event."""
    RELEASED = "released"
    """A proxy record released as the event itself."""
    COUNTED = "counted"
    """An agent span counted as the event with no proxy record linked (yet); CLAIMED once a
    proxy record linked to it."""


@dataclass(slots=True, eq=False)
class CallFacts:
    """What one side saw of an LLM call.

    ``parent_span_id`` is the caller's span for a proxy record (empty when the call carried no
    ``traceparent``), unused for an agent span.
    """

    trace_id: bytes
    span_id: bytes
    start_ns: int
    end_ns: int
    response_id: str = ""
    models: tuple[str, ...] = ()
    """The names the call is known by: the model(s) of an LLM call, the tool of a tool call."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    agent_id: str = ""
    is_error: bool = False
    parent_span_id: bytes = b""
    cache_tokens: int = 0
    """Proxy records: cache reads and writes included in ``input_tokens``."""
    identity: dict[str, str] | None = None
    """Agent spans: who made the call (copied onto the proxy's span when they link)."""
    has_cost: bool = True
    """Agent spans: whether the span carries ``agent_sre.cost_usd`` once priced."""


MODEL_KEYS = (c.GEN_AI_REQUEST_MODEL, c.GEN_AI_RESPONSE_MODEL, c.LLM_MODEL_NAME)
"""Where an LLM span names its model (the names LLM calls are linked by)."""
TOOL_NAME_KEYS = (c.GEN_AI_TOOL_NAME, c.TOOL_NAME)
"""Where a tool span names its tool: GenAI (and MCP) ``gen_ai.tool.name``, OpenInference
``tool.name``; the proxy writes the route's tool, or an MCP ``tools/call``'s ``params.name``."""
DELEGATION_NAME_KEYS = (c.AGENT_DELEGATION_CALLEE,)
"""Where a DELEGATION span names the agent handed to (the proxy's A2A routes write the
route's ``callee``): hand-offs are linked by trace, or by the callee, the caller and time."""


def facts_of_view(
    view: AgentSpan,
    parent_span_id: bytes = b"",
    cache_tokens: int = 0,
    names: tuple[str, ...] = MODEL_KEYS,
) -> CallFacts:
    """The facts of a span from its view (read with :data:`LINK_KEYS`, or
    :data:`~agent_sre.tracing.linking.TOOL_LINK_KEYS` for a tool span, ``names`` then being
    :data:`TOOL_NAME_KEYS`)."""
    return facts_of_attrs(
        view.attrs,
        view.trace_id,
        view.span_id,
        view.start_ns,
        view.end_ns,
        view.is_error,
        parent_span_id,
        cache_tokens,
        names,
    )


CACHE_KEYS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens")
"""Cache reads and writes, included in the input tokens the proxy reports."""


def cache_tokens_of(attrs: Mapping[str, AttrValue]) -> int:
    return sum(v for k in CACHE_KEYS if isinstance(v := attrs.get(k), int))


def facts_of_attrs(
    attrs: Mapping[str, AttrValue],
    trace_id: bytes,
    span_id: bytes,
    start_ns: int,
    end_ns: int,
    is_error: bool,
    parent_span_id: bytes = b"",
    cache_tokens: int = 0,
    names: tuple[str, ...] = MODEL_KEYS,
) -> CallFacts:
    """The facts of a span from its attributes (as :func:`facts_of_view` reads them)."""
    models: tuple[str, ...] = ()
    for key in names:
        value = attrs.get(key)
        if value.__class__ is str and value and value not in models:
            models = (*models, str(value))
    if models and names is TOOL_NAME_KEYS:
        method = attrs.get(c.MCP_METHOD_NAME)
        if method is not None and method != c.MCP_TOOLS_CALL:
            models = ()  # an MCP request that calls no tool (tools/list, ...)
    response_id = attrs.get(c.GEN_AI_RESPONSE_ID)
    agent_id = attrs.get(c.AGENT_ID)
    # positional: cheaper than keywords (CallFacts' field order)
    return CallFacts(
        trace_id,
        span_id,
        start_ns,
        end_ns,
        response_id if isinstance(response_id, str) else "",
        models,
        first_int(attrs, INPUT_TOKEN_KEYS),
        first_int(attrs, OUTPUT_TOKEN_KEYS),
        agent_id if isinstance(agent_id, str) else "",
        is_error,
        parent_span_id,
        cache_tokens,
    )


def link_key(agent: CallFacts, gateway: CallFacts, skew_ns: int) -> str | None:
    """How the agent's span and the proxy's record describe the same call, or None."""
    if agent.response_id and gateway.response_id:
        return LINK_RESPONSE_ID if agent.response_id == gateway.response_id else None
    contained = (
        agent.start_ns - skew_ns <= gateway.start_ns and gateway.end_ns <= agent.end_ns + skew_ns
    )
    if gateway.parent_span_id:
        if agent.trace_id != gateway.trace_id:
            return None
        return LINK_TRACE if gateway.parent_span_id == agent.span_id or contained else None
    if not contained:
        return None
    gateway_models = gateway.models
    for model in agent.models:  # a model in common (no set built: this runs per candidate)
        if model in gateway_models:
            break
    else:
        return None
    if agent.agent_id and gateway.agent_id and agent.agent_id != gateway.agent_id:
        return None
    if not _same_usage(agent, gateway):
        return None
    return LINK_FINGERPRINT


def _same_usage(agent: CallFacts, gateway: CallFacts) -> bool:
    if (
        agent.output_tokens is not None
        and gateway.output_tokens is not None
        and agent.output_tokens != gateway.output_tokens
    ):
        return False
    if agent.input_tokens is not None and gateway.input_tokens is not None:
        # instrumentations differ on whether input includes cached tokens
        allowed = (gateway.input_tokens, gateway.input_tokens - gateway.cache_tokens)
        if agent.input_tokens not in allowed:
            return False
    return True


_STRENGTH = {LINK_RESPONSE_ID: 0, LINK_TRACE: 1, LINK_FINGERPRINT: 2}


@dataclass(slots=True, eq=False)
class Entry(Generic[P]):
    """One remembered record (a proxy record, or an agent span counted as the event)."""

    facts: CallFacts
    payload: P | None
    state: State
    due: float = 0.0
    """Held proxy records: when the hold ends."""
    forget_at: float = 0.0
    event: CallFacts | None = None
    """The record counted for this call (the claiming agent span, or this record itself)."""
    since: float = 0.0
    """Held proxy records: when the hold began."""


class _Pool(Generic[P]):
    """Entries in arrival order, indexed by response id, trace id and model."""

    def __init__(self) -> None:
        self.order: deque[Entry[P]] = deque()
        # a response id or a trace holds a call or a few: a list each (a deque's first block
        # is ~600 bytes, a one-entry list's 64); a model holds thousands: a deque each
        self.by_response_id: dict[str, list[Entry[P]]] = {}
        self.by_trace: dict[bytes, list[Entry[P]]] = {}
        self.by_model: dict[str, deque[Entry[P]]] = {}

    def __len__(self) -> int:
        return len(self.order)

    def add(self, entry: Entry[P], index_models: bool) -> None:
        self.order.append(entry)
        facts = entry.facts
        if facts.response_id:
            _append(self.by_response_id, facts.response_id, entry, list)
        _append(self.by_trace, facts.trace_id, entry, list)
        if index_models:
            for model in facts.models:
                _append(self.by_model, model, entry, deque)

    def pop_oldest(self) -> Entry[P]:
        """Forgets the oldest entry (the leftmost of each of its index lists too)."""
        entry = self.order.popleft()
        facts = entry.facts
        if facts.response_id:
            _popleft(self.by_response_id, facts.response_id, entry)
        _popleft(self.by_trace, facts.trace_id, entry)
        for model in facts.models:
            _popleft(self.by_model, model, entry)
        return entry

    def candidates(self, facts: CallFacts, low: int, high: int) -> Iterable[Entry[P]]:
        """Entries that may link to ``facts``: same response id, same trace, or a model in
        common among those that ended between ``low`` and ``high`` (newest first)."""
        if facts.response_id:
            yield from self.by_response_id.get(facts.response_id, ())
        yield from self.by_trace.get(facts.trace_id, ())
        for model in facts.models:
            entries = self.by_model.get(model)
            if not entries:
                continue
            for entry in reversed(entries):
                end = entry.facts.end_ns
                if end < low - _ORDER_MARGIN_NS:
                    break
                if low <= end <= high:
                    yield entry


K = TypeVar("K", str, bytes)


S = TypeVar("S", "list[Entry[Any]]", "deque[Entry[Any]]")


def _append(index: dict[K, S], key: K, entry: Entry[Any], kind: Callable[[Any], S]) -> None:
    entries = index.get(key)
    if entries is None:
        index[key] = kind((entry,))
    else:
        entries.append(entry)


def _popleft(index: dict[K, S], key: K, entry: Entry[Any]) -> None:
    entries = index.get(key)
    if entries and entries[0] is entry:
        # a list's first item moves the rest (one trace holding every call: at most
        # max_calls pointers); a deque's is taken at once
        del entries[0]
        if not entries:
            del index[key]


@dataclass
class AgentOutcome(Generic[P]):
    """What to do with an agent's LLM span.

    ``claimed``: proxy records it linked (each with its link key): the span is the event and
    takes their facts; release them as the gateway view. ``duplicate_of``: the call was
    counted already by that record; mark the span and do not count it. ``agent``: the span's
    facts (with its identity, from :meth:`CallCorrelator.offer_agent`).
    """

    claimed: list[tuple[Entry[P], str]] = field(default_factory=list)
    duplicate_of: CallFacts | None = None
    key: str = ""
    agent: CallFacts | None = None


@dataclass
class GatewayOutcome:
    """What to do with a proxy record: ``linked_to`` an agent span counted earlier (release it
    at once as the gateway view), else ``held`` (wait), else release it as the event."""

    linked_to: CallFacts | None = None
    key: str = ""
    held: bool = False
    quiet: bool = False
    """Not held because no agent span of a call came lately (:attr:`CallCorrelator.holding`)."""


class CallCorrelator(Generic[P]):
    """Bounded correlation state between proxy records and agents' LLM (or tool) spans.

    Args:
        hold: seconds a proxy record waits for the agent's span (0: never held; the proxy's
            record is the event unless an agent span counted earlier links to it).
        remember: seconds records are kept after they were counted, to recognise the
            second view of a call arriving late.
        max_calls: at most this many records per side; the oldest goes first (a held one is
            then released as the event).
        skew: tolerance of the time-containment checks, seconds.
        names: the attributes naming a call: :data:`MODEL_KEYS` for LLM calls,
            :data:`TOOL_NAME_KEYS` for tool calls.
    """

    def __init__(
        self,
        hold: float,
        remember: float,
        max_calls: int,
        skew: float = DEFAULT_SKEW_S,
        names: tuple[str, ...] = MODEL_KEYS,
    ) -> None:
        self.names = names
        self.hold = hold
        self.remember = remember
        self.max_calls = max_calls
        self.skew_ns = int(skew * 1e9)
        self._gateway: _Pool[P] = _Pool()
        self._agents: _Pool[P] = _Pool()
        self._unindexed: deque[tuple[AgentSpan, float, CallFacts | None]] = deque()
        """Agent spans remembered after ``_agents`` (newer): their view, when they are
        forgotten, their facts if built; indexed when a proxy record arrives."""
        self._held: deque[Entry[P]] = deque()
        self.held_count = 0
        self._quiet: deque[QuietRecord] = deque()
        """Proxy records released at once, remembered after ``_gateway`` (newer), unread:
        indexed when an agent span or a held record comes (:meth:`remember_quiet`)."""
        self._armed = True
        """Whether agents' spans of calls came lately (see :attr:`holding`)."""
        self._agent_seen = float("-inf")
        """When the last agent span (of this correlator's kind of call) arrived."""

    def passing(self, now: float) -> bool:
        """Whether a proxy record arriving now is released at once with nothing to link it
        to (not :attr:`holding`, and every agent span remembered is past its time): then it
        is only remembered, unread (:meth:`remember_quiet`), instead of
        :meth:`offer_gateway`."""
        if self._armed and self.hold > 0:
            return False
        unindexed = self._unindexed
        if unindexed:
            if unindexed[-1][1] > now:  # the newest is still remembered
                return False
            unindexed.clear()
        order = self._agents.order
        if order:
            if order[-1].forget_at > now:
                return False
            while order:
                self._agents.pop_oldest()
        return True

    # hot path: per proxied call while no agent traces its calls
    def remember_quiet(self, record: QuietRecord, now: float) -> list[P]:
        """A proxy record released at once while :meth:`passing`: remembered as it is, its
        facts built only if an agent span comes while it is remembered. Returns held
        records the bound forced out (release those as events)."""
        forced: list[P] = []
        order = self._gateway.order
        quiet = self._quiet
        limit = self.max_calls
        # one bound and one age over both (``_gateway`` holds the older records)
        while order and (
            len(order) + len(quiet) >= limit
            or (order[0].forget_at <= now and order[0].state is not State.HELD)
        ):
            old = self._gateway.pop_oldest()
            if old.state is State.HELD:
                forced.append(self._release(old))
        if not order:
            while quiet and (len(quiet) >= limit or quiet[0][7] <= now):
                quiet.popleft()
        quiet.append(record)
        return forced

    def _index_quiet(self) -> None:
        """Builds the facts of the records remembered unread, and indexes them (in arrival
        order, after the older ones)."""
        add = self._gateway.add
        names = self.names
        llm = names is MODEL_KEYS
        for attrs, trace_id, span_id, start, end, error, parent, forget_at in self._quiet:
            cache = cache_tokens_of(attrs) if llm else 0
            facts = facts_of_attrs(
                attrs, trace_id, span_id, start, end, error, parent, cache, names
            )
            entry: Entry[P] = Entry(facts, None, State.RELEASED, forget_at=forget_at)
            entry.event = facts
            add(entry, index_models=not parent)
        self._quiet.clear()

    @property
    def holding(self) -> bool:
        """Whether a proxy record arriving now is held.

        Only while agents on the node send their own spans of calls: at start, and again from
        the moment an agent's span arrives, records are held; once a held record's whole hold
        passed with no agent span arriving meanwhile (its agent does not trace its calls, nor
        does any other on the node), records are the event at once, remembered as released
        (so an agent span of the call arriving later is its duplicate), until the next agent
        span arrives."""
        return self._armed and self.hold > 0

    def configure(self, hold: float, remember: float, max_calls: int) -> None:
        """New limits; held records keep their due time."""
        self.hold, self.remember, self.max_calls = hold, remember, max_calls

    # -- the proxy's side ---------------------------------------------------------------

    def offer_gateway(
        self, facts: CallFacts, payload: P, now: float
    ) -> tuple[GatewayOutcome, list[P]]:
        """A proxy record arrives. Returns the outcome and held records the bound forced out
        (release those as events)."""
        if self._unindexed:
            self._index_agents()
        if self._quiet:
            self._index_quiet()
        agent, key = self._best(self._agents, facts, agent_side=False)
        forced: list[P] = []
        if agent is not None:
            agent.state = State.CLAIMED  # linked: another answer cannot be this call's
            entry: Entry[P] = Entry(facts, None, State.CLAIMED, forget_at=now + self.remember)
            entry.event = agent.facts
            forced = self._remember(self._gateway, entry, now)
            return GatewayOutcome(linked_to=agent.facts, key=key), forced
        if not (self._armed and self.hold > 0):
            entry = Entry(facts, None, State.RELEASED, forget_at=now + self.remember)
            entry.event = facts
            outcome = GatewayOutcome(quiet=self.hold > 0)
            return outcome, self._remember(self._gateway, entry, now)
        entry = Entry(facts, payload, State.HELD, due=now + self.hold, since=now)
        entry.forget_at = entry.due + self.remember
        forced = self._remember(self._gateway, entry, now)
        self._held.append(entry)
        self.held_count += 1
        return GatewayOutcome(held=True), forced

    def has_held_trace(self, trace_id: bytes) -> bool:
        """Whether records of this trace are known (cheap: one lookup)."""
        return self.held_count > 0 and trace_id in self._gateway.by_trace

    def release_trace(self, trace_id: bytes, start_ns: int, end_ns: int) -> list[P]:
        """An ``AGENT_TASK`` span of the trace arrived: the agent's LLM spans inside it were
        exported before it (children end first), so held records it contains are events."""
        released = []
        for entry in self._gateway.by_trace.get(trace_id, ()):
            facts = entry.facts
            if (
                entry.state is State.HELD
                and start_ns - self.skew_ns <= facts.start_ns
                and facts.end_ns <= end_ns + self.skew_ns
            ):
                released.append(self._release(entry))
        return released

    def expire(self, now: float) -> list[P]:
        """Held records whose hold ended: release them as events."""
        released = []
        held = self._held
        while held and (held[0].state is not State.HELD or held[0].due <= now):
            entry = held.popleft()
            if entry.state is State.HELD:
                if self._agent_seen < entry.since:  # no agent span came during its hold
                    self._armed = False
                released.append(self._release(entry))
        return released

    def release_all(self) -> list[P]:
        """Every held record, as events (shutdown, or correlation turned off)."""
        released = [self._release(entry) for entry in self._held if entry.state is State.HELD]
        self._held.clear()
        return released

    def next_due(self) -> float | None:
        """When the oldest held record's hold ends (None: nothing held)."""
        held = self._held
        while held and held[0].state is not State.HELD:
            held.popleft()
        return held[0].due if held else None

    def _release(self, entry: Entry[P]) -> P:
        payload = entry.payload
        assert payload is not None
        entry.state = State.RELEASED
        entry.event = entry.facts
        entry.payload = None
        self.held_count -= 1
        return payload

    # -- the agent's side ---------------------------------------------------------------

    # hot path: per agent LLM span
    def offer_agent(self, view: AgentSpan, now: float) -> AgentOutcome[P] | None:
        """An agent's LLM (or tool) span arrives, as the span pass's view of it (read with
        :data:`~agent_sre.tracing.linking.LINK_KEYS`, or ``TOOL_LINK_KEYS``).

        Decides as :meth:`match_agent` does from the span's facts. Returns None when no proxy
        record links to it: the span is remembered by its view, kept as it is (the span pass
        gives each span its own), and its facts are built only when a proxy record arrives,
        after the span was priced. Else the outcome, with the span's facts as ``agent``.
        """
        self._agent_seen = now
        self._armed = True
        if self._quiet:
            self._index_quiet()
        gateway = self._gateway
        facts = None
        if gateway.order and _may_link(gateway, view, self.names):
            facts = facts_of_view(view, names=self.names)
            best, key = self._best(gateway, facts, agent_side=True)
            if best is not None:
                facts.identity = identity_of(view)
                outcome = self._link_agent(facts, best, key)
                outcome.agent = facts
                return outcome
        # remembered like match_agent's entries: one bound and one age over both queues
        pool = self._agents
        order = pool.order
        unindexed = self._unindexed
        limit = self.max_calls
        while order and (len(order) + len(unindexed) >= limit or order[0].forget_at <= now):
            pool.pop_oldest()  # agents' entries are never held: nothing to release
        if not order:
            while unindexed and (len(unindexed) >= limit or unindexed[0][1] <= now):
                unindexed.popleft()
        unindexed.append((view, now + self.remember, facts))
        return None

    def _index_agents(self) -> None:
        """Builds the facts of the agent spans remembered by their view, and indexes them."""
        add = self._agents.add
        cost_key = c.AGENT_SRE_COST_USD
        names = self.names
        for view, forget_at, built in self._unindexed:
            facts = built or facts_of_view(view, names=names)
            facts.identity = identity_of(view)
            facts.has_cost = cost_key in view.attrs
            entry: Entry[P] = Entry(facts, None, State.COUNTED, forget_at=forget_at)
            entry.event = facts
            add(entry, True)
        self._unindexed.clear()

    def match_agent(self, facts: CallFacts, now: float) -> tuple[AgentOutcome[P], list[P]]:
        """An agent's LLM span arrives. Returns the outcome and held records the bound forced
        out (release those as events)."""
        self._agent_seen = now
        self._armed = True
        if self._quiet:
            self._index_quiet()
        best, key = self._best(self._gateway, facts, agent_side=True)
        if best is None:
            if self._unindexed:
                self._index_agents()
            entry: Entry[P] = Entry(facts, None, State.COUNTED, forget_at=now + self.remember)
            entry.event = facts
            return AgentOutcome(key=key), self._remember(self._agents, entry, now)
        return self._link_agent(facts, best, key), []

    def _link_agent(self, facts: CallFacts, best: Entry[P], key: str) -> AgentOutcome[P]:
        """The outcome of an agent span whose best link is ``best``."""
        outcome: AgentOutcome[P] = AgentOutcome(key=key)
        if best.state is not State.HELD:
            outcome.duplicate_of = best.event or best.facts
            return outcome
        outcome.claimed.append((self._claim(best, facts), key))
        # SDK retries: failed attempts inside the agent's span that do not overlap the one
        # linked (a retry follows its failed attempt; a parallel call would overlap it)
        skew = self.skew_ns
        linked = best.facts
        for entry in self._gateway.candidates(facts, facts.start_ns - skew, facts.end_ns + skew):
            other = entry.facts
            if (
                entry.state is State.HELD
                and other.is_error
                and (other.end_ns <= linked.start_ns or other.start_ns >= linked.end_ns)
                and link_key(facts, other, skew)
            ):
                outcome.claimed.append((self._claim(entry, facts), key))
        return outcome

    def _claim(self, entry: Entry[P], agent: CallFacts) -> Entry[P]:
        entry.state = State.CLAIMED
        entry.event = agent
        self.held_count -= 1
        return entry

    # -- both ---------------------------------------------------------------------------

    def _best(
        self, pool: _Pool[P], facts: CallFacts, agent_side: bool
    ) -> tuple[Entry[P] | None, str]:
        """The entry of ``pool`` that links best to ``facts`` (strongest key; then held
        records first; then the closest in time)."""
        best: Entry[P] | None = None
        best_rank: tuple[int, int, int] | None = None
        best_key = ""
        skew = self.skew_ns
        if agent_side:  # proxy records inside the agent's span
            low, high = facts.start_ns - skew, facts.end_ns + skew
        else:  # agent spans around the proxy's record
            low, high = facts.end_ns - skew, 1 << 63
        for entry in pool.candidates(facts, low, high):
            if not agent_side and entry.state is State.CLAIMED and not facts.is_error:
                continue  # an agent span already linked to an answer (failed attempts may add)
            if agent_side:
                key = link_key(facts, entry.facts, skew)
            else:
                key = link_key(entry.facts, facts, skew)
            if key is None:
                continue
            other = entry.facts
            distance = abs(other.start_ns - facts.start_ns) + abs(other.end_ns - facts.end_ns)
            rank = (_STRENGTH[key], 0 if entry.state is State.HELD else 1, distance)
            if best_rank is None or rank < best_rank:
                best, best_rank, best_key = entry, rank, key
        return best, best_key

    def _remember(self, pool: _Pool[P], entry: Entry[P], now: float) -> list[P]:
        """Adds ``entry``; forgets entries past their time or over the bound (a held record
        forced out is returned, to be released as the event)."""
        forced: list[P] = []
        order = pool.order
        while order and (
            len(order) >= self.max_calls
            or (order[0].forget_at <= now and order[0].state is not State.HELD)
        ):
            old = pool.pop_oldest()
            if old.state is State.HELD:
                forced.append(self._release(old))
        pool.add(entry, index_models=pool is self._agents or not entry.facts.parent_span_id)
        return forced

    def __len__(self) -> int:
        return len(self._gateway) + len(self._agents) + len(self._unindexed) + len(self._quiet)


def _may_link(gateway: _Pool[P], view: AgentSpan, names: tuple[str, ...]) -> bool:
    """Whether any proxy record shares the span's trace, response id or a name (model or
    tool; what :meth:`_Pool.candidates` looks up): else nothing can link to the span."""
    if view.trace_id in gateway.by_trace:
        return True
    attrs = view.attrs
    if attrs.get(c.GEN_AI_RESPONSE_ID) in gateway.by_response_id:
        return True
    by_model = gateway.by_model
    if by_model:
        for key in names:
            if attrs.get(key) in by_model:
                return True
    return False
