"""What a captured call asked and what it was answered, read from its bodies (for the diff).

The request is read as its prompt: the ``system``, ``instructions``, ``messages``,
``prompt`` and ``input`` of the body (OpenAI chat completions, completions and responses;
Anthropic messages), without the ids a provider makes up for each call (``id``,
``tool_call_id``, ``tool_use_id``, ``call_id``: two runs never share them). The answer is
read as its text and the tool calls the model asked for (name and arguments), the same
whether it came whole (JSON) or streamed (server-sent events). A body of another shape is
read as its canonical form (:func:`~agent_sre.replay.canonical.canonical_body`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_sre.jsonbody import PROXY_MAX_DEPTH, read_json
from agent_sre.replay.canonical import canonical_body

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sre.replay.exchange import Exchange

PROMPT_KEYS: tuple[str, ...] = ("system", "instructions", "messages", "prompt", "input")
MINTED_IDS = frozenset({"id", "tool_call_id", "tool_use_id", "call_id"})
WIDTH = 60
"""Characters of a value shown in a change."""
CONTEXT = 20
"""Characters shown before the first difference when a value is cut."""

_MISSING: Any = object()


@dataclass(frozen=True)
class CallView:
    """A captured call as the diff reads it.

    Attributes:
        asked: the prompt (the :data:`PROMPT_KEYS` present), or for a request of another
            shape its parsed JSON or canonical text.
        text: the answer's text (choices joined by newlines); None when the answer's shape
            is not one of the known ones.
        tool_calls: ``{"name", "arguments"}`` of each tool call asked for (arguments parsed
            when they are JSON).
        body: the answer's canonical body (what is compared when ``text`` is None).
    """

    asked: Any
    text: str | None
    tool_calls: list[dict[str, Any]]
    body: str


@dataclass(frozen=True)
class BodyChange:
    """One difference of two calls' bodies: ``what`` (``request``, ``answer``, ``tool
    calls``), ``where`` they first differ (a JSON path, a character), short ``a``/``b``."""

    what: str
    where: str
    a: str | None
    b: str | None


def read_call(exchange: Exchange) -> CallView | None:
    """The call's view; None when its bodies were not kept whole (cut at the size limit, or
    left out over the trace's share): such a call is not compared."""
    if exchange.truncated:
        return None
    text, calls, body = _answer(exchange)
    return CallView(_asked(exchange.request), text, calls, body)


def compare_calls(a: Exchange, b: Exchange) -> list[BodyChange]:
    """What changed from call ``a`` to call ``b``: the request, the answer's text, the tool
    calls; nothing when either call's bodies were not kept."""
    view_a, view_b = read_call(a), read_call(b)
    if view_a is None or view_b is None:
        return []
    found: list[BodyChange] = []
    request = first_difference(view_a.asked, view_b.asked)
    if request is not None:
        found.append(_change("request", *request))
    if view_a.text is not None and view_b.text is not None:
        if view_a.text != view_b.text:
            found.append(_change("answer", "", view_a.text, view_b.text))
        calls = first_difference(view_a.tool_calls, view_b.tool_calls, "tool_calls")
        if calls is not None:
            found.append(_change("tool calls", *calls))
    else:
        # a shape not known on one side at least: the canonical bodies (or text) compare
        answer_a = view_a.body if view_a.text is None else view_a.text
        answer_b = view_b.body if view_b.text is None else view_b.text
        if answer_a != answer_b:
            found.append(_change("answer", "", answer_a, answer_b))
    return found


def first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The JSON path of the first place ``a`` and ``b`` differ, with the values there (None
    on the side where a key or item is missing); None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return where, a.get(key), b.get(key)
            found = first_difference(a[key], b[key], where)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            where = f"{path}[{i}]"
            if i >= len(a) or i >= len(b):
                return where, a[i] if i < len(a) else None, b[i] if i < len(b) else None
            found = first_difference(a[i], b[i], where)
            if found is not None:
                return found
        return None
    if a != b or type(a) is not type(b):
        return path, a, b
    return None


def excerpts(a: str, b: str, width: int = WIDTH) -> tuple[str, str, int]:
    """``a`` and ``b`` cut to about ``width`` characters around where they first differ,
    and that character's offset."""
    at = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        at += 1
    return _cut(a, at, width), _cut(b, at, width), at


def _change(what: str, where: str, a: Any, b: Any) -> BodyChange:
    text_a, text_b = _text(a), _text(b)
    if text_a is not None and text_b is not None:
        short_a, short_b, at = excerpts(text_a, text_b)
        if at and max(len(text_a), len(text_b)) > WIDTH:
            where = f"{where}, char {at}" if where else f"char {at}"
        return BodyChange(what, where, short_a, short_b)
    return BodyChange(what, where, _cut_none(text_a), _cut_none(text_b))


def _cut_none(text: str | None) -> str | None:
    return None if text is None else _cut(text, 0, WIDTH)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _cut(text: str, at: int, width: int) -> str:
    if len(text) <= width:
        return text
    start = max(0, min(at - CONTEXT, len(text) - width))
    cut = text[start : start + width]
    return ("..." if start else "") + cut + ("..." if start + width < len(text) else "")


# -- the request ----------------------------------------------------------------------------


def _asked(body: bytes) -> Any:
    value = _json(body)
    if value is _MISSING:
        return canonical_body(body)
    if isinstance(value, dict):
        prompt = {key: _without_ids(value[key]) for key in PROMPT_KEYS if key in value}
        if prompt:
            return prompt
    return value


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in MINTED_IDS}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


# -- the answer -----------------------------------------------------------------------------


class _Reading:
    """Text and tool calls gathered from a whole answer or from a stream's events."""

    def __init__(self) -> None:
        self.known = False
        self.texts: dict[tuple[str, int], list[str]] = {}
        """(part, index) -> pieces: a choice (``choice``, n) or a content block (``block``)."""
        self.calls: dict[tuple[int, int], list[Any]] = {}
        """(choice or block, index) -> [name, argument pieces, arguments as given]."""

    def text(self, part: str, index: int, piece: Any) -> None:
        if isinstance(piece, str):
            self.texts.setdefault((part, index), []).append(piece)

    def call(self, key: tuple[int, int], name: Any = None, arguments: Any = None) -> None:
        entry = self.calls.setdefault(key, ["", [], None])
        if isinstance(name, str):
            entry[0] += name
        if isinstance(arguments, str):
            entry[1].append(arguments)
        elif arguments is not None:
            entry[2] = arguments

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        choices: dict[int, str] = {}
        for (part, index), pieces in sorted(self.texts.items()):
            # content blocks of one message join; choices are separate answers
            slot = index if part == "choice" else 0
            choices[slot] = choices.get(slot, "") + "".join(pieces)
        calls = []
        for _, (name, pieces, given) in sorted(self.calls.items()):
            arguments = _parsed("".join(pieces)) if pieces else given
            calls.append({"name": name, "arguments": {} if arguments is None else arguments})
        return "\n".join(choices[k] for k in sorted(choices)), calls


def _answer(exchange: Exchange) -> tuple[str | None, list[dict[str, Any]], str]:
    body = exchange.body
    reading = _Reading()
    if "event-stream" in exchange.content_type or body.lstrip().startswith((b"data:", b"event:")):
        for name, data in _events(body):
            _read_event(reading, name, data)
    else:
        value = _json(body)
        if isinstance(value, dict):
            _read_whole(reading, value)
    if not reading.known:
        return None, [], canonical_body(body)
    text, calls = reading.result()
    return text, calls, ""


def _read_whole(reading: _Reading, value: dict[str, Any]) -> None:
    choices = value.get("choices")
    if isinstance(choices, list):  # OpenAI chat completions and completions
        reading.known = True
        for n, choice in enumerate(c for c in choices if isinstance(c, dict)):
            index = _index(choice, n)
            reading.text("choice", index, choice.get("text"))
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            _read_content(reading, "choice", index, message.get("content"))
            for k, call in enumerate(_dicts(message.get("tool_calls"))):
                function = _function(call)
                reading.call((index, k), function.get("name"), function.get("arguments"))
            legacy = message.get("function_call")
            if isinstance(legacy, dict):
                reading.call((index, -1), legacy.get("name"), legacy.get("arguments"))
    elif value.get("type") == "message" and isinstance(value.get("content"), list):
        reading.known = True  # Anthropic messages
        for index, block in enumerate(_dicts(value["content"])):
            _read_block(reading, index, block)
    elif value.get("object") == "response" and isinstance(value.get("output"), list):
        reading.known = True  # OpenAI responses
        for index, item in enumerate(_dicts(value["output"])):
            if item.get("type") == "function_call":
                reading.call((0, index), item.get("name"), item.get("arguments"))
            elif item.get("type") == "message":
                _read_content(reading, "block", index, item.get("content"))


def _read_event(reading: _Reading, name: str, data: dict[str, Any]) -> None:
    kind = data.get("type") or name
    if isinstance(data.get("choices"), list):  # OpenAI chat completions and completions
        reading.known = True
        for n, choice in enumerate(_dicts(data["choices"])):
            index = _index(choice, n)
            reading.text("choice", index, choice.get("text"))
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            _read_content(reading, "choice", index, delta.get("content"))
            for k, call in enumerate(_dicts(delta.get("tool_calls"))):
                function = _function(call)
                key = (index, _index(call, k))
                reading.call(key, function.get("name"), function.get("arguments"))
    elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
        reading.known = True  # Anthropic messages
        block = dict(data["content_block"])
        if block.get("type") == "tool_use" and not block.get("input"):
            block.pop("input", None)  # an empty start: the input comes as JSON pieces
        _read_block(reading, _index(data, 0), block)
    elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
        reading.known = True
        index, delta = _index(data, 0), data["delta"]
        if delta.get("type") == "input_json_delta":
            reading.call((index, 0), arguments=delta.get("partial_json"))
        else:
            reading.text("block", index, delta.get("text"))
    elif kind == "response.completed" and isinstance(data.get("response"), dict):
        _read_whole(reading, data["response"])  # OpenAI responses: the whole answer at the end


def _read_block(reading: _Reading, index: int, block: dict[str, Any]) -> None:
    if block.get("type") == "tool_use":
        reading.call((index, 0), block.get("name"), block.get("input"))
    elif block.get("type") == "text":
        reading.text("block", index, block.get("text"))


def _read_content(reading: _Reading, part: str, index: int, content: Any) -> None:
    if isinstance(content, str):
        reading.text(part, index, content)
    for piece in _dicts(content):  # content parts
        reading.text(part, index, piece.get("text"))


def _events(body: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """The JSON objects of a server-sent event stream, with their event names."""
    text = body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    for event in text.split("\n\n"):
        name, data = "", []
        for line in event.split("\n"):
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                name = line[6:].strip()
        value = _json("\n".join(data).encode()) if data else _MISSING
        if isinstance(value, dict):
            yield name, value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _function(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    return function if isinstance(function, dict) else {}


def _index(item: dict[str, Any], default: int) -> int:
    index = item.get("index")
    return index if isinstance(index, int) else default


def _parsed(arguments: str) -> Any:
    value = _json(arguments.encode())
    return arguments if value is _MISSING else value


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return read_json(body, max_depth=PROXY_MAX_DEPTH)
    except ValueError:
        return _MISSING
