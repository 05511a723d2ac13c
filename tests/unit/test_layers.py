"""The one layer rule: the engine library never imports the daemon shell."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "agent_sre"


def test_agent_sre_never_imports_the_daemon() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "agent_sre_daemon"
            ]
    assert offenders == []


def test_engines_use_no_io_or_event_loop() -> None:
    forbidden = {
        "asyncio",
        "socket",
        "threading",
        "grpc",
        "aiohttp",
        "sqlite3",
        "redis",
        "subprocess",
    }
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] in forbidden
            ]
    assert offenders == []
