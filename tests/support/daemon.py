"""Starts the real daemon as a process, the way a supervisor or a test would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

LOOPBACK_PORTS = {
    "receivers": {
        "otlp": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}
    },
    "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}},
    "proxy": {"endpoint": "127.0.0.1:0"},
    "admin": {"endpoint": "127.0.0.1:0"},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class DaemonProcess:
    """A running ``agent-sre run`` and the addresses it bound."""

    workdir: Path
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    addresses: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.workdir / "agent-sre.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        if config is not None:
            self.config = config
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        self.write_config()
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        env = {**os.environ, **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_sre_daemon.cli",
                "run",
                "--config",
                str(self.config_path),
                "--ready-file",
                str(ready),
                "--log-level",
                "info",
            ],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"daemon not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        self.addresses = json.loads(ready.read_text())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, name: str, path: str = "") -> str:
        return f"http://{self.addresses[name]}{path}"

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9: no drain, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
