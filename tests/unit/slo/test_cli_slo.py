from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import yaml

from agent_sre_daemon.cli import slo as cli_slo

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

BEFORE = """
slos:
  - {name: chat, target: 0.99, sli: {kind: llm_success}}
  - {name: tools, target: 0.995, sli: {kind: tool_call_success}}
"""


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agent-sre")
    cli_slo.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def files(tmp_path: Path, after: str) -> tuple[str, str]:
    (tmp_path / "old.yaml").write_text(BEFORE, "utf-8")
    (tmp_path / "new.yaml").write_text(after, "utf-8")
    return str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")


def test_slo_check_passes_when_targets_only_rise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = files(
        tmp_path,
        BEFORE.replace("0.995", "0.999")
        + "  - {name: new, target: 0.9, sli: {kind: llm_success}}\n",
    )
    assert run(["slo", "check", old, new]) == 0
    assert "ok: 2 SLOs before, 3 after" in capsys.readouterr().out


def test_slo_check_fails_on_a_lowered_target_and_a_removed_slo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = files(tmp_path, "slos:\n  - {name: chat, target: 0.98, sli: {kind: llm_success}}\n")
    assert run(["slo", "check", old, new]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "slo 'chat': target lowered from 0.99 to 0.98",
        "slo 'tools' was removed",
    ]


def test_slo_check_exits_2_on_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = files(tmp_path, "slos:\n  - {name: chat, target: 2, sli: {kind: llm_success}}\n")
    assert run(["slo", "check", old, new]) == 2
    assert "new.yaml:2: slos[0].target: must be between 0 and 1" in capsys.readouterr().err
    assert run(["slo", "check", old, str(tmp_path / "missing.yaml")]) == 2
    dup = "slos:\n  - {name: a, target: 0.9, sli: {kind: llm_success}}\n" * 1
    dup += "  - {name: a, target: 0.9, sli: {kind: llm_success}}\n"
    (tmp_path / "dup.yaml").write_text(dup, "utf-8")
    assert run(["slo", "check", old, str(tmp_path / "dup.yaml")]) == 2
    assert "'a' is already the name of slos[0]" in capsys.readouterr().err


def test_rules_prometheus_prints_or_writes_the_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, _ = files(tmp_path, BEFORE)
    assert run(["rules", "prometheus", "--config", old]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert len(printed["groups"]) == 6
    out = tmp_path / "rules.yaml"
    monkeypatch.setenv("AGENT_SRE_CONFIG", old)
    assert run(["rules", "prometheus", "--output", str(out)]) == 0
    assert yaml.safe_load(out.read_text("utf-8")) == printed


def test_rules_prometheus_exits_2_on_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos:\n  - {name: chat, target: 0.9, sli: {kind: nope}}\n", "utf-8")
    assert run(["rules", "prometheus", "--config", str(bad)]) == 2
    assert "bad.yaml:2: slos[0].sli.kind" in capsys.readouterr().err


def test_bare_group_commands_print_usage_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["slo"]) == 2
    assert "check" in capsys.readouterr().err


def test_the_agent_sre_command_has_the_slo_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent_sre_daemon.cli import main

    old, new = files(tmp_path, "slos: []\n")
    assert main(["slo", "check", old, new]) == 1
    assert "slo 'chat' was removed" in capsys.readouterr().out


class _Admin:
    """A stand-in admin API serving a real engine's reports, as the daemon does."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from agent_sre.slo.engine import SLOEngine
        from tests.unit.slo.helpers import DAY0, feed, slo

        engine = SLOEngine(
            [slo("tasks", description="tasks finish"), slo("idle", sli={"kind": "llm_success"})]
        )
        feed(engine, DAY0, good=95, bad=5)
        now = DAY0 + 30
        engine.evaluate(now)
        reports = {r.name: r.to_dict() for r in engine.reports(now)}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/v1/slos":
                    self._send(200, {"slos": list(reports.values()), "at": now})
                elif self.path.removeprefix("/v1/slos/") in reports:
                    self._send(200, reports[self.path.removeprefix("/v1/slos/")])
                else:
                    self._send(404, {"error": {"type": "slo_not_found", "message": "no SLO"}})

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_slo_list_and_show_read_the_admin_api(capsys: pytest.CaptureFixture[str]) -> None:
    admin = _Admin()
    try:
        assert run(["slo", "list", "--admin", admin.address]) == 0
        table = capsys.readouterr().out
        assert "tasks" in table and "idle" in table
        assert "EXHAUSTED" in table and "HEALTHY" in table
        assert "-400.0%" in table  # 5 bad of 100 against a 1% budget
        assert run(["slo", "show", "tasks", "--admin", admin.address]) == 0
        shown = capsys.readouterr().out
        assert "tasks finish" in shown
        assert "overflowing" not in shown
        assert "95.000%" in shown  # the SLI over each window
        assert "page 1h/5m" in shown
        assert run(["slo", "show", "tasks", "--json", "--admin", admin.address]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "EXHAUSTED"
        assert run(["slo", "list", "--json", "--admin", admin.address]) == 0
        assert len(json.loads(capsys.readouterr().out)["slos"]) == 2
        assert run(["slo", "show", "nope", "--admin", admin.address]) == 1
        assert "no SLO" in capsys.readouterr().err
    finally:
        admin.close()
    assert run(["slo", "list", "--admin", admin.address]) == 1
    assert "cannot reach the admin API" in capsys.readouterr().err
