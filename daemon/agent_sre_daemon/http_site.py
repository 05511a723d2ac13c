"""Starting an aiohttp application on a ``host:port`` endpoint (port 0: a free one)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_sre.units import parse_endpoint


async def start_site(
    app: web.Application, endpoint: str, **runner_args: Any
) -> tuple[web.AppRunner, str]:
    """Serves ``app`` on ``endpoint``; returns the runner (to clean up) and the bound address."""
    runner = web.AppRunner(app, access_log=None, **runner_args)
    await runner.setup()
    host, port = parse_endpoint(endpoint)
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    shown_host = endpoint.strip().rpartition(":")[0]
    return runner, f"{shown_host}:{runner.addresses[0][1]}"
