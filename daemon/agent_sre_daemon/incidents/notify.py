"""Notifications: incident changes become payloads in the durable outbox; one task per
receiver delivers them in order, never on a request's path, so a receiver that hangs or is
down delays nobody else. This is the one client every notification goes through:

- redirects are never followed (a 307 must not carry a PagerDuty routing key elsewhere);
- no answer, a 5xx, 408 and 429 are tried again with back-off (tenacity), honouring
  ``Retry-After`` up to ``retry.max_interval``, in rounds from the outbox (across restarts)
  until ``retry.give_up_after``;
- a redirect or another 4xx is final;
- what is given up on goes to the dead letter (bounded, in the same SQLite file), is
  logged, counted and published as a ``notification_dead_lettered`` signal."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import sqlite3
from typing import TYPE_CHECKING

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from agent_sre.alerts import payloads
from agent_sre.incidents.spec import SEVERITY_RANK
from agent_sre.signals import Severity, Signal
from agent_sre.units import format_duration
from agent_sre_daemon.component import cancel_tasks

if TYPE_CHECKING:
    from agent_sre.alerts.spec import AlertingConfig, ReceiverSpec
    from agent_sre.incidents.book import Change
    from agent_sre.incidents.model import Incident
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.incidents.metrics import IncidentMetrics
    from agent_sre_daemon.incidents.store import IncidentStore, Pending
    from agent_sre_daemon.signals import SignalBus

log = logging.getLogger("agent_sre.alerts")

NOTIFIED_EVENTS = ("opened", "escalated", "acknowledged", "resolved")
POLL_SECONDS = 0.5


SIGNAL_TYPE = "notification_dead_lettered"
SIGNAL_SOURCE = "alerts"
ERROR_TEXT_BYTES = 200
"""How much of a refusal's body is kept (read no further: a receiver chooses its size)."""
RETRIED_4XX = (408, 429)


class DeliveryError(Exception):
    """A try that failed and may pass later (no answer, 5xx, 408, 429); ``retry_after``:
    the seconds the receiver asked for, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RefusedError(Exception):
    """A final answer (a redirect, a 4xx other than 408 and 429): trying again cannot
    help. ``reason``: ``redirect`` or ``refused``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_VERB = {
    "refused": "refused",
    "redirect": "redirected (redirects are not followed)",
    "gave_up": "given up",
    "receiver_gone": "set aside",
}


class Notifier:
    def __init__(
        self,
        config: AlertingConfig,
        store: IncidentStore,
        metrics: IncidentMetrics,
        clock: Clock,
        node: str,
        bus: SignalBus | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.node = node
        self.bus = bus
        self._session: aiohttp.ClientSession | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._last_sent: dict[str, float] = {}  # incident id -> last Alertmanager send

    @property
    def receivers(self) -> dict[str, ReceiverSpec]:
        return {r.name: r for r in self.config.receivers}

    # -- what to send ---------------------------------------------------------------------

    def payloads(
        self, change: Change, now: float, only: list[str] | None = None
    ) -> list[tuple[str, bytes]]:
        """The notifications ``change`` causes (to ``only`` these receivers, when given)."""
        if only is None and change.event not in NOTIFIED_EVENTS:
            return []
        incident = change.incident
        event = (
            "opened" if only is not None and change.event not in NOTIFIED_EVENTS else (change.event)
        )
        out = []
        for receiver in self.config.receivers:
            if only is not None and receiver.name not in only:
                continue
            if only is None and (
                SEVERITY_RANK[incident.severity] < SEVERITY_RANK[receiver.min_severity]
            ):
                continue
            body = self._render(receiver, incident, event, now, change.previous_severity)
            if body is not None:
                out.append((receiver.name, json.dumps(body).encode()))
        return out

    def _render(
        self,
        receiver: ReceiverSpec,
        incident: Incident,
        event: str,
        now: float,
        previous: str | None,
    ) -> object | None:
        url = self.config.external_url
        if receiver.type == "alertmanager":
            if event == "acknowledged":
                return None
            self._last_sent[incident.id] = now
            alerts = [
                payloads.alertmanager_alert(
                    incident, self.node, now, self.config.resend_interval, url
                )
            ]
            if previous is not None and previous != incident.severity.value:
                # the label changed: end the alert sent with the quieter severity
                alerts.append(
                    payloads.alertmanager_alert(
                        incident, self.node, now, self.config.resend_interval, url,
                        severity=Severity(previous), ended=True,
                    )
                )  # fmt: skip
            return alerts
        if receiver.type == "webhook":
            return payloads.webhook_body(incident, event, self.node, url)
        if receiver.type == "pagerduty":
            # the routing key is a secret: it is added when sending, never stored
            return payloads.pagerduty_event(incident, event, self.node, "", url)
        return payloads.slack_message(incident, event, self.node, url)

    def resends(self, incidents: list[Incident], now: float) -> list[tuple[str, bytes]]:
        """Alertmanager forgets alerts not re-sent: the firing ones due again."""
        out = []
        for incident in incidents:
            last = self._last_sent.get(incident.id)
            if last is not None and now - last < self.config.resend_interval:
                continue
            for receiver in self.config.receivers:
                if receiver.type != "alertmanager" or (
                    SEVERITY_RANK[incident.severity] < SEVERITY_RANK[receiver.min_severity]
                ):
                    continue
                body = self._render(receiver, incident, "opened", now, None)
                out.append((receiver.name, json.dumps(body).encode()))
            self._last_sent[incident.id] = now
        return out

    async def enqueue(self, items: list[tuple[str, bytes]]) -> None:
        if not items:
            return
        await self.store.enqueue(items, self.clock.time())
        for receiver, _ in items:
            wake = self._wakes.get(receiver)
            if wake is not None:
                wake.set()

    # -- delivery: a task per receiver ----------------------------------------------------

    async def start(self) -> None:
        # redirects are refused per request; trust_env off: no proxy from the environment
        self._session = aiohttp.ClientSession(trust_env=False)
        await self._set_aside_unknown()
        self.metrics.dead_letters.set(await self.store.dead_count())
        self.metrics.outbox.set(await self.store.pending())
        self._sync_workers()

    async def apply(self, config: AlertingConfig) -> None:
        """A reload: new receivers get their task, removed ones lose it (what was queued
        for them goes to the dead letter), changed ones are read at their next try."""
        self.config = config
        gone = [name for name in self._workers if name not in self.receivers]
        await cancel_tasks(*(self._workers.pop(name) for name in gone))
        for name in gone:
            self._wakes.pop(name, None)
        await self._set_aside_unknown()
        self._sync_workers()

    def _sync_workers(self) -> None:
        for name in self.receivers:
            if name not in self._workers:
                self._wakes[name] = asyncio.Event()
                self._workers[name] = asyncio.create_task(
                    self._work(name), name=f"notifications-{name}"
                )

    async def stop(self, deadline: float) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        await cancel_tasks(*workers)
        if self._session is None:
            return
        # one last try for what is due, within the deadline; the rest stays queued
        left = deadline - self.clock.monotonic()
        if left > 1.0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self.deliver_due(name, attempts=1)
                                     for name in self.receivers), return_exceptions=True),
                    min(left - 0.5, 5.0),
                )  # fmt: skip
        await self._session.close()
        self._session = None

    async def _work(self, name: str) -> None:
        wake = self._wakes[name]
        failing = False
        while True:
            wake.clear()
            try:
                await self.deliver_due(name)
                self.metrics.outbox.set(await self.store.pending())
                failing = False
            except asyncio.CancelledError:
                raise
            except (OSError, sqlite3.Error) as exc:  # a full or failing disk: one line a spell
                if not failing:
                    log.error("notifications to %s wait: the outbox cannot be written (%s)",
                              name, exc)  # fmt: skip
                failing = True
            except Exception:
                log.exception("notifications to %s: delivery failed", name)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_SECONDS)

    async def deliver_due(self, name: str, attempts: int | None = None) -> None:
        """Delivers what is due for receiver ``name``, in order; stops at the first one
        that must wait for a later round (the newer ones wait behind it)."""
        receiver = self.receivers.get(name)
        if receiver is None:
            return
        tries = attempts or self.config.retry.attempts
        for item in await self.store.due(name, self.clock.time()):
            if not await self._deliver(receiver, item, tries):
                return

    async def _deliver(self, receiver: ReceiverSpec, item: Pending, attempts: int) -> bool:
        """True when ``item`` is done with (delivered or dead-lettered), False when it waits
        for a later round."""
        retry = self.config.retry
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=self._wait,
                retry=retry_if_exception_type(DeliveryError),
                reraise=True,
            ):
                with attempt:
                    try:
                        await self._post(receiver, item.body)
                    except (DeliveryError, RefusedError):
                        self.metrics.failed.labels(receiver.name).inc()
                        raise
        except RefusedError as exc:
            await self._bury(receiver.name, item, exc.reason, self._scrub(receiver, str(exc)))
            return True
        except DeliveryError as exc:
            error = self._scrub(receiver, str(exc))
            now = self.clock.time()
            rounds = item.attempts + 1
            if now - item.created_at >= retry.give_up_after:
                waited = format_duration(round(now - item.created_at))
                await self._bury(
                    receiver.name, item, "gave_up",
                    f"{error} (undelivered for {waited}, {rounds} rounds)",
                )  # fmt: skip
                return True
            wait = retry.initial_interval * 2 ** min(rounds, 16)
            wait = min(retry.max_interval, max(wait, exc.retry_after or 0.0))
            log.warning(
                "notification to %s failed (%s); %d rounds so far, next in %.0fs",
                receiver.name, error, rounds, wait,
            )  # fmt: skip
            await self.store.postpone(item.id, now + wait, error)
            return False
        self.metrics.sent.labels(receiver.name).inc()
        await self.store.delivered(item.id)
        return True

    def _wait(self, state: RetryCallState) -> float:
        """Exponential back-off between tries in a row, or the receiver's ``Retry-After``
        when longer; never more than ``max_interval``."""
        retry = self.config.retry
        backoff = wait_exponential(
            multiplier=retry.initial_interval, min=retry.initial_interval, max=retry.max_interval
        )(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        asked = failure.retry_after if isinstance(failure, DeliveryError) else None
        return float(min(retry.max_interval, max(backoff, asked or 0.0)))

    async def _bury(self, name: str, item: Pending, reason: str, error: str) -> None:
        now = self.clock.time()
        held = await self.store.bury(item, reason, error, now, self.config.dead_letter_limit)
        self._dead(name, reason, error, 1, held, now)

    def _dead(self, name: str, reason: str, error: str, count: int, held: int,
              now: float) -> None:  # fmt: skip
        self.metrics.dead_lettered.labels(name, reason).inc(count)
        self.metrics.dead_letters.set(held)
        what = "notification" if count == 1 else f"{count} notifications"
        message = f"{what} to {name} {_VERB.get(reason, reason)}: {error}"
        log.warning("%s; in the dead letter (agent-sre incidents dead-letters)", message)
        if self.bus is not None:
            self.bus.publish(
                Signal(
                    type=SIGNAL_TYPE,
                    source=SIGNAL_SOURCE,
                    severity=Severity.WARNING,
                    at=now,
                    message=message,
                    labels={"receiver": name, "reason": reason},
                    value=float(count),
                    details={"error": error, "dead_letters": held},
                )
            )

    async def _set_aside_unknown(self) -> None:
        """What the outbox holds for receivers no longer configured goes to the dead letter
        (a warning, a signal), so it is neither lost unseen nor tried forever."""
        known = self.receivers
        now = self.clock.time()
        for name in sorted(await self.store.receivers()):
            if name in known:
                continue
            count, held = await self.store.bury_receiver(
                name, "receiver_gone", f"receiver {name!r} is no longer configured", now,
                self.config.dead_letter_limit,
            )  # fmt: skip
            if count:
                self._dead(name, "receiver_gone", "it is no longer configured", count, held, now)

    @staticmethod
    def _scrub(receiver: ReceiverSpec, text: str) -> str:
        """``text`` without the receiver's secrets (a receiver may echo them back)."""
        for secret in (receiver.routing_key, receiver.secret, receiver.url,
                       *receiver.headers.values()):  # fmt: skip
            if len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        return text

    async def _post(self, receiver: ReceiverSpec, body: bytes) -> None:
        """One try.

        Raises:
            DeliveryError: no answer, a 5xx, 408 or 429 (may pass later).
            RefusedError: a redirect or another 4xx (final).
        """
        assert self._session is not None
        headers = {"Content-Type": "application/json", **receiver.headers}
        if receiver.type == "pagerduty":
            body = json.dumps({**json.loads(body), "routing_key": receiver.routing_key}).encode()
        if receiver.type == "webhook" and receiver.secret:
            headers.update(payloads.sign_webhook(receiver.secret, int(self.clock.time()), body))
        timeout = aiohttp.ClientTimeout(total=receiver.timeout)
        try:
            async with self._session.post(
                receiver.endpoint, data=body, headers=headers, timeout=timeout,
                allow_redirects=False,
            ) as response:  # fmt: skip
                status = response.status
                if status < 300:
                    return
                if 300 <= status < 400:
                    raise RefusedError(
                        "redirect",
                        f"HTTP {status} from {receiver.name} (a redirect to "
                        f"{response.headers.get('Location', '?')[:200]!r}; fix its url)",
                    )
                text = (await response.content.read(ERROR_TEXT_BYTES)).decode("utf-8", "replace")
                message = f"HTTP {status} from {receiver.name}: {text}"
                if 400 <= status < 500 and status not in RETRIED_4XX:
                    raise RefusedError("refused", message)
                after = retry_after(response.headers.get("Retry-After"), self.clock.time())
                raise DeliveryError(message, after)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


def retry_after(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or
    None when absent or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - now) if math.isfinite(when) else None
