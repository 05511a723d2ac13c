"""Notifications: incident changes become payloads in the durable outbox; a background task
delivers them with retries and back-off (tenacity), never on a request's path. What a
receiver that is down cannot take stays in the outbox (across restarts) and is tried again
later, counted and logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

import aiohttp
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from agent_sre.alerts import payloads
from agent_sre.incidents.spec import SEVERITY_RANK
from agent_sre.signals import Severity

if TYPE_CHECKING:
    from agent_sre.alerts.spec import AlertingConfig, ReceiverSpec
    from agent_sre.incidents.book import Change
    from agent_sre.incidents.model import Incident
    from agent_sre_daemon.clock import Clock
    from agent_sre_daemon.incidents.metrics import IncidentMetrics
    from agent_sre_daemon.incidents.store import IncidentStore, Pending

log = logging.getLogger("agent_sre.alerts")

NOTIFIED_EVENTS = ("opened", "escalated", "acknowledged", "resolved")
POLL_SECONDS = 0.5


class DeliveryError(Exception):
    pass


class Notifier:
    def __init__(
        self,
        config: AlertingConfig,
        store: IncidentStore,
        metrics: IncidentMetrics,
        clock: Clock,
        node: str,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.node = node
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
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
        self._wake.set()

    # -- delivery -------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=False)
        self._task = asyncio.create_task(self._deliver_forever(), name="notifications")

    async def stop(self, deadline: float) -> None:
        if self._task is not None:
            # one last round for what is due, within the deadline; the rest stays queued
            left = deadline - self.clock.monotonic()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if left > 1.0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.deliver_due(attempts=1), min(left - 0.5, 5.0))
        if self._session is not None:
            await self._session.close()

    async def _deliver_forever(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification delivery failed")
            self.metrics.outbox.set(await self.store.pending())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def deliver_due(self, attempts: int | None = None) -> None:
        """Delivers what is due: receivers side by side (one that is down does not hold up
        the others), each one's notifications in order."""
        due = await self.store.due(self.clock.time())
        receivers = self.receivers
        queues: dict[str, list[Pending]] = {}
        for item in due:
            if item.receiver not in receivers:
                log.warning("dropping a notification for receiver %r (no longer configured)",
                            item.receiver)  # fmt: skip
                await self.store.delivered(item.id)
                continue
            queues.setdefault(item.receiver, []).append(item)
        tries = attempts or self.config.retry.attempts
        await asyncio.gather(
            *(self._deliver_in_order(receivers[name], items, tries)
              for name, items in queues.items())
        )  # fmt: skip

    async def _deliver_in_order(
        self, receiver: ReceiverSpec, items: list[Pending], attempts: int
    ) -> None:
        for item in items:
            if not await self._deliver(receiver, item, attempts):
                return  # still down: the rest waits for the next round

    async def _deliver(self, receiver: ReceiverSpec, item: Pending, attempts: int) -> bool:
        retry = self.config.retry
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(
                    multiplier=retry.initial_interval,
                    min=retry.initial_interval,
                    max=retry.max_interval,
                ),
                reraise=True,
            ):
                with attempt:
                    try:
                        await self._post(receiver, item.body)
                    except Exception:
                        self.metrics.failed.labels(receiver.name).inc()
                        raise
        except Exception as exc:
            rounds = item.attempts + 1
            wait = min(retry.max_interval, retry.initial_interval * 2 ** min(rounds, 16))
            log.warning(
                "notification to %s failed (%s); %d rounds so far, next in %.0fs",
                receiver.name, exc, rounds, wait,
            )  # fmt: skip
            await self.store.postpone(item.id, self.clock.time() + wait, str(exc))
            return False
        self.metrics.sent.labels(receiver.name).inc()
        await self.store.delivered(item.id)
        return True

    async def _post(self, receiver: ReceiverSpec, body: bytes) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **receiver.headers}
        if receiver.type == "pagerduty":
            body = json.dumps({**json.loads(body), "routing_key": receiver.routing_key}).encode()
        if receiver.type == "webhook" and receiver.secret:
            headers.update(payloads.sign_webhook(receiver.secret, int(self.clock.time()), body))
        timeout = aiohttp.ClientTimeout(total=receiver.timeout)
        async with self._session.post(
            receiver.endpoint, data=body, headers=headers, timeout=timeout
        ) as response:
            if response.status >= 300:
                text = (await response.text())[:200]
                raise DeliveryError(f"HTTP {response.status} from {receiver.name}: {text}")
