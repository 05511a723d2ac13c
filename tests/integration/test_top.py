"""``agent-sre top`` against a real seeded daemon: driven through a pseudo-terminal as a person
at a terminal (or ``kubectl exec -it``) would, ``q`` quits and the terminal is left as it was;
without a terminal (``kubectl exec`` without ``-t``, a pipe) or with ``--once`` it prints one
view and exits. What clients sent (agent ids with markup or escape sequences) is shown inert."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import seeded
from tests.support.receivers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.daemon import DaemonProcess

ROOT = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "agent_sre_daemon.cli"]
HOSTILE_AGENT = "[/bold]evil[red]"
"""An agent id that is rich markup (it would crash or restyle a careless table)."""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge

    workdir = tmp_path_factory.mktemp("top")
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
        seeded.traffic(process, rounds=3)
        _call_as(process, HOSTILE_AGENT)
        yield process
    finally:
        process.stop(timeout=15)
        provider.terminate()
        provider.wait(10)


def _call_as(daemon: DaemonProcess, agent: str) -> None:
    request = urllib.request.Request(
        daemon.url("proxy", "/search/q"),
        data=b"{}",
        headers={"X-Agent-Id": agent, "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def top(*args: str, admin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "top", "--admin", admin, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_once_prints_one_view_of_the_seeded_daemon(daemon: DaemonProcess) -> None:
    result = top("--once", admin=daemon.addresses["admin"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for seen in ("SLOs, worst first (2)", "agent-llm", "tool-calls", "per-agent",
                 "spender-cap", "Agents, by spend", "a1", "a2", "spender",
                 "Open incidents", HOSTILE_AGENT):  # fmt: skip
        assert seen in out, seen
    assert "\x1b[" not in out  # no colours or cursor movement into a pipe
    assert "q quits" not in out


def test_without_a_terminal_it_prints_one_view_and_exits(daemon: DaemonProcess) -> None:
    # as `kubectl exec` without -t: no --once needed, nothing waits for a key
    result = top(admin=daemon.addresses["admin"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("agent-sre top") == 1
    assert "agent-llm" in result.stdout


def test_rows_cuts_each_table_and_says_so(daemon: DaemonProcess) -> None:
    result = top("--once", "--rows", "1", admin=daemon.addresses["admin"])
    assert result.returncode == 0, result.stderr
    assert "SLOs, worst first (top 1 of 2)" in result.stdout
    assert "Agents, by spend (top 1 of 4)" in result.stdout


def _controlling_terminal() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # a session of its own, as a login gives: Ctrl-C interrupts it even when the tests run
    # as a background job (which starts with SIGINT ignored, and would pass that on)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """The command on a pseudo-terminal of 120 x 40, read as a terminal would receive it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.before = termios.tcgetattr(slave)
        self.slave = slave
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        self.proc = subprocess.Popen(
            [*CLI, "top", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
            preexec_fn=_controlling_terminal,  # as a login or `kubectl exec -it` gives one
        )
        self.screen = b""

    def read_until(self, *needles: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while not all(n in self.screen for n in needles):
            left = deadline - time.monotonic()
            assert left > 0, f"never shown: {needles}; got {self.screen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the command ended and closed the terminal
                    break
        return self.screen

    def press(self, key: bytes) -> None:
        os.write(self.master, key)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


def test_live_view_redraws_and_q_quits_leaving_the_terminal_as_it_was(
    daemon: DaemonProcess,
) -> None:
    terminal = Terminal("--admin", daemon.addresses["admin"], "--interval", "0.3")
    try:
        terminal.read_until(b"\x1b[?1049h", b"agent-llm", b"per-agent", b"spender", b"q quits")
        # live: it reads again; a new agent appears without a key pressed
        _call_as(daemon, "late-agent")
        terminal.read_until(b"late-agent")
        terminal.press(b"x")  # other keys do nothing
        time.sleep(0.5)
        assert terminal.proc.poll() is None
        terminal.press(b"q")
        assert terminal.proc.wait(10) == 0
        terminal.read_until(b"\x1b[?1049l", timeout=5)  # the screen it found is back
        assert termios.tcgetattr(terminal.slave) == terminal.before  # echo, canonical mode
    finally:
        terminal.close()


def test_live_view_ends_on_ctrl_c_and_restores_the_terminal(daemon: DaemonProcess) -> None:
    terminal = Terminal("--admin", daemon.addresses["admin"])
    try:
        terminal.read_until(b"agent-llm")
        terminal.press(b"\x03")  # the terminal turns it into SIGINT
        assert terminal.proc.wait(10) == 0
        assert termios.tcgetattr(terminal.slave) == terminal.before
    finally:
        terminal.close()


def test_a_daemon_going_away_shows_in_the_view_and_it_keeps_going(tmp_path: Path) -> None:
    # nothing listens: the live view says so and keeps trying until q
    terminal = Terminal("--admin", f"127.0.0.1:{free_port()}", "--interval", "0.2")
    try:
        screen = terminal.read_until(b"cannot reach the admin API")
        assert b"Traceback" not in screen
        terminal.press(b"q")
        assert terminal.proc.wait(10) == 0
    finally:
        terminal.close()


def test_once_against_nothing_fails_with_the_reason() -> None:
    result = top("--once", admin=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach the admin API" in result.stderr
    assert "Traceback" not in result.stderr


class _Odd(BaseHTTPRequestHandler):
    """An admin API that answers in shapes the daemon never uses (a wrong --admin)."""

    ANSWERS: dict[str, Any] = {
        "/v1/slos": {"slos": [{"name": 5, "overall": "x", "status": ["?"], "target": "high",
                               "instances": [{"alerts": "no"}]}, "junk"]},
        "/v1/budgets": {"budgets": [{"name": "b", "limit_usd": 0, "subjects": [
            {"subject": "s", "spent_usd": float("inf")}]}, {"limit_usd": "1"}]},
        "/v1/agents": {"agents": {"not": "a list"}},
        "/v1/incidents": [1, 2, 3],
    }  # fmt: skip

    def do_GET(self) -> None:  # noqa: N802
        answer = self.ANSWERS.get(self.path.split("?")[0], {})
        body = json.dumps(answer).replace("Infinity", "1e999").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_answers_of_unexpected_shapes_are_shown_as_they_can_be_never_a_crash() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = top("--once", admin=f"127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "incidents: /v1/incidents: not a JSON object" in result.stdout
    assert "SLOs, worst first (1)" in result.stdout
    assert "Agents, by spend (0)" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["--interval", "0"], ["--interval", "nan"], ["--interval", "x"], ["--rows", "0"],
     ["--rows", "1.5"], ["--interval", "-1"]],
)  # fmt: skip
def test_bad_options_are_bad_usage(args: list[str]) -> None:
    result = top(*args, admin="127.0.0.1:1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_values_clients_sent_are_inert_text() -> None:
    from rich.console import Console

    from agent_sre_daemon.cli.top import plain

    console = Console(width=200, force_terminal=True, color_system="truecolor")
    with console.capture() as captured:
        console.print(plain("a\x1b[2Jb\x07c[/bold]\u202ed" + "x" * 500))
    shown = captured.get()
    assert "\x1b[2J" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "a\\x1b[2Jb\\x07c[/bold]\\u202ed" in shown  # seen, escaped
    assert shown.rstrip("\n").endswith("x~") and len(shown.rstrip("\n")) == 80  # cut


def test_a_reader_that_went_away_ends_it_quietly() -> None:
    # agent-sre top --once | head: as every command, 141 and no traceback
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [*CLI, "top", "--once", "--admin", f"127.0.0.1:{free_port()}"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert b"Traceback" not in done.stderr
