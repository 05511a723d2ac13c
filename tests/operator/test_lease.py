"""Leader election over a Lease: the decision (pure) and real candidates racing for one Lease
on kmock's API (with the test layer's resourceVersion and 409, tests/support/kube.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_sre_operator.kube import Connection, Kube
from agent_sre_operator.lease import (
    CREATE,
    RENEW,
    TAKE,
    WAIT,
    Elector,
    Record,
    decide,
    lease_path,
    record_of,
)

pytest.importorskip("kmock")

NS = "t"


def rec(
    holder: str, renew: str = "r1", transitions: int = 0, duration: float | None = None
) -> Record:
    return Record(holder, renew, transitions, "7", duration)


def test_no_lease_is_created_and_an_own_one_renewed() -> None:
    assert decide(None, "a", None, 0.0, 15) == CREATE
    assert decide(rec("a"), "a", None, 0.0, 15) == RENEW


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(rec(""), "a", None, 0.0, 15) == TAKE


def test_a_foreign_holder_is_waited_for_until_it_stops_renewing() -> None:
    seen = (rec("b"), 100.0)
    assert decide(rec("b"), "a", None, 100.0, 15) == WAIT  # first look
    assert decide(rec("b"), "a", seen, 114.9, 15) == WAIT
    assert decide(rec("b"), "a", seen, 115.0, 15) == TAKE
    # it renewed: a new record restarts the wait, whatever the clocks say
    assert decide(rec("b", renew="r2"), "a", seen, 500.0, 15) == WAIT


def test_the_holders_own_duration_counts_when_it_wrote_a_sane_one() -> None:
    seen = (rec("b", duration=60), 0.0)
    assert decide(rec("b", duration=60), "a", seen, 30.0, 15) == WAIT
    assert decide(rec("b", duration=60), "a", seen, 60.0, 15) == TAKE


@pytest.mark.parametrize(
    "lease",
    [
        None,
        [],
        {"spec": []},
        {"spec": {"holderIdentity": 7, "leaseTransitions": "x", "leaseDurationSeconds": True}},
        {"spec": {"holderIdentity": None, "leaseDurationSeconds": 10**12}},
        {"metadata": "x", "spec": {"leaseDurationSeconds": -5}},
    ],
)
def test_a_lease_a_careless_writer_left_reads_as_unheld(lease: Any) -> None:
    record = record_of(lease)
    assert record.holder == ""
    assert record.transitions == 0
    assert record.duration is None
    assert decide(record, "a", None, 0.0, 15) == TAKE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_candidates_racing_for_one_lease_elect_exactly_one() -> None:
    from tests.support.kube import FakeCluster

    with FakeCluster([]) as cluster:

        async def main() -> None:
            clock = Clock()
            kubes = [Kube(Connection(cluster.url), f"c{i}") for i in range(4)]
            electors = [
                Elector(k, NS, "op", f"c{i}", duration=15, clock=clock) for i, k in enumerate(kubes)
            ]
            try:
                # all at once on no Lease: one create wins, the others get 409
                results = await asyncio.gather(*(e.step() for e in electors))
                assert sum(results) == 1
                leader = electors[results.index(True)]
                lease = cluster.get(lease_path(NS, "op"))
                assert lease["spec"]["holderIdentity"] == leader.identity
                # the leader renews; the others keep waiting
                clock.now += 5
                results = await asyncio.gather(*(e.step() for e in electors))
                assert [e.identity for e, r in zip(electors, results, strict=True) if r] == [
                    leader.identity
                ]
                # the leader stops renewing (a crash): it stops acting itself after its
                # renew deadline, and after the Lease's duration the others race again
                others = [e for e in electors if e is not leader]
                clock.now += 10.0
                assert not leader.leading
                assert not any(await asyncio.gather(*(e.step() for e in others)))
                clock.now += 15.0
                results = await asyncio.gather(*(e.step() for e in others))
                assert sum(results) == 1
                second = others[results.index(True)]
                lease = cluster.get(lease_path(NS, "op"))
                assert lease["spec"]["holderIdentity"] == second.identity
                assert lease["spec"]["leaseTransitions"] == 1
                # the old leader comes back: it waits, it does not take the Lease back
                assert not await leader.step()
                # a clean stop releases the Lease: a standby takes it at its next try
                await second.release()
                assert cluster.get(lease_path(NS, "op"))["spec"].get("holderIdentity") is None
                results = await asyncio.gather(*(e.step() for e in electors if e is not second))
                assert sum(results) == 1
            finally:
                for kube in kubes:
                    await kube.close()

        run(main())


def test_a_stale_write_is_refused_with_409() -> None:
    """The test layer's compare-and-swap, which the election rests on, itself checked."""
    from tests.support.kube import FakeCluster

    with FakeCluster([]) as cluster:
        path = lease_path(NS)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "x"}, "spec": {"holderIdentity": "a"}}  # fmt: skip
        created = cluster.create(path, body, NS)
        version = created["metadata"]["resourceVersion"]
        status, fresh = cluster.request(
            "PATCH", f"{path}/x",
            {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": "b"}},
        )  # fmt: skip
        assert status == 200
        assert fresh["metadata"]["resourceVersion"] != version
        status, answer = cluster.request(
            "PATCH", f"{path}/x",
            {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": "c"}},
        )  # fmt: skip
        assert status == 409, answer
        assert cluster.get(f"{path}/x")["spec"]["holderIdentity"] == "b"


def test_a_clean_stop_releases_only_its_own_lease_even_after_a_late_renewal() -> None:
    from tests.support.kube import FakeCluster

    with FakeCluster([]) as cluster:

        async def main() -> None:
            clock = Clock()
            kubes = [Kube(Connection(cluster.url), f"c{i}") for i in range(2)]
            a = Elector(kubes[0], NS, "op", "a", duration=15, clock=clock)
            b = Elector(kubes[1], NS, "op", "b", duration=15, clock=clock)
            try:
                assert await a.step()
                clock.now += 11  # a busy node: past its renew deadline, still the holder
                assert not a.leading
                await a.release()
                assert cluster.get(lease_path(NS, "op"))["spec"].get("holderIdentity") is None
                assert await b.step()
                # a stale process stopping late never takes the Lease from its new holder
                await a.release()
                assert cluster.get(lease_path(NS, "op"))["spec"]["holderIdentity"] == "b"
            finally:
                for kube in kubes:
                    await kube.close()

        run(main())


@pytest.mark.parametrize("answer", [b"not json", b"", b'{"spec": '])
def test_an_api_answering_nonsense_costs_a_renewal_not_the_election(answer: bytes) -> None:
    """A careless proxy in front of the API server: garbage, an empty answer, a cut-off
    body, or the connection dropped. The step fails quietly (no lead) and tries again."""
    import socketserver
    import threading

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            if answer == b"":
                return  # drop the connection without a word
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(answer)}\r\n\r\n".encode()
            self.wfile.write(head + answer)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:

        async def main() -> bool:
            kube = Kube(Connection(f"http://127.0.0.1:{server.server_address[1]}"), "a")
            try:
                elector = Elector(kube, NS, "op", "a", duration=15, clock=Clock())
                return await elector.step()
            finally:
                await kube.close()

        assert run(main()) is False
    finally:
        server.shutdown()
        server.server_close()
