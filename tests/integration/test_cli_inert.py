"""Every ``agent-sre`` command that prints what a daemon answered, walked from the CLI's own
parser (a new command is picked up here without a line of this file), run against a real
daemon seeded with hostile client text: agent ids from ``X-Agent-Id`` and from spans, span
names, incident titles made of them. Each command exits 0, prints no raw ESC byte (nor any
other control or bidi character) and shows what the client sent literally, escaped
(``agent_sre_daemon.cli.output`` is the one gate)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from agent_sre_daemon.cli import output
from agent_sre_daemon.cli.main import build_parser, main
from tests.support import seeded

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]
HOSTILE = (
    "h1[/bold]x",  # markup a careless table chokes on (MarkupError)
    "h2[red]y\x1b[2J",  # markup and an escape sequence that clears the screen
    "h3\x9b31mz",  # a C1 control sequence introducer
    "h4bidi\u202egnp.exe",  # a right-to-left override
    "h5\nrow\rcr\x07bel",  # a line break that would fake a table row, a carriage return, a bell
)
"""Each starts with its own printable head (``h1``...): where a command shows the head, it
must show the whole id, escaped."""
LONG = "h9long-" + "\x1b[5m" * 300 + "w" * 1500
"""A very long id, escape sequences all along it (a command may cut it)."""
CHANGES = {"start", "stop", "promote", "pause", "resume", "abort", "delete", "ack", "resolve",
           "block", "unblock", "put", "lift", "reload", "serve"}  # fmt: skip
"""Commands that ask the daemon to change something: it may refuse in the state the earlier
commands left (exit 1 with its one-line reason); every other command exits 0."""
SHOWN_BY = ("slo show", "incidents list", "replay list")
"""Commands that must show every hostile id (the walk alone could find nothing to check)."""
FORBIDDEN = ("\x1b", "\x9b", "\u202e", "\x07", "\r")


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*path, name))
            return
    yield path, parser


DAEMON_COMMANDS = [
    (path, parser)
    for path, parser in _leaves(build_parser())
    if any("--admin" in a.option_strings for a in parser._actions)
]
"""Every command that talks to a daemon (it has ``--admin``), from the CLI's parser."""


def _send_spans(daemon: DaemonProcess) -> None:
    """Per hostile id: LLM spans that fail (the per-agent SLO burns, an incident opens with
    the id in its title), named after the id (the trace buffer keeps the names)."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for agent in (*HOSTILE, LONG):
        trace = os.urandom(16)
        for _ in range(20):
            span = scope.spans.add()
            span.trace_id, span.span_id, span.name = trace, os.urandom(8), agent
            span.start_time_unix_nano, span.end_time_unix_nano = now - 1_000_000, now
            span.status.code = Status.STATUS_CODE_ERROR
            span.attributes.extend(
                [
                    KeyValue(key="agent.id", value=AnyValue(string_value=agent)),
                    KeyValue(key="agent.span.kind", value=AnyValue(string_value="LLM_INFERENCE")),
                ]
            )
    post = urllib.request.Request(
        daemon.url("otlp_http", "/v1/traces"),
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    urllib.request.urlopen(post, timeout=10).close()


def _call_as(daemon: DaemonProcess, agent: str) -> None:
    request = urllib.request.Request(
        daemon.url("proxy", "/search/q"),
        data=b"{}",
        headers={"X-Agent-Id": agent, "Content-Type": "application/json"},
    )
    # a header the client library or the daemon refuses: the spans carry the id anyway
    with contextlib.suppress(urllib.error.HTTPError, ValueError):
        urllib.request.urlopen(request, timeout=10).close()


def _admin(daemon: DaemonProcess, path: str) -> Any:
    request = urllib.request.Request(
        daemon.url("admin", path), headers={"Authorization": f"Bearer {seeded.TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

    workdir = tmp_path_factory.mktemp("inert")
    provider = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert provider.stdout is not None
    url = provider.stdout.readline().strip()
    base = merge(LOOPBACK_PORTS, {"state_dir": str(workdir / "state"), "node": {"name": "n1"}})
    process = DaemonProcess(workdir, merge(base, seeded.config(url))).start()
    try:
        seeded.traffic(process, rounds=1)
        for agent in (*HOSTILE, LONG):
            _call_as(process, agent)
        _send_spans(process)
        deadline = time.monotonic() + 30  # the SLOs are evaluated every 10 s
        while time.monotonic() < deadline:
            titles = " ".join(i["title"] for i in _admin(process, "/v1/incidents")["incidents"])
            if all(agent in titles for agent in HOSTILE):
                break
            time.sleep(0.5)
        yield process
    finally:
        process.stop(timeout=15)
        provider.terminate()
        provider.wait(10)


def _arguments(daemon: DaemonProcess, path: tuple[str, ...], parser: Any) -> list[list[str]]:
    """The positional arguments to run ``path`` with: ids of what the daemon holds, the
    hostile ones among them."""
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    if not positionals:
        return [[]]
    incidents = _admin(daemon, "/v1/incidents")["incidents"]
    traces = [t["trace_id"] for t in _admin(daemon, "/v1/traces")["traces"]]
    runs = [r["id"] for r in _admin(daemon, "/v1/chaos/runs").get("runs", [])]
    names = {"slo": "agent-llm", "rollout": "mini", "chaos": "tool-errors"}
    values: dict[str, list[str]] = {
        "agent_id": [*HOSTILE[:2], HOSTILE[3]],
        "agent": [*HOSTILE[:2], HOSTILE[3]],
        "incident_id": [i["id"] for i in incidents if any(h in i["title"] for h in HOSTILE)][:2],
        "trace_id": traces[:2],
        "run_id": runs[:1],
        "name": [names.get(path[0], "")],
        "a": traces[:1],
        "b": traces[1:2],
    }
    chosen = [values[dest] for dest in positionals]
    assert all(chosen), f"{' '.join(path)}: nothing seeded for {positionals}"
    return [list(combo) for combo in zip(*chosen, strict=False)]


def _order(item: tuple[tuple[str, ...], Any]) -> int:
    return 1 if item[0][-1] in CHANGES else 0


def test_the_walk_finds_the_commands_that_print_daemon_data() -> None:
    found = {" ".join(path) for path, _ in DAEMON_COMMANDS}
    for known in ("agents blocked", "budgets", "incidents list", "slo list", "top", "signals"):
        assert known in found


def test_every_daemon_command_shows_hostile_client_text_inert(daemon: DaemonProcess) -> None:
    admin = daemon.addresses["admin"]
    env = {"AGENT_SRE_ADMIN_TOKEN": seeded.TOKEN}
    failures: list[str] = []
    shown_whole: dict[str, set[str]] = {}
    for path, parser in sorted(DAEMON_COMMANDS, key=_order):
        command = " ".join(path)
        extra = ["--once"] if path == ("top",) else []
        for positional in _arguments(daemon, path, parser):
            argv = [*path, *positional, *extra]
            shown = _run([*argv, "--admin", admin], env)
            label = " ".join(repr(a) for a in argv)
            refused = (
                path[-1] in CHANGES
                and shown.returncode == 1
                and shown.stderr.startswith("agent-sre: ")
                and shown.stderr.count("\n") == 1
            )
            if shown.returncode != 0 and not refused:
                failures.append(f"{label}: exit {shown.returncode}: {shown.stderr[-800:]}")
            for stream in (shown.stdout, shown.stderr):
                bad = [c for c in FORBIDDEN if c in stream]
                if bad or "Traceback" in stream:
                    failures.append(f"{label}: raw {bad} or a traceback in {stream[-300:]!r}")
            for hostile in HOSTILE:
                if any(form in shown.stdout for form in _shown_forms(hostile)):
                    shown_whole.setdefault(command, set()).add(hostile)
                elif hostile[:2] in shown.stdout:
                    whole = inert_text(hostile)
                    failures.append(f"{label}: {hostile!r} not shown whole as {whole}")
    for command in SHOWN_BY:
        missing = set(HOSTILE) - shown_whole.get(command, set())
        if missing:
            failures.append(f"{command}: does not show {sorted(missing)}")
    assert not failures, "\n".join(failures)


def inert_text(value: str, *, lines: bool = False) -> str:
    """The escaped form expected (written out here, not taken from the code under test)."""
    return "".join(
        c
        if c.isprintable() or (lines and c in "\n\t")
        else f"\\x{ord(c):02x}"
        if ord(c) < 0x100
        else f"\\u{ord(c):04x}"
        for c in value
    )


def _shown_forms(hostile: str) -> set[str]:
    """How an id may be shown whole: escaped (in a table, or in a document where newlines
    stay), JSON-escaped (a command printing JSON), and the same for the id as the daemon got
    it in a header (latin-1 bytes read as UTF-8 with surrogate escapes)."""
    forms = set()
    header = "".join(c if ord(c) < 0x80 else chr(0xDC00 + ord(c)) for c in hostile)
    for value in {hostile, header}:
        forms |= {inert_text(value), inert_text(value, lines=True), json.dumps(value)[1:-1]}
    return forms


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command run in this process (``main`` as the console script calls it), with what
    it writes to stdout and stderr captured as a pipe would get it."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        # wide enough that no cell is folded: the check reads each id on one line
        mock.patch.object(output, "WIDTH_WHEN_PIPED", 2000),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # a crash is what this test is for: shown as one
            err.write(traceback.format_exc())
            code = -1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)
