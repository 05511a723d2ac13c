"""``agent-sre certify AGENT [--version V]``: the certification verdict of an agent version,
every criterion with its evidence and what is missing for the next tier, as text,
``--format markdown`` (for a pull request or a change ticket) or ``--json``."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from agent_sre.certification.render import as_markdown, as_text
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import AdminClient, AdminError, add_admin_option

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certify = sub.add_parser(
        "certify",
        help="the certification tier of an agent version, from evidence",
        description="Prints the verdict on an agent version (the latest seen unless "
        "--version): its tier, every criterion with its evidence, and what is missing for "
        "the next tier.",
    )
    certify.add_argument("agent", metavar="AGENT")
    certify.add_argument("--version", dest="agent_version", default=None,
                         help="the agent version (default: the latest seen)")  # fmt: skip
    certify.add_argument("--format", choices=("text", "markdown"), default="text",
                         help="text (default) or markdown")  # fmt: skip
    add_admin_option(certify)
    output.add_json_option(certify)
    certify.set_defaults(func=cmd_certify)


def cmd_certify(args: argparse.Namespace) -> int:
    path = f"/v1/certifications/{urllib.parse.quote(args.agent, safe='')}"
    query = {} if args.agent_version is None else {"version": args.agent_version}
    try:
        verdict = AdminClient.from_args(args).get(path, query)
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(verdict)
    elif args.format == "markdown":
        print(as_markdown(verdict))
    else:
        print(as_text(verdict))
    return exits.OK
