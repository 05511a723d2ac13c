"""Durable queue cost: CPU per OTLP request put into SQLite, leased in batches and deleted.

Baseline in the same run: appending the same bytes to a plain file (no index, no deletes),
the least any on-disk queue pays. Then puts from the event loop as receivers make them
(``put_async`` from concurrent requests), with ``fsync`` off and on: the writer thread
commits the puts that arrive together as one transaction (one fsync), so the figures show
wall time per request and how many requests share a commit.
Usage: python bench/durable_queue.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent_sre_daemon.stores.queue import DurableQueue  # noqa: E402
from tests.support.spans import make_request  # noqa: E402


async def concurrent_puts(queue: DurableQueue, body: bytes, n: int, concurrency: int) -> None:
    left = iter(range(n))

    async def receiver() -> None:
        for _ in left:
            await queue.put_async("traces", body, 100, 0.0)

    await asyncio.gather(*(receiver() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
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

        loop_rows = []
        for fsync in (False, True):
            queue = DurableQueue(Path(tmp) / f"loop-{fsync}.db", 1 << 34, fsync=fsync)
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(concurrent_puts(queue, body, n, args.concurrency))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            loop_rows.append((fsync, cpu / n, wall / n, n / max(1, queue._writer.commits)))
            queue.close()
    print(f"{n} requests of 100 spans ({len(body)} bytes)")
    print(f"  baseline (file append)       {baseline * 1e6:7.0f} us CPU/request")
    print(
        f"  SQLite put + lease + delete  {ours * 1e6:7.0f} us CPU/request ({ours / baseline:.1f}x)"
    )
    print(f"  at 100 requests/s: {ours * 100 * 100:.1f}% of one core")
    print(f"put_async from {args.concurrency} concurrent receivers (writer thread, group commit):")
    for fsync, cpu, wall, per_commit in loop_rows:
        print(
            f"  fsync {'on ' if fsync else 'off'}  {cpu * 1e6:7.0f} us CPU/request"
            f" ({cpu / baseline:.1f}x)  {wall * 1e6:7.0f} us wall/request"
            f"  {per_commit:5.1f} requests per commit"
        )


if __name__ == "__main__":
    main()
