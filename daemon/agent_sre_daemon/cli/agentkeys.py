"""``agent-sre agent-key new AGENT``: issues an agent key. The key is printed once (give it to
the agent as its API key); the configuration takes only its SHA-256 digest."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rich.text import Text

from agent_sre.gateway.agent_keys import key_digest, new_key
from agent_sre_daemon.cli import exits, output

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("agent-key", help="issue agent keys (the key decides the identity)")
    actions = keys.add_subparsers(title="actions", required=True)
    new = actions.add_parser("new", help="a new key for an agent (printed once)")
    new.add_argument("agent", metavar="AGENT_ID")
    output.add_json_option(new)
    new.set_defaults(func=cmd_new)


def cmd_new(args: argparse.Namespace) -> int:
    agent = args.agent.strip()
    if not agent:
        return output.fail("agent-key new: AGENT_ID must not be empty", exits.USAGE)
    key = new_key(os.urandom)
    digest = key_digest(key)
    data = {"agent": agent, "key": key, "sha256": digest}

    def render(data: dict[str, str]) -> Text:
        return Text(
            f"agent key for {agent} (shown once; the agent sends it as its API key):\n"
            f"  {key}\n"
            "add to the configuration (proxy.agent_keys.keys):\n"
            f'  - {{agent: "{agent}", sha256: "{digest}"}}',
            no_wrap=True,
            overflow="ignore",
        )

    return output.show(args, data, render)
