"""``api: a2a``: the Agent2Agent protocol's JSON-RPC binding, one hand-off one DELEGATION span.

Both spellings of the methods are read: A2A 1.0 (``SendMessage``, ``SendStreamingMessage``,
``GetTask``, ``CancelTask``, ``SubscribeToTask``) and 0.3 (``message/send``,
``message/stream``, ``tasks/get``, ``tasks/cancel``, ``tasks/resubscribe``).

- A **hand-off** (a message sent, streamed or not) is a DELEGATION span: caller
  (``agent.id``), callee (the route's ``callee``, else its name), the callee's task id, the
  depth (``agent.delegation.depth``), status and latency. The depth is the caller's depth
  plus one; the caller's depth comes from the ``X-Agent-Delegation-Depth`` header or the W3C
  baggage member ``agent.delegation.depth`` (0 when neither is sent), and the hand-off goes
  upstream with both set to its own depth, so the callee's own hand-offs through the proxy
  count on from there. A depth past the route's ``max_delegation_depth`` is refused.
- Task follow-ups (``tasks/get``, cancel, resubscribe, ...) are spans with the task id and
  the method but no ``agent.span.kind``: polling a task never counts as a delegation.
- A JSON-RPC ``error`` or a task that ended ``failed``/``rejected`` fails the span (in a
  JSON answer or in a server-sent event).
- A request the proxy cannot read as one JSON-RPC request object is refused (not JSON, a
  batch, no method, a key that decides the call written twice): forwarded unread, it could
  carry a hand-off past the depth cap.
- Agent cards (``/.well-known/agent-card.json``, and 0.3's ``agent.json``) pass through with
  the URLs that point at the route's upstream rewritten to the proxy's route, so a client
  that discovers the agent from its card keeps calling through the proxy; a signed card is
  passed through untouched (a rewrite would break its signature).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from agent_sre.gateway.plan import CallPlan, ResponseFacts
from agent_sre.gateway.providers.base import PlainHttp
from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agent_sre.config import ProxyRoute

HANDOFFS = {
    "message/send": False,
    "message/stream": True,
    "SendMessage": False,
    "SendStreamingMessage": True,
}
"""Methods that hand work to the callee (a DELEGATION span each), and whether they stream."""
STREAMING_FOLLOW_UPS = frozenset({"tasks/resubscribe", "SubscribeToTask"})
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
OPERATION = "invoke_agent"
"""``gen_ai.operation.name`` of a hand-off (the GenAI name for calling a remote agent)."""

DEPTH_KEY = "agent.delegation.depth"
DEPTH_HEADER = "x-agent-delegation-depth"
MAX_DEPTH = 1000
"""The largest depth read from a request; a larger one is refused as garbage."""
_DEPTH_TEXT = re.compile(r"[0-9]{1,4}")
_AMBIGUOUS_KEYS = frozenset({"jsonrpc", "method", "params", "id", "message", "taskId"})
_FAILED_STATES = frozenset({"failed", "rejected", "TASK_STATE_FAILED", "TASK_STATE_REJECTED"})
MAX_TEXT = 256
"""The longest id or message kept from a request or answer (a span attribute)."""

ERROR_CODES = {
    "bad_request": -32600,
    "delegation_too_deep": -32090,
    "agent_blocked": -32091,
    "budget_exceeded": -32091,
    "budget_unavailable": -32091,
    "circuit_open": -32091,
    "agent_key_invalid": -32091,
    "agent_throttled": -32092,
    "replay_mismatch": -32093,
    "route_not_found": -32601,
}
"""JSON-RPC error code of each refusal the proxy answers on an A2A route (A2A uses -32001 to
-32009; -32090 and up are agent-sre's); anything else is -32603 (internal error)."""
INTERNAL_ERROR = -32603


class A2A(PlainHttp):
    api = "a2a"

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        plan = CallPlan(self.api, "", None, body=body, callee=route.callee or route.name)
        if method == "GET":
            plan.agent_card = path.rstrip("/").endswith(CARD_PATHS)
            return plan
        if method != "POST":
            return plan
        if not body:
            plan.refusal = "an A2A call is a JSON-RPC request; the body is empty"
            return plan
        try:
            data = read_json(body, max_depth=None, object_pairs_hook=_pairs)
        except _AmbiguousError as exc:
            plan.refusal = f"the request names {exc} twice: which one counts is ambiguous"
            return plan
        except ValueError:
            plan.refusal = "an A2A call is a JSON-RPC request; the body is not JSON"
            return plan
        if isinstance(data, list):
            plan.refusal = (
                "JSON-RPC batches are not taken on an A2A route (A2A defines none); "
                "send one request per call"
            )
            return plan
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            plan.refusal = "a JSON-RPC request is an object with a string method"
            return plan
        rpc = data["method"]
        plan.rpc_method = rpc[:MAX_TEXT]
        plan.mcp_request_id = data.get("id")
        params = data.get("params")
        params = params if isinstance(params, dict) else {}
        stream = HANDOFFS.get(rpc)
        if stream is not None:
            plan.operation = OPERATION
            plan.delegation = True
            plan.reserve_usd = route.delegation_reserve_usd
            plan.stream = stream
            message = params.get("message")
            task = message.get("taskId") if isinstance(message, dict) else None
        else:
            plan.stream = rpc in STREAMING_FOLLOW_UPS
            task = params.get("id") or params.get("taskId")
        if isinstance(task, str):
            plan.task_id = task[:MAX_TEXT]
        return plan

    def facts_from_json(self, plan: CallPlan, data: dict[str, Any]) -> ResponseFacts:
        facts = ResponseFacts()
        read_response(facts, data)
        return facts

    # hot path: per server-sent event of a streamed hand-off
    def on_event(
        self, plan: CallPlan, facts: ResponseFacts, name: bytes, data: dict[str, Any], event: bytes
    ) -> bytes:
        read_response(facts, data)
        return event

    def error_body(self, kind: str, message: str, status: int = 0) -> dict[str, object]:
        """A JSON-RPC error response (its ``id`` is set to the request's by the proxy)."""
        return {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": ERROR_CODES.get(kind, INTERNAL_ERROR),
                "message": message,
                "data": {"type": kind},
            },
        }


class _AmbiguousError(Exception):
    """A deciding key written twice (not a ValueError: the JSON reader would take it for a
    parse error)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and key in _AMBIGUOUS_KEYS:
                raise _AmbiguousError(key)
            seen.add(key)
    return data


def read_response(facts: ResponseFacts, data: dict[str, Any]) -> None:
    """Reads one JSON-RPC response (a whole answer, or one event of a stream) into ``facts``:
    its error, else the task it reports (id and state; a failed or rejected one fails the
    call)."""
    error = data.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        facts.rpc_error_code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        facts.tool_error = str(error.get("message") or "json-rpc error")[:MAX_TEXT]
        return
    if error is not None:
        facts.tool_error = "json-rpc error"
        return
    result = data.get("result")
    if not isinstance(result, dict):
        return
    # 1.0 wraps the payload (task, statusUpdate, ...); 0.3 sends it with a ``kind``
    for key in ("task", "statusUpdate", "artifactUpdate", "message"):
        inner = result.get(key)
        if isinstance(inner, dict):
            result = inner
            break
    task = result.get("taskId") or (result.get("id") if "status" in result else None)
    if isinstance(task, str) and task:
        facts.task_id = task[:MAX_TEXT]
    status = result.get("status")
    state = status.get("state") if isinstance(status, dict) else None
    if isinstance(state, str) and state:
        facts.task_state = state[:MAX_TEXT]
        if state in _FAILED_STATES:
            facts.tool_error = f"the delegated task ended {state}"
        elif facts.tool_error is not None and facts.tool_error.startswith("the delegated task"):
            facts.tool_error = None  # a later state of the same stream


# -- depth ------------------------------------------------------------------------------


def baggage_members(values: Iterable[str]) -> list[tuple[str, str]]:
    """The members (key, raw value with its properties) of every ``baggage`` header."""
    members: list[tuple[str, str]] = []
    for value in values:
        for member in value.split(","):
            key, sep, rest = member.partition("=")
            if sep and key.strip():
                members.append((key.strip(), rest.strip()))
    return members


def caller_depth(depth_headers: list[str], baggage: list[tuple[str, str]]) -> int | str:
    """The depth the caller runs at (0 when nothing says), or why the request is refused:
    a depth that is not a whole number from 0 to :data:`MAX_DEPTH` (NaN, -1, 1e309, text),
    or two that disagree. The header wins over baggage."""
    texts = [text.strip() for text in depth_headers]
    where = "the X-Agent-Delegation-Depth header"
    if not texts:
        texts = [value.split(";", 1)[0].strip() for key, value in baggage if key == DEPTH_KEY]
        where = f"the baggage member {DEPTH_KEY}"
    if not texts:
        return 0
    if len(set(texts)) > 1:
        return f"{where} is given more than once, with different values"
    text = texts[0]
    if not _DEPTH_TEXT.fullmatch(text) or int(text) > MAX_DEPTH:
        shown = text[:32]
        return f"{where} must be a whole number from 0 to {MAX_DEPTH}, not {shown!r}"
    return int(text)


def too_deep(depth: int, cap: int, callee: str) -> str:
    """Why a hand-off at ``depth`` is refused (``""`` when within ``cap``)."""
    if depth <= cap:
        return ""
    return (
        f"delegation depth {depth} to {callee!r} is past this route's cap of {cap} "
        "(proxy.routes[].max_delegation_depth): agents are handing work down a chain "
        "that is too long, or in a loop"
    )


def onward_baggage(baggage: list[tuple[str, str]], depth: int) -> str:
    """The ``baggage`` header for the callee: the caller's members, the depth set to the
    hand-off's own."""
    members = [f"{key}={value}" for key, value in baggage if key != DEPTH_KEY]
    members.append(f"{DEPTH_KEY}={depth}")
    return ",".join(members)


# -- agent cards ------------------------------------------------------------------------

_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def proxy_base(host: str, prefix: str) -> str | None:
    """The URL a client reaches the route at, from the Host it called (None when the Host
    is not a plain host name or address: then the card is passed on untouched)."""
    if not _HOST.fullmatch(host):
        return None
    return f"http://{host}{prefix}"


def rewrite_card(body: bytes, upstream: str, base: str) -> bytes:
    """An agent card with every interface URL that points at ``upstream`` pointing at
    ``base`` instead (``url``, 1.0's ``supportedInterfaces``, 0.3's
    ``additionalInterfaces``). Anything else — not JSON, a signed card, no URL under the
    upstream — is returned unchanged, byte for byte."""
    try:
        card = read_json(body, max_depth=PROXY_MAX_DEPTH, what="agent card")
    except ValueError:
        return body
    if not isinstance(card, dict) or card.get("signatures"):
        return body
    changed = False

    def moved(url: Any) -> Any:
        nonlocal changed
        if not isinstance(url, str):
            return url
        if url == upstream or url.startswith(upstream + "/"):
            changed = True
            return base + url[len(upstream) :]
        return url

    if "url" in card:
        card["url"] = moved(card["url"])
    for key in ("supportedInterfaces", "additionalInterfaces"):
        interfaces = card.get(key)
        if isinstance(interfaces, list):
            for interface in interfaces:
                if isinstance(interface, dict) and "url" in interface:
                    interface["url"] = moved(interface["url"])
    if not changed:
        return body
    return json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode()


PROVIDER = A2A()
