"""Durable queue cost: CPU per OTLP request put into SQLite, leased in batches and deleted.

Baseline in the same run: appending the same bytes to a plain file (no index, no deletes),
the least any on-disk queue pays. Usage: python bench/queue.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_sre_daemon.stores.queue import DurableQueue  # noqa: E402
from tests.support.spans import make_request  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    body = make_request(100).SerializeToString()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        started = time.process_time()
        with open(Path(tmp) / "append.log", "ab") as log:
            for _ in range(n):
                log.write(body)
                log.flush()
        baseline = (time.process_time() - started) / n

        queue = DurableQueue(Path(tmp) / "queue.db", 1 << 34)
        started = time.process_time()
        for i in range(n):
            queue.put("traces", body, 100, 0.0)
            if i % 20 == 19:  # the forwarder leases what built up in its batch timeout
                queue.ack(queue.lease_batch(4 << 20))
        ours = (time.process_time() - started) / n
        queue.close()
    print(f"{n} requests of 100 spans ({len(body)} bytes)")
    print(f"  baseline (file append)       {baseline * 1e6:7.0f} us CPU/request")
    print(
        f"  SQLite put + lease + delete  {ours * 1e6:7.0f} us CPU/request ({ours / baseline:.1f}x)"
    )
    print(f"  at 100 requests/s: {ours * 100 * 100:.1f}% of one core")


if __name__ == "__main__":
    main()
