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


def test_the_core_reads_no_clock_and_no_environment() -> None:
    """Time and the environment come in as parameters (the daemon's clock, a mapping)."""
    forbidden_calls = {
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "perf_counter"),
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("date", "today"),
        ("os", "getenv"),
        ("os", "environ"),
    }
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in forbidden_calls:
                    offenders.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module in ("time", "os", "datetime"):
                names = {alias.name for alias in node.names}
                bad = names & {"time", "time_ns", "monotonic", "perf_counter", "environ", "getenv"}
                offenders += [f"{path}:{node.lineno}: from {node.module} import {n}" for n in bad]
    assert offenders == []


DAEMON = Path(__file__).parents[2] / "daemon" / "agent_sre_daemon"


def test_the_daemon_reads_time_only_through_its_clock() -> None:
    """Components take the node's clock, so tests move a ManualClock instead of sleeping."""
    offenders = []
    for path in DAEMON.rglob("*.py"):
        if path.name == "clock.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "time"
                and node.attr in ("time", "time_ns", "monotonic", "perf_counter")
            ):
                offenders.append(f"{path}:{node.lineno}: time.{node.attr}")
    assert offenders == []
