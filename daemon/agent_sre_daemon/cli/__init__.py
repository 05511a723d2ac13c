"""The ``agent-sre`` command: one module per command group, one admin client, one printer."""

from agent_sre_daemon.cli.main import main

__all__ = ["main"]
