"""Leader election over a ``coordination.k8s.io/v1`` Lease, so the operator's Deployment can
run more than one replica: only the holder of the Lease writes (the ConfigMap, the daemons'
reloads, statuses, finalizers, PrometheusRules); the others watch, keep their view of the
resources warm, and take over when the holder stops renewing.

Why a Lease and not kopf's peering: kopf pauses *every* operator of the same priority when it
sees two (replicas of one Deployment have the same priority, so all of them would stop);
it promises no mutual exclusion ("there are NO per-object locks between the operators");
its pause stops kopf's watch streams, not the operator's own reconcile loop, and kopf does
not tell a handler whether it is paused; and it needs two more CRDs. A Lease is built in,
needs RBAC on one object, and the API server's optimistic concurrency (``resourceVersion``)
makes the take-over a compare-and-swap: of two candidates, one write wins, the other gets
409 Conflict.

Expiry is judged on the candidate's own monotonic clock from the moment it last saw the
record change (as client-go does), never by comparing another pod's ``renewTime`` with its
own wall clock, so clock skew between nodes does not matter. The holder stops acting when
it has not renewed for ``renew_deadline`` seconds, before any candidate may take the Lease
(``duration`` after it last saw a renewal).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from agent_sre_operator.kube import KubeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sre_operator.kube import Kube

log = logging.getLogger("agent_sre_operator")

CREATE, TAKE, RENEW, WAIT = "create", "take", "renew", "wait"


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return base if name is None else f"{base}/{name}"


def default_identity() -> str:
    """``<pod name or host>_<random>``: unique per process, so a restarted container (same
    pod name) never mistakes its predecessor's Lease for its own."""
    who = os.environ.get("POD_NAME") or socket.gethostname() or "operator"
    return f"{who}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Record:
    """What a candidate compares between two reads of the Lease."""

    holder: str
    renew_time: str
    transitions: int
    resource_version: str
    duration: float | None = None
    """The holder's ``leaseDurationSeconds`` (1 s to 1 h), if it wrote a sane one."""


def record_of(lease: Any) -> Record:
    """The Lease as read, tolerant of whatever a careless writer left in it: a missing or
    non-object ``spec``, a holder that is no string, transitions that are no integer."""
    lease = lease if isinstance(lease, dict) else {}
    spec = lease.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    meta = lease.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    holder = spec.get("holderIdentity")
    transitions = spec.get("leaseTransitions")
    duration = spec.get("leaseDurationSeconds")
    return Record(
        holder=holder if isinstance(holder, str) else "",
        renew_time=str(spec.get("renewTime") or ""),
        transitions=transitions
        if isinstance(transitions, int) and not isinstance(transitions, bool)
        else 0,
        resource_version=str(meta.get("resourceVersion") or ""),
        duration=float(duration)
        if isinstance(duration, int) and not isinstance(duration, bool) and 1 <= duration <= 3600
        else None,
    )


def decide(
    record: Record | None,
    identity: str,
    seen: tuple[Record, float] | None,
    now: float,
    duration: float,
) -> str:
    """What a candidate does with the Lease it just read (pure).

    Args:
        record: the Lease read now (None: there is none).
        identity: this candidate.
        seen: the record this candidate saw before and when (its monotonic clock) it first
            saw it unchanged; None at first.
        now: the candidate's monotonic clock.
        duration: seconds without a renewal after which a holder is presumed gone (the
            holder's own ``leaseDurationSeconds`` when it wrote a sane one).
    """
    if record is None:
        return CREATE
    if record.holder == identity:
        return RENEW
    if not record.holder:
        return TAKE  # released by a holder that stopped cleanly
    if seen is None or _key(seen[0]) != _key(record):
        return WAIT  # the holder renewed since (or this is the first look): it is alive
    limit = record.duration if record.duration is not None else duration
    return TAKE if now - seen[1] >= limit else WAIT


def _key(record: Record) -> tuple[str, str, int]:
    return (record.holder, record.renew_time, record.transitions)


def _micro_time() -> str:
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """Takes and renews one Lease; ``leading`` says whether this process may write now."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float | None = None,
        retry: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline if renew_deadline is not None else duration * 2 / 3
        self.retry = retry if retry is not None else max(0.2, duration / 7)
        self.clock = clock
        self.renewed_at: float | None = None
        self.seen: tuple[Record, float] | None = None
        self.on_lost: list[Callable[[], None]] = []
        self._was_leading = False

    @property
    def leading(self) -> bool:
        return self.renewed_at is not None and self.clock() - self.renewed_at < self.renew_deadline

    async def step(self) -> bool:
        """One read and, when due, one write of the Lease; whether this process leads now."""
        path = lease_path(self.namespace, self.name)
        try:
            lease = await self.kube.get_or_none(path)
            record = None if lease is None else record_of(lease)
            now = self.clock()
            if record is not None and (self.seen is None or _key(self.seen[0]) != _key(record)):
                self.seen = (record, now)
            action = decide(record, self.identity, self.seen, now, self.duration)
            if action == CREATE:
                await self.kube.create(lease_path(self.namespace), self._new_lease())
                self.renewed_at = now
            elif action in (TAKE, RENEW):
                assert record is not None
                await self.kube.merge_patch(path, self._claim(record, action == TAKE))
                self.renewed_at = now
        except KubeError as exc:
            if exc.status != 409:  # 409: another candidate wrote first; it leads
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            # unreachable, or an answer that is no JSON: no renewal this time
            log.warning("lease %s/%s: API: %s", self.namespace, self.name,
                        exc or type(exc).__name__)  # fmt: skip
        self._transitions()
        return self.leading

    def _new_lease(self) -> dict[str, Any]:
        now = _micro_time()
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "agent-sre-operator"},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _claim(self, record: Record, take: bool) -> dict[str, Any]:
        now = _micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": now,
        }
        if take:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = record.transitions + 1
        # the resourceVersion read makes the write a compare-and-swap: 409 if anyone wrote since
        return {"metadata": {"resourceVersion": record.resource_version}, "spec": spec}

    def _transitions(self) -> None:
        leading = self.leading
        if leading and not self._was_leading:
            log.info("lease %s/%s taken by %s: leading", self.namespace, self.name, self.identity)
        elif self._was_leading and not leading:
            log.warning("lease %s/%s lost by %s: standing by", self.namespace, self.name,
                        self.identity)  # fmt: skip
            for callback in self.on_lost:
                callback()
        self._was_leading = leading

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the election never stops: a standby must stay one
                log.exception("lease %s/%s: election step failed", self.namespace, self.name)
            await asyncio.sleep(self.retry)

    async def release(self) -> None:
        """Gives the Lease up at a clean stop, so a standby takes it at its next try instead
        of after ``duration``. Whether or not it still counts itself leading (a late renewal
        on a busy node): the Lease is released only if it still names this process, and only
        as it was read (compare-and-swap), so it never takes another holder's Lease away."""
        self.renewed_at = None
        self._transitions()
        path = lease_path(self.namespace, self.name)
        try:
            lease = await self.kube.get_or_none(path)
            record = record_of(lease) if lease is not None else None
            if record is not None and record.holder == self.identity:
                await self.kube.merge_patch(
                    path,
                    {
                        "metadata": {"resourceVersion": record.resource_version},
                        "spec": {"holderIdentity": None},
                    },
                )
                log.info("lease %s/%s released", self.namespace, self.name)
        except (KubeError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("lease %s/%s not released: %s", self.namespace, self.name, exc)
