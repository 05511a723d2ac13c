from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.daemon import LOOPBACK_PORTS, DaemonProcess, merge
from tests.support.upstream import RecordingUpstream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).parents[2]


@pytest.fixture
def provider_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), url
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def make_daemon(
    tmp_path: Path, upstream: RecordingUpstream
) -> Iterator[Callable[..., DaemonProcess]]:
    """Builds (not starts) daemons with loopback port-0 listeners and a state dir in tmp.

    Depends on ``upstream`` so the daemons stop before the upstream does.
    """
    made: list[DaemonProcess] = []

    def factory(config: dict[str, Any] | None = None, **env: str) -> DaemonProcess:
        workdir = tmp_path / f"daemon{len(made)}"
        workdir.mkdir()
        base = merge(
            LOOPBACK_PORTS, {"state_dir": str(workdir / "state"), "node": {"name": "test-node"}}
        )
        daemon = DaemonProcess(workdir, merge(base, config or {}), env=env)
        made.append(daemon)
        return daemon

    yield factory
    for daemon in made:
        try:
            daemon.stop(timeout=15)
        except Exception:
            daemon.kill()


def forwarding(upstream: RecordingUpstream, **otlp: Any) -> dict[str, Any]:
    """Config that forwards to ``upstream`` with fast retries (tests wait on them)."""
    return {
        "exporters": {
            "otlp": merge(
                {
                    "endpoint": upstream.endpoint,
                    "retry": {"initial_interval": "50ms", "max_interval": "500ms"},
                    "shutdown_timeout": "1s",
                },
                otlp,
            )
        }
    }
