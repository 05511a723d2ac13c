"""The daemon's life: a start that fails half-way stops what it opened and says why; the
drain keeps within the one shutdown deadline."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import forwarding
from tests.support.durability import Sender

if TYPE_CHECKING:
    from tests.support.upstream import RecordingUpstream


def test_a_start_that_fails_half_way_closes_what_it_opened(
    make_daemon, upstream: RecordingUpstream
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = forwarding(upstream)
    config["proxy"] = {"endpoint": f"127.0.0.1:{port}"}  # started last: everything else is up
    daemon = make_daemon(config)
    with pytest.raises(RuntimeError, match="exited with 1"):
        daemon.start()
    log = daemon.log()
    assert "cannot start: proxy: [Errno 98] error while attempting to bind" in log
    assert f"('127.0.0.1', {port}): address already in use" in log
    assert "Traceback" not in log
    assert "Unclosed" not in log  # the proxy's own half-made client session was closed too
    taken.close()

    # the same state directory (queue, ledger) serves the next start at once
    daemon.config["proxy"] = {"endpoint": "127.0.0.1:0"}
    daemon.start()
    sender = Sender(daemon.addresses["otlp_grpc"])
    assert sender.send(3)
    sender.close()
    assert upstream.wait_for(lambda: len(upstream.spans()) == 3)
    assert daemon.stop() == 0
