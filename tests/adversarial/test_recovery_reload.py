"""A reload the machine cannot take is refused like a bad file: an https upstream whose
``ca_file`` is missing or holds no certificate answers 400 naming the file, line and field
(never 500), the running configuration stays in force and keeps forwarding, and
``agent-sre validate`` says the same."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import forwarding
from tests.support.durability import Sender
from tests.support.receivers import free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.daemon import DaemonProcess
    from tests.support.upstream import RecordingUpstream

TOKEN = "tok"


def reload(daemon: DaemonProcess) -> tuple[int, Any]:
    sent = urllib.request.Request(
        daemon.url("admin", "/v1/reload"),
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.parametrize("ca", ["missing", "not_pem"])
def test_a_reload_to_https_with_an_unusable_ca_file_is_refused_naming_the_field(
    make_daemon: Callable[..., DaemonProcess], upstream: RecordingUpstream, ca: str
) -> None:
    daemon = make_daemon({"admin": {"endpoint": "127.0.0.1:0", "token": TOKEN},
                          **forwarding(upstream)}).start()  # fmt: skip
    ca_file = daemon.workdir / "ca.pem"
    if ca == "not_pem":
        ca_file.write_text("not a certificate\n")
    config = json.loads(json.dumps(daemon.config))
    config["exporters"]["otlp"]["endpoint"] = f"https://127.0.0.1:{free_port()}"
    config["exporters"]["otlp"]["ca_file"] = str(ca_file)
    daemon.write_config(config)

    status, body = reload(daemon)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_config"
    message = body["error"]["message"]
    assert "exporters.otlp.ca_file" in message and str(ca_file) in message
    assert f"{daemon.config_path}:" in message, "file:line: field: message"
    checked = subprocess.run(
        [sys.executable, "-m", "agent_sre_daemon.cli", "validate", str(daemon.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 2
    assert "exporters.otlp.ca_file" in checked.stderr

    # the old configuration is in force: spans still reach the old upstream
    with urllib.request.urlopen(daemon.url("admin", "/v1/status"), timeout=10) as response:
        assert json.load(response)["upstream"] == upstream.endpoint
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(spans=3)
    sender.close()
    assert upstream.wait_for(lambda: len(upstream.span_ids()) >= 3)
    assert daemon.alive()
    assert "Traceback" not in daemon.log()
