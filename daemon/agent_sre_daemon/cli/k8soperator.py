"""``agent-sre operator``: the Kubernetes operator (package ``agent_sre_operator``,
docs/operator.md), run from the same image as the daemon."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

OPERATOR_CLI = "agent_sre_operator.cli"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "operator",
        help="run the Kubernetes operator (AgentSLO, AgentBudget, AgentChaosExperiment, "
        "AgentRollout -> the daemons' configuration)",
    )
    # the operator is a separate package: the daemon never imports it at start-up
    cli = importlib.import_module(OPERATOR_CLI)
    cli.add_arguments(parser)
    parser.set_defaults(func=cli.main)
