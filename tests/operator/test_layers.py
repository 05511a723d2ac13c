"""The operator uses the core for every validation and never imports the daemon shell."""

from __future__ import annotations

import ast
from pathlib import Path

OPERATOR = Path(__file__).parents[2] / "operator" / "agent_sre_operator"


def test_the_operator_never_imports_the_daemon() -> None:
    offenders = []
    for path in OPERATOR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "agent_sre_daemon"
            ]
    assert list(OPERATOR.rglob("*.py"))
    assert offenders == []
