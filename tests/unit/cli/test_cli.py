"""The ``agent-sre`` command: one admin client, one printer, exit codes defined once; the
``signals`` command against a stand-in admin API; ``validate`` and ``run`` sharing the
checks of the machine they run on."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from agent_sre_daemon.cli import exits, main
from agent_sre_daemon.cli.main import COMMANDS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SIGNALS = {
    "signals": [
        {
            "type": "budget_threshold",
            "source": "budgets",
            "severity": "warning",
            "state": "firing",
            "at": 1_700_000_000.5,
            "message": "agent-daily at 80% for a1",
            "labels": {"budget": "agent-daily", "subject": "a1"},
            "value": 0.8,
        },
        {
            "type": "slo_status",
            "source": "slo",
            "severity": "page",
            "state": "resolved",
            "at": 1_700_000_060,
            "message": "tasks healthy again",
            "labels": {},
            "value": None,
        },
    ]
}


class StandInAdmin:
    """A tiny aiohttp admin API answering as the daemon does, in its own thread."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.posts: list[tuple[str, str | None, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/v1/signals", self._signals)
        app.router.add_post("/v1/reload", self._change)
        app.router.add_post("/v1/agents/{agent_id}/block", self._change)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.address = f"127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _signals(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        wanted = request.query.get("type")
        rows = [s for s in SIGNALS["signals"] if not wanted or s["type"] == wanted]
        return web.json_response({"signals": rows})

    async def _change(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        self.posts.append((request.path, auth, await request.json()))
        if auth != "Bearer tok":
            return web.json_response(
                {"error": {"type": "unauthorized", "message": "a valid token is required"}},
                status=401,
            )
        if request.path == "/v1/reload":
            return web.json_response({"reloaded": True, "message": "configuration reloaded"})
        return web.json_response({"agent_id": request.match_info["agent_id"], "blocked": True})

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInAdmin]:
    for name in ("AGENT_SRE_ADMIN", "AGENT_SRE_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    server = StandInAdmin()
    yield server
    server.close()


def test_signals_prints_a_table_and_json(
    admin: StandInAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["signals", "--admin", admin.address]) == exits.OK
    table = capsys.readouterr().out
    for text in ("budget_threshold", "slo_status", "2023-11-14 22:13:20", "budget=agent-daily",
                 "subject=a1", "agent-daily at 80% for a1", "resolved", "0.8"):  # fmt: skip
        assert text in table, text
    assert admin.queries == [{}]  # no filter given, none sent

    assert main(["signals", "--json", "--type", "slo_status", "--admin", admin.address]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [s["type"] for s in answer["signals"]] == ["slo_status"]
    assert admin.queries[-1] == {"type": "slo_status"}


@pytest.mark.parametrize(("ago", "seconds"), [("5m", 300), ("90", 90), ("1h30m", 5400)])
def test_signals_since_is_a_time_ago_sent_as_unix_seconds(
    admin: StandInAdmin, ago: str, seconds: float
) -> None:
    before = time.time()
    code = main(["signals", "--since", ago, "--source", "budgets", "--admin", admin.address])
    assert code == exits.OK
    query = admin.queries[-1]
    assert query["source"] == "budgets"
    assert before - seconds - 1 <= float(query["since"]) <= time.time() - seconds


def test_signals_with_a_bad_since_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["signals", "--since", "yesterday"])
    assert info.value.code == exits.USAGE
    assert "'yesterday' is not a duration" in capsys.readouterr().err


def test_an_unreachable_admin_api_fails_with_exit_1(
    admin: StandInAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = admin.address
    admin.close()
    assert main(["signals", "--admin", dead]) == exits.FAILURE
    assert f"cannot reach the admin API at {dead}" in capsys.readouterr().err
    assert main(["signals", "--admin", "not an address"]) == exits.FAILURE


def test_the_admin_address_comes_from_the_command_the_global_option_or_the_environment(
    admin: StandInAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--admin", admin.address, "signals"]) == exits.OK
    assert main(["--admin", "127.0.0.1:1", "signals", "--admin", admin.address]) == exits.OK
    monkeypatch.setenv("AGENT_SRE_ADMIN", admin.address)
    assert main(["signals"]) == exits.OK
    monkeypatch.setenv("AGENT_SRE_ADMIN", f"http://{admin.address}")
    assert main(["signals"]) == exits.OK
    assert len(admin.queries) == 4


def test_changes_send_the_admin_token_from_the_environment(
    admin: StandInAdmin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reload", "--admin", admin.address]) == exits.FAILURE
    assert "set $AGENT_SRE_ADMIN_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("AGENT_SRE_ADMIN_TOKEN", "tok")
    assert main(["reload", "--admin", admin.address]) == exits.OK
    assert capsys.readouterr().out.strip() == "configuration reloaded"
    argv = ["agents", "block", "a 1", "--reason", "runaway", "--admin", admin.address]
    assert main(argv) == exits.OK
    assert capsys.readouterr().out.strip() == "agent a 1: blocked"
    assert admin.posts[-1] == ("/v1/agents/a 1/block", "Bearer tok", {"reason": "runaway"})
    monkeypatch.setenv("AGENT_SRE_ADMIN_TOKEN", "wrong")
    assert main(["reload", "--admin", admin.address]) == exits.FAILURE
    assert "a valid token is required" in capsys.readouterr().err


def test_every_command_module_registers_itself() -> None:
    import importlib

    for name in COMMANDS:
        module = importlib.import_module(f"agent_sre_daemon.cli.{name}")
        assert callable(getattr(module, "register", None)), name


def test_no_command_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == exits.USAGE
    assert "signals" in capsys.readouterr().err


# -- validate and run share the checks of the machine -------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agent-sre.yaml"
    path.write_text(text)
    return str(path)


def test_validate_and_run_refuse_a_missing_ca_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"state_dir: {tmp_path / 'state'}\n"
        "exporters:\n"
        "  otlp:\n"
        "    endpoint: https://collector:4317\n"
        f"    ca_file: {tmp_path / 'absent.pem'}\n",
    )
    for argv in (["validate", path], ["run", "--config", path]):
        assert main(argv) == exits.USAGE
        err = capsys.readouterr().err
        assert f"{path}:5: exporters.otlp.ca_file: {tmp_path / 'absent.pem'}: cannot read" in err
    (tmp_path / "absent.pem").write_text("not a certificate\n")
    assert main(["validate", path]) == exits.USAGE
    assert "holds no PEM certificate" in capsys.readouterr().err


@pytest.mark.parametrize("under", ["", "sub/dir"])
def test_validate_and_run_refuse_a_state_dir_on_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    (tmp_path / "taken").write_text("a file\n")
    state_dir = tmp_path / "taken" / under if under else tmp_path / "taken"
    path = write(tmp_path, f"node: {{name: n}}\nstate_dir: {state_dir}\n")
    for argv in (["validate", path], ["run", "--config", path]):
        assert main(argv) == exits.USAGE
        err = capsys.readouterr().err
        assert f"{path}:2: state_dir: " in err
        assert ("is a file" if under else "exists and is not a directory") in err


def test_validate_accepts_a_usable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f"state_dir: {tmp_path / 'new' / 'state'}\n")
    assert main(["validate", path]) == exits.OK
    assert capsys.readouterr().out.strip() == f"{path}: ok (0 SLOs, 2 proxy routes)"


def test_validate_refuses_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert main(["validate", path]) == exits.USAGE
    assert f"{path}: the file is empty (or only comments)" in capsys.readouterr().err
