"""A real A2A agent for tests: the official SDK's server (JSON-RPC binding, 1.0 and 0.3
method names, streaming, agent card) under uvicorn on a loopback port, in a thread.

What the agent does depends on the text it is sent: ``fail`` ends the task ``failed``,
``hang`` never answers, ``llm:<url>`` makes an OpenAI chat call to ``<url>`` (the proxy)
with the ``traceparent`` it received before completing; anything else completes the task
with an ``echo`` artifact. Every request's headers are kept in :attr:`A2AAgent.seen`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware

if TYPE_CHECKING:
    from a2a.server.agent_execution import RequestContext
    from a2a.server.events import EventQueue
    from starlette.requests import Request
    from starlette.responses import Response


class _Executor(AgentExecutor):
    def __init__(self, agent: A2AAgent) -> None:
        self.agent = agent

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        text = "".join(part.text for part in context.message.parts)
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if text == "hang":
            await asyncio.sleep(3600)
        if text == "fail":
            await updater.failed()
            return
        if text.startswith("llm:"):
            headers = self.agent.last_headers
            forward = {"X-Agent-Id": self.agent.name}
            if "traceparent" in headers:
                forward["traceparent"] = headers["traceparent"]
            async with httpx.AsyncClient() as client:
                await client.post(
                    text[4:],
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
                    headers=forward,
                )
        await updater.add_artifact([Part(text="echo")])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class A2AAgent:
    """The SDK's A2A server on ``127.0.0.1:<free port>``; ``url`` is its base URL."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.seen: list[dict[str, str]] = []
        self.last_headers: dict[str, str] = {}
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        card = AgentCard(
            name=name,
            description="an agent that echoes",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(
                    protocol_binding="JSONRPC", url=self.url + "/", protocol_version="1.0"
                )
            ],
            capabilities=AgentCapabilities(streaming=True),
            default_input_modes=["text"],
            default_output_modes=["text"],
            skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
        )
        handler = DefaultRequestHandler(
            agent_executor=_Executor(self), task_store=InMemoryTaskStore(), agent_card=card
        )
        app = Starlette(
            routes=[
                *create_agent_card_routes(card),
                *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True),
            ],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._keep_headers)],
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def _keep_headers(self, request: Request, call_next: Any) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(headers)
        self.last_headers = headers
        response: Response = await call_next(request)
        return response

    def start(self) -> A2AAgent:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the A2A agent did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> A2AAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
