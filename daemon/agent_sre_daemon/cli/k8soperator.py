"""``agent-sre operator``: the Kubernetes operator (package ``agent_sre_operator``,
docs/operator.md), run from the same image as the daemon."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from agent_sre_daemon.cli import exits

if TYPE_CHECKING:
    import argparse

OPERATOR_CLI = "agent_sre_operator.cli"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "operator",
        help="run the Kubernetes operator (AgentSLO, AgentBudget, AgentChaosExperiment, "
        "AgentRollout -> the daemons' configuration)",
    )
    # the operator is a separate package, absent from an install without it
    try:
        cli = importlib.import_module(OPERATOR_CLI)
    except ImportError:
        parser.set_defaults(func=_missing)
        return
    cli.add_arguments(parser)
    parser.set_defaults(func=cli.main)


def _missing(args: argparse.Namespace) -> int:
    print(
        "agent-sre operator: the operator package (agent_sre_operator) is not installed",
        file=sys.stderr,
    )
    return exits.USAGE
