"""A stand-in LLM and tool provider speaking the real wire formats, for tests and benchmarks.

OpenAI: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses`` (JSON, and SSE when ``stream`` is true; ``stream_options.include_usage``
adds ``"usage":null`` to every chunk and a final usage chunk with empty ``choices`` before
``data: [DONE]``, as OpenAI does). Anthropic: ``POST /v1/messages`` (JSON and the SSE
events ``message_start``, ``content_block_start``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop``). Gemini: ``POST
/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``, ``:countTokens``,
``:embedContent``, ``:batchEmbedContents`` (``usageMetadata`` with thoughts and cached
tokens; Google's error shape). Azure OpenAI: ``/openai/deployments/{d}/...`` and
``/openai/v1/...`` (OpenAI's answers, ``model`` the deployment's model). Bedrock: ``POST
/model/{id}/converse`` and ``/converse-stream`` (AWS event-stream framing), checking the
SigV4 signature when ``aws_credentials`` is set. Tools: ``/tool/...`` echoes JSON; ``/mcp``
answers MCP JSON-RPC ``tools/call``.

Behaviour is set on :class:`FakeProvider` attributes (``status``, ``latency``,
``chunk_delay``, ``omit_usage``, ``reply_words``, ``models`` for per-model quality...).
Every request is recorded with its headers and body. Run standalone with
``python tests/fakes/provider.py --port 0 [--models JSON]``; it prints ``http://host:port``
on its first line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

_IDS = itertools.count(1)
"""Response ids are unique per call, as providers' are."""

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    """One request as the provider received it."""

    method: str
    path: str
    headers: CIMultiDict[str]
    """Case-insensitive, as HTTP headers are."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class ModelQuality:
    """How one model answers (``FakeProvider.models``): set quality for rollout tests."""

    error_rate: float = 0.0
    """Share of calls answered with ``error_status``, spread evenly (deterministic)."""
    error_status: int = 500
    latency: float = 0.0
    """Seconds added before the answer."""
    reply_words: int | None = None
    """Words in each reply (more words: more output tokens, more cost)."""
    calls: int = 0


@dataclass
class FakeProvider:
    """The stand-in provider; mutate its attributes between calls to change behaviour."""

    host: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    """Anything but 200 answers every LLM call with that status in the provider's error shape."""
    latency: float = 0.0
    """Seconds to wait before the response headers."""
    chunk_delay: float = 0.0
    """Seconds between SSE events."""
    omit_usage: bool = False
    """Leave usage out of every response (JSON and streams), as some gateways do."""
    reply_words: int = 5
    """Words in each reply (capped by max_tokens)."""
    retry_after: str | None = None
    cut_stream_after: int | None = None
    """Drop the connection after this many SSE events (an upstream dying mid-stream)."""
    gzip: bool = False
    """Compress JSON responses when the client accepts gzip."""
    unique_ids: bool = True
    """Response ids unique per call, as providers' are; off, every response of a kind has
    the same id (tests comparing a proxied answer with a direct one byte for byte)."""
    models: dict[str, ModelQuality] = field(default_factory=dict)
    """Per-model quality for chat completions and messages (models not listed: as set above)."""
    reply_text: str | None = None
    """Reply with these words (split on spaces) instead of ``Hello word word...``."""
    reply_pieces: list[str] | None = None
    """Reply with exactly these pieces, one per streamed event (a word cut anywhere)."""
    thoughts_tokens: int = 0
    """Gemini: thinking tokens reported in ``thoughtsTokenCount`` (billed as output)."""
    cached_tokens: int = 0
    """Gemini ``cachedContentTokenCount`` / Bedrock ``cacheReadInputTokens``."""
    usage_override: dict[str, Any] | None = None
    """Gemini ``usageMetadata`` / Bedrock ``usage`` sent as given (hostile figures)."""
    azure_models: dict[str, str] = field(default_factory=dict)
    """Azure: the model each deployment runs (answered as ``model``)."""
    aws_credentials: tuple[str, str] | None = None
    """Bedrock: (key id, secret) the SigV4 signature must be made with; None: not checked."""
    signatures: list[bool] = field(default_factory=list)
    """Bedrock: whether each call's signature held (when checked)."""
    requests: list[RecordedRequest] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def calls(self) -> int:
        """How many requests reached the provider."""
        return len(self.requests)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1beta/models/{target}", self._gemini)
        app.router.add_post("/v1/models/{target}", self._gemini)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure_embed)
        app.router.add_post("/openai/v1/chat/completions", self._azure)
        app.router.add_post("/model/{model}/converse", self._converse)
        app.router.add_post("/model/{model}/converse-stream", self._converse)
        app.router.add_post("/mcp", self._mcp)
        app.router.add_get("/tool/ndjson", self._ndjson)
        app.router.add_route("*", "/tool/{tail:.*}", self._tool)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- helpers -------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path_qs, CIMultiDict(request.headers), body)
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}

    async def _quality(self, body: dict[str, Any]) -> int | None:
        """Applies the model's latency; the error status when this call is one of its
        failures."""
        quality = self.models.get(str(body.get("model", "")))
        if quality is None:
            return None
        quality.calls += 1
        if quality.latency:
            await asyncio.sleep(quality.latency)
        n, rate = quality.calls, quality.error_rate
        if int(n * rate) > int((n - 1) * rate):
            return quality.error_status
        return None

    def _words(self, body: dict[str, Any], limit_key: str = "max_tokens") -> list[str]:
        quality = self.models.get(str(body.get("model", "")))
        words = self.reply_words
        if quality is not None and quality.reply_words is not None:
            words = quality.reply_words
        limit = body.get(limit_key) or body.get("max_completion_tokens") or words
        count = max(1, min(words, int(limit)))
        if self.reply_pieces is not None:
            return list(self.reply_pieces)
        if self.reply_text is not None:
            text = self.reply_text.split(" ")
            return [w if i == 0 else " " + w for i, w in enumerate(text)][:count]
        return [("Hello" if i == 0 else " word") for i in range(count)]

    @staticmethod
    def _input_tokens(value: Any) -> int:
        return max(1, len(json.dumps(value, separators=(",", ":"))) // 4)

    def _id(self) -> str:
        return str(next(_IDS)) if self.unique_ids else ""

    def _status(self, request: web.Request) -> int:
        """``status``, or the ``x-fake-status`` request header (tests in another process)."""
        asked = request.headers.get("x-fake-status", "")
        return int(asked) if asked.isdigit() else self.status

    def _openai_error(self, status: int | None = None) -> web.Response:
        status = status or self.status
        kind = OPENAI_ERROR_TYPES.get(status, "server_error")
        body = {"error": {"message": f"fake {status}", "type": kind, "param": None, "code": None}}
        return self._error(body, status)

    def _anthropic_error(self, status: int | None = None) -> web.Response:
        status = status or self.status
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
        return self._error(body, status)

    def _error(self, body: dict[str, Any], status: int | None = None) -> web.Response:
        status = status or self.status
        headers = {"x-should-retry": "false"} if status < 500 else {}
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        return web.json_response(body, status=status, headers=headers)

    def _json(self, request: web.Request, value: Any) -> web.Response:
        response = web.Response(body=self._dumps(value), content_type="application/json")
        if self.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    @staticmethod
    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    async def _sse(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        for index, event in enumerate(events):
            if index and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if index == self.cut_stream_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(event)
        await response.write_eof()
        return response

    # ---- OpenAI --------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self._status(request) != 200:
            return self._openai_error(self._status(request))
        failed = await self._quality(body)
        if failed is not None:
            return self._openai_error(failed)
        model = str(body.get("model", "gpt-4o-mini"))
        words = self._words(body)
        prompt = self._input_tokens(body.get("messages", []))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words),
            "total_tokens": prompt + len(words),
        }
        base = {
            "id": f"chatcmpl-fake{self._id()}",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            out = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(words),
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
            }
            if not self.omit_usage:
                out["usage"] = usage
            return self._json(request, out)
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        with_usage = with_usage and not self.omit_usage
        chunk_base = {**base, "object": "chat.completion.chunk"}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": word} for word in words]
        events = []
        for delta in deltas:
            chunk = {
                **chunk_base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
            }
            if with_usage:
                chunk["usage"] = None
            events.append(b"data: " + self._dumps(chunk) + b"\n\n")
        last = {
            **chunk_base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
        }
        if with_usage:
            last["usage"] = None
        events.append(b"data: " + self._dumps(last) + b"\n\n")
        if with_usage:
            final = {**chunk_base, "choices": [], "usage": usage}
            events.append(b"data: " + self._dumps(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self._sse(request, events)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.status != 200:
            return self._openai_error()
        model = str(body.get("model", "gpt-3.5-turbo-instruct"))
        words = self._words(body)
        prompt = self._input_tokens(body.get("prompt", ""))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words),
            "total_tokens": prompt + len(words),
        }
        base = {
            "id": f"cmpl-fake{self._id()}",
            "object": "text_completion",
            "created": 1700000000,
            "model": model,
        }
        if not body.get("stream"):
            out = {
                **base,
                "choices": [
                    {"text": "".join(words), "index": 0, "logprobs": None, "finish_reason": "stop"}
                ],
            }
            if not self.omit_usage:
                out["usage"] = usage
            return web.Response(body=self._dumps(out), content_type="application/json")
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        with_usage = with_usage and not self.omit_usage
        events = []
        for index, word in enumerate(words):
            finish = "stop" if index == len(words) - 1 else None
            chunk: dict[str, Any] = {
                **base,
                "choices": [{"text": word, "index": 0, "logprobs": None, "finish_reason": finish}],
            }
            if with_usage:
                chunk["usage"] = None
            events.append(b"data: " + self._dumps(chunk) + b"\n\n")
        if with_usage:
            events.append(
                b"data: " + self._dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            )
        events.append(b"data: [DONE]\n\n")
        return await self._sse(request, events)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.status != 200:
            return self._openai_error()
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        prompt = self._input_tokens(inputs)
        out: dict[str, Any] = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]}
                for i in range(len(items))
            ],
            "model": str(body.get("model", "text-embedding-3-small")),
        }
        if not self.omit_usage:
            out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return web.Response(body=self._dumps(out), content_type="application/json")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.status != 200:
            return self._openai_error()
        model = str(body.get("model", "gpt-4o-mini"))
        words = self._words(body, "max_output_tokens")
        prompt = self._input_tokens(body.get("input", ""))
        text = "".join(words)
        message = {
            "type": "message",
            "id": "msg_fake",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        response: dict[str, Any] = {
            "id": f"resp_fake{self._id()}",
            "object": "response",
            "created_at": 1700000000,
            "status": "completed",
            "model": model,
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        if not self.omit_usage:
            response["usage"] = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": len(words),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + len(words),
            }
        if not body.get("stream"):
            return web.Response(body=self._dumps(response), content_type="application/json")
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        events = [
            self._event(
                "response.created",
                {"type": "response.created", "sequence_number": 0, "response": created},
            )
        ]
        for index, word in enumerate(words):
            events.append(
                self._event(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": index + 1,
                        "item_id": "msg_fake",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": word,
                        "logprobs": [],
                    },
                )
            )
        events.append(
            self._event(
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": len(words) + 1,
                    "response": response,
                },
            )
        )
        return await self._sse(request, events)

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + self._dumps(data) + b"\n\n"

    # ---- Anthropic -----------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self._status(request) != 200:
            return self._anthropic_error(self._status(request))
        failed = await self._quality(body)
        if failed is not None:
            return self._anthropic_error(failed)
        model = str(body.get("model", "claude-3-5-haiku-latest"))
        words = self._words(body)
        prompt = self._input_tokens([body.get("system", ""), body.get("messages", [])])
        usage = {
            "input_tokens": prompt,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": len(words),
        }
        message: dict[str, Any] = {
            "id": f"msg_fake{self._id()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(words)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        }
        if not self.omit_usage:
            message["usage"] = usage
        if not body.get("stream"):
            return web.Response(body=self._dumps(message), content_type="application/json")
        start = {**message, "content": [], "stop_reason": None}
        if not self.omit_usage:
            start["usage"] = {**usage, "output_tokens": 1}
        events = [
            self._event("message_start", {"type": "message_start", "message": start}),
            self._event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            self._event("ping", {"type": "ping"}),
        ]
        for word in words:
            events.append(
                self._event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
            )
        events.append(self._event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if not self.omit_usage:
            delta["usage"] = {"output_tokens": len(words)}
        events.append(self._event("message_delta", delta))
        events.append(self._event("message_stop", {"type": "message_stop"}))
        return await self._sse(request, events)

    # ---- Gemini --------------------------------------------------------------------------

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model, _, method = request.match_info["target"].rpartition(":")
        status = self._status(request)
        if status != 200:
            names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                     429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}  # fmt: skip
            error = {"code": status, "message": f"fake {status}",
                     "status": names.get(status, "INTERNAL")}  # fmt: skip
            return self._error({"error": error}, status)
        prompt = self._input_tokens(body.get("contents", body.get("requests", "")))
        if method == "countTokens":
            return self._json(request, {"totalTokens": prompt})
        if method == "embedContent":
            return self._json(request, {"embedding": {"values": [0.1, -0.2, 0.3]}})
        if method == "batchEmbedContents":
            items = body.get("requests") or []
            return self._json(request, {"embeddings": [{"values": [0.1]} for _ in items]})
        config = body.get("generationConfig") or {}
        words = self._words({"model": model, "max_tokens": config.get("maxOutputTokens")})
        response_id = f"gem-fake{self._id()}"

        def usage(done: int) -> dict[str, Any]:
            if self.usage_override is not None:
                return self.usage_override
            out = {"promptTokenCount": prompt + self.cached_tokens,
                   "candidatesTokenCount": done,
                   "totalTokenCount": prompt + self.cached_tokens + done + self.thoughts_tokens,
                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}  # fmt: skip
            if self.thoughts_tokens:
                out["thoughtsTokenCount"] = self.thoughts_tokens
            if self.cached_tokens:
                out["cachedContentTokenCount"] = self.cached_tokens
            return out

        def chunk(text: str, done: int, last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"},
                                         "index": 0}  # fmt: skip
            if last:
                candidate["finishReason"] = "STOP"
            out = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
            if not self.omit_usage:
                out["usageMetadata"] = usage(done)
            return out

        if method == "generateContent":
            return self._json(request, chunk("".join(words), len(words), True))
        if method != "streamGenerateContent":
            return self._error({"error": {"code": 404, "message": "no such method",
                                          "status": "NOT_FOUND"}}, 404)  # fmt: skip
        if request.query.get("alt") != "sse":  # a JSON array of the chunks
            chunks = [chunk(w, i + 1, i == len(words) - 1) for i, w in enumerate(words)]
            return self._json(request, chunks)
        events = [
            b"data: " + self._dumps(chunk(w, i + 1, i == len(words) - 1)) + b"\r\n\r\n"
            for i, w in enumerate(words)
        ]
        return await self._sse(request, events)

    # ---- Azure OpenAI --------------------------------------------------------------------

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        deployment = request.match_info.get("deployment")
        answer = await self._chat(request)
        body = self.requests[-1].json() or {}
        model = self.azure_models.get(deployment or str(body.get("model", "")))
        if model and isinstance(answer, web.Response) and answer.body:
            raw = answer.body if isinstance(answer.body, bytes) else b""
            data = json.loads(raw)
            data["model"] = model
            answer.body = self._dumps(data)
        return answer

    async def _azure_embed(self, request: web.Request) -> web.StreamResponse:
        return await self._embeddings(request)

    # ---- Bedrock -------------------------------------------------------------------------

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        from agent_sre.gateway.eventstream import encode_message

        body = await self._record(request)
        if self.aws_credentials is not None:
            self.signatures.append(self._signature_holds(request, self.requests[-1].body))
        status = self._status(request)
        if status != 200:
            codes = {400: "ValidationException", 403: "AccessDeniedException",
                     429: "ThrottlingException", 500: "InternalServerException"}  # fmt: skip
            answer = self._error({"message": f"fake {status}"}, status)
            answer.headers["x-amzn-ErrorType"] = codes.get(status, "InternalServerException")
            return answer
        model = request.match_info["model"]
        config = body.get("inferenceConfig") or {}
        words = self._words({"model": model, "max_tokens": config.get("maxTokens")})
        prompt = self._input_tokens([body.get("system", ""), body.get("messages", [])])
        total = prompt + len(words) + self.cached_tokens
        usage: dict[str, Any] = {"inputTokens": prompt, "outputTokens": len(words),
                                 "totalTokens": total}  # fmt: skip
        if self.cached_tokens:
            usage["cacheReadInputTokens"] = self.cached_tokens
        if self.usage_override is not None:
            usage = self.usage_override
        if request.path.endswith("/converse"):
            out: dict[str, Any] = {
                "output": {"message": {"role": "assistant",
                                       "content": [{"text": "".join(words)}]}},
                "stopReason": "end_turn",
                "metrics": {"latencyMs": 12},
            }  # fmt: skip
            if not self.omit_usage:
                out["usage"] = usage
            return self._json(request, out)

        def event(name: str, payload: dict[str, Any]) -> bytes:
            headers = {":event-type": name, ":content-type": "application/json",
                       ":message-type": "event"}  # fmt: skip
            return encode_message(headers, self._dumps({**payload, "p": "abcdefgh"}))

        events = [event("messageStart", {"role": "assistant"})]
        events += [
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
            for word in words
        ]
        events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(event("messageStop", {"stopReason": "end_turn"}))
        if not self.omit_usage:
            events.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        for index, data in enumerate(events):
            if index and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if index == self.cut_stream_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(data)
        await response.write_eof()
        return response

    def _signature_holds(self, request: web.Request, body: bytes) -> bool:
        """Whether the SigV4 signature was made with :attr:`aws_credentials` over what came."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        assert self.aws_credentials is not None
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return False
        fields = dict(
            part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",")
        )
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or scope[0] != self.aws_credentials[0]:
            return False
        signed = fields.get("SignedHeaders", "").split(";")
        headers = {name: request.headers.get(name, "") for name in signed}
        url = f"http://{request.headers.get('Host', '')}{request.raw_path}"
        copy = AWSRequest(method=request.method, url=url, data=body, headers=headers)
        copy.context["timestamp"] = request.headers.get("X-Amz-Date", "")
        signer = SigV4Auth(Credentials(*self.aws_credentials), scope[3], scope[2])
        canonical = signer.canonical_request(copy)
        expected = signer.signature(signer.string_to_sign(copy, canonical), copy)
        return expected == fields.get("Signature")

    # ---- tools ---------------------------------------------------------------------------

    async def _tool(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.status != 200:
            return web.json_response({"error": f"fake {self.status}"}, status=self.status)
        return web.json_response({"ok": True, "path": request.path, "echo": body})

    async def _ndjson(self, request: web.Request) -> web.StreamResponse:
        """An unsized, non-SSE stream (NDJSON lines, ``chunk_delay`` apart)."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for index in range(self.reply_words):
            if index and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await response.write(self._dumps({"line": index}) + b"\n")
        await response.write_eof()
        return response

    async def _mcp(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.status != 200:
            return web.json_response({"error": f"fake {self.status}"}, status=self.status)
        rid = body.get("id")
        method = body.get("method")
        params = body.get("params") or {}
        if method != "tools/call":
            return web.json_response({"jsonrpc": "2.0", "id": rid, "result": {}})
        name = params.get("name")
        if name == "missing":
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "error": {"code": -32602, "message": "Unknown tool: missing"},
                }
            )
        failed = name == "failing"
        return web.json_response(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {
                    "content": [{"type": "text", "text": "tool failed" if failed else "ok"}],
                    "isError": failed,
                },
            }
        )


async def _serve(
    host: str,
    port: int,
    models: dict[str, Any],
    reply_text: str | None = None,
    gzip: bool = False,
    delay: float = 0.0,
) -> None:
    fake = FakeProvider(
        host=host,
        port=port,
        models={k: ModelQuality(**v) for k, v in models.items()},
        reply_text=reply_text,
        gzip=gzip,
        chunk_delay=delay,
    )
    print(await fake.start(), flush=True)
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--models",
        type=json.loads,
        default={},
        help='per-model quality as JSON, e.g. {"gpt-4.1": {"error_rate": 0.5}}',
    )
    parser.add_argument("--reply-text", default=None, help="the words every reply is made of")
    parser.add_argument("--gzip", action="store_true", help="gzip JSON when the client accepts")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve(args.host, args.port, args.models, args.reply_text, args.gzip, args.chunk_delay)
        )


if __name__ == "__main__":
    main()
