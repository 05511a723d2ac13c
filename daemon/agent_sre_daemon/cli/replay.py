"""``agent-sre replay``: recent traces of a running daemon, their span trees, export as
OTLP/JSON or as a cassette, replay sessions, a cassette server, and the diff of two runs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.tree import Tree

from agent_sre.replay.cassette import CassetteError, loads
from agent_sre_daemon.cli import exits, output
from agent_sre_daemon.cli.client import (
    AdminClient,
    AdminError,
    add_admin_option,
    add_since_option,
    show_get,
    since_param,
)

if TYPE_CHECKING:
    import argparse

    from rich.text import Text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="recent traces, captured calls, replay and diff",
        description="Traces kept by a running daemon's trace buffer; replay of a recorded run.",
    )
    commands = replay.add_subparsers(title="replay commands")

    listing = commands.add_parser("list", help="recent traces, newest first (GET /v1/traces)")
    listing.add_argument("--agent", default="", help="only traces of this agent id")
    add_since_option(listing, "traces")
    listing.add_argument("--errors", action="store_true", help="only traces with an error")
    listing.add_argument("--kind", default="", help="only traces with a span of this kind")
    listing.add_argument("--limit", type=int, default=50)
    _common(listing, cmd_list)

    show = commands.add_parser(
        "show", help="a trace's span tree (kinds, durations, models, tokens, costs, faults, errors)"
    )
    show.add_argument("trace_id")
    _common(show, cmd_show)

    export = commands.add_parser("export", help="a trace as OTLP/JSON, or as a cassette")
    export.add_argument("trace_id")
    export.add_argument(
        "--cassette",
        metavar="FILE",
        help="write a self-contained cassette (trace and captured calls)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write OTLP/JSON here")
    add_admin_option(export)
    export.set_defaults(func=cmd_export)

    serve = commands.add_parser(
        "serve",
        help="answer an agent's calls from a recorded run",
        description="With TRACE_ID: opens a replay session in the running daemon (bound to "
        "--prefix, or to the X-Agent-SRE-Replay header). With --cassette: serves the cassette "
        "itself with no daemon, until interrupted.",
    )
    serve.add_argument("trace_id", nargs="?", help="a trace in the daemon's buffer")
    serve.add_argument("--cassette", metavar="FILE", help="serve this cassette (no daemon)")
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8790",
        metavar="HOST:PORT",
        help="where the cassette server listens (port 0 picks one)",
    )
    serve.add_argument("--prefix", default="", help="route prefix the session answers")
    serve.add_argument("--timing", action="store_true", help="stream with recorded timing")
    serve.add_argument(
        "--passthrough",
        action="store_true",
        help="send calls with no recorded match to the upstream",
    )
    _common(serve, cmd_serve)

    diff = commands.add_parser("diff", help="what changed between two runs")
    diff.add_argument("a", help="trace id of the first run")
    diff.add_argument("b", help="trace id of the second run")
    _common(diff, cmd_diff)


def _common(parser: argparse.ArgumentParser, func: Any) -> None:
    add_admin_option(parser)
    output.add_json_option(parser)
    parser.set_defaults(func=func)


def cmd_list(args: argparse.Namespace) -> int:
    query = {"agent": args.agent, "kind": args.kind, "limit": str(args.limit)}
    if args.errors:
        query["status"] = "error"
    query["since"] = since_param(args)
    return show_get(args, traces_table, "/v1/traces", query)


def traces_table(data: Any) -> Table:
    rows = data.get("traces", [])
    table = Table(title=f"traces ({len(rows)})", title_justify="left")
    for column in (
        "TRACE",
        "START (UTC)",
        "ROOT",
        "AGENT",
        "SPANS",
        "ERRORS",
        "SECONDS",
        "COST USD",
        "CALLS",
        "KEPT BECAUSE",
    ):
        table.add_column(column, overflow="fold")
    for t in rows:
        table.add_row(
            t["trace_id"],
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t["start"])),
            t["root"],
            t["agent"],
            str(t["spans"]),
            str(t["errors"]),
            f"{t['duration_seconds']:.3f}",
            f"{t['cost_usd']:.6f}",
            str(t["calls_captured"]),
            ", ".join(t["kept_because"]),
        )
    return table


def cmd_show(args: argparse.Namespace) -> int:
    return show_get(args, span_tree, f"/v1/traces/{args.trace_id}/spans")


def span_tree(data: Any) -> Tree:
    trace = data["trace"]
    tree = Tree(
        f"trace {trace['trace_id']} — {trace['spans']} spans, "
        f"{trace['duration_seconds']:.3f}s, ${trace['cost_usd']:.6f}"
    )
    stack: list[Tree] = [tree]
    for row in data["spans"]:
        del stack[row["depth"] + 1 :]
        stack.append(stack[-1].add(_span_line(row)))
    return tree


def _span_line(row: dict[str, Any]) -> Text:
    # every part through the CLI's gate: span names and errors are what clients sent
    parts: list[tuple[str, str]] = [
        (str(row["kind"] or "span"), "bold"),
        (f" {row['name']}", ""),
        (f"  {row['duration_seconds'] * 1000:.1f} ms", ""),
    ]
    if row.get("model"):
        parts.append((f"  model={row['model']}", ""))
    if row.get("input_tokens") is not None or row.get("output_tokens") is not None:
        tokens = f"{row.get('input_tokens') or 0}/{row.get('output_tokens') or 0}"
        parts.append((f"  tokens={tokens}", ""))
    if row.get("cost_usd") is not None:
        parts.append((f"  cost=${row['cost_usd']:.6f}", ""))
    if row.get("fault"):
        parts.append((f"  fault={row['fault']}", "magenta"))
    if row.get("error"):
        parts.append((f"  error={row['error']}", "red"))
    line = output.inert("")
    for text, style in parts:
        line.append_text(output.inert(text, style=style))
    return line


def cmd_export(args: argparse.Namespace) -> int:
    client = AdminClient.from_args(args)
    path = f"/v1/traces/{args.trace_id}" + ("/cassette" if args.cassette else "")
    try:
        data = client.get(path)
    except AdminError as exc:
        return output.fail(exc)
    target = args.cassette or args.output
    text = json.dumps(data, indent=1 if args.cassette else None) + "\n"
    if not target:
        sys.stdout.write(text)
        return exits.OK
    try:
        Path(target).write_text(text)
    except OSError as exc:
        return output.fail(f"cannot write {target}: {exc}")
    what = f"cassette with {len(data['exchanges'])} calls" if args.cassette else "OTLP/JSON"
    print(f"wrote {what} of trace {args.trace_id} to {target}", file=sys.stderr)
    return exits.OK


def cmd_serve(args: argparse.Namespace) -> int:
    if args.cassette:
        if args.trace_id:
            return output.fail("give a TRACE_ID or --cassette, not both", exits.USAGE)
        return _serve_cassette(args)
    if not args.trace_id:
        return output.fail("give a TRACE_ID (a daemon session) or --cassette FILE", exits.USAGE)
    body = {
        "trace_id": args.trace_id,
        "prefix": args.prefix,
        "timing": args.timing,
        "passthrough": args.passthrough,
    }
    try:
        session = AdminClient.from_args(args).post("/v1/replay/sessions", body)
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(session)
    else:
        bound = f"calls under {session['prefix']}" if session["prefix"] else "calls"
        output.say(
            f"replay session {session['id']}: {session['calls']} recorded calls of trace "
            f"{session['trace_id']}; answers {bound} with the header {session['header']}"
        )
    return exits.OK


def _serve_cassette(args: argparse.Namespace) -> int:
    from agent_sre_daemon.replay.serve import CassetteServer, serve_until_stopped

    try:
        cassette = loads(Path(args.cassette).read_bytes(), args.cassette)
    except OSError as exc:
        return output.fail(f"cannot read {args.cassette}: {exc}")
    except CassetteError as exc:
        return output.fail(exc)
    server = CassetteServer(cassette, timing=args.timing)
    try:
        asyncio.run(serve_until_stopped(server, args.listen))
    except (OSError, ValueError) as exc:
        return output.fail(f"cannot listen on {args.listen}: {exc}")
    return exits.OK


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        data = AdminClient.from_args(args).get("/v1/traces/diff", {"a": args.a, "b": args.b})
    except AdminError as exc:
        return output.fail(exc)
    if args.json:
        output.print_json(data)
    elif not data["changes"]:
        output.say(f"no difference between {args.a} and {args.b}")
    else:
        output.say(f"{len(data['changes'])} changes from {args.a} to {args.b}:")
        for line in data["summary"]:
            output.say(f"  {line}")
    return exits.OK
