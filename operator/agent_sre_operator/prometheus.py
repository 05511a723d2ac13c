"""AgentSLO status from Prometheus, when the operator is given its URL (``--prometheus-url``).

Prometheus scrapes every daemon's ``agent_sre_slo_events_total`` and evaluates the recording
rules ``agent-sre rules prometheus`` writes (the PrometheusRules the operator creates): one
series ``slo:sli_error:ratio_rate<window>{slo, window}`` per SLO and window, the fleet's
error ratio. One instant query per pass reads them all; the status is computed from them as
the rules' own ``slo:period_error_budget_remaining:ratio`` and burn rates are (burn rate =
error ratio / error budget), so ``kubectl get agentslos`` and the dashboards say the same.

An SLO split by ``labels`` has one series per group: the status speaks for the worst group
(the highest error ratio per window), the one its alerts fire on first.

The answer is read through the one JSON reader (size and depth bounded); a value that is not
a finite number (``NaN`` before any event, from 0/0) counts as no data. When Prometheus
cannot be asked, answers nonsense or has no series for an SLO yet, that SLO's status comes
from the daemons as without a URL, and ``status.source`` says which it is.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

import aiohttp

from agent_sre.jsonbody import JsonBodyError, read_json
from agent_sre.slo.rules import sli_error_record

log = logging.getLogger("agent_sre_operator")

TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""A bigger answer is refused (every SLO times a handful of windows, a few label groups)."""
RECORD_PREFIX = sli_error_record("")

ErrorRatios = dict[str, dict[str, float]]
"""SLO name -> window (``5m``, ``28d``, ...) -> the worst error ratio over its groups."""


class PrometheusError(Exception):
    """Prometheus could not be asked, or answered what is not a query result."""


def query_for(names: list[str]) -> str:
    """One instant query for every SLO's recorded error ratios."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names)))
    escaped = alternatives.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{__name__=~"{re.escape(RECORD_PREFIX)}.+",slo=~"{escaped}"}}'


def error_ratios(answer: Any) -> ErrorRatios:
    """The error ratios of a ``/api/v1/query`` answer (pure; raises PrometheusError)."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise PrometheusError(f"the query failed: {str(error or answer)[:200]}")
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PrometheusError("the answer holds no instant vector")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError("the answer's result is not a list")
    ratios: ErrorRatios = {}
    for series in result:
        if not isinstance(series, dict):
            continue
        metric, value = series.get("metric"), series.get("value")
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            continue
        name, slo, window = metric.get("__name__"), metric.get("slo"), metric.get("window")
        if not (isinstance(slo, str) and slo and isinstance(window, str) and window):
            continue
        if name != sli_error_record(window):
            continue
        ratio = _ratio(value[1])
        if ratio is None:
            continue
        windows = ratios.setdefault(slo, {})
        windows[window] = max(ratio, windows.get(window, 0.0))
    return ratios


def _ratio(text: Any) -> float | None:
    """A sample's value (a string in Prometheus' JSON) as a ratio in [0, 1], or None."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


def slo_status(window: str, target: float, ratios: dict[str, float]) -> dict[str, Any] | None:
    """An AgentSLO's figures from its error ratios; None when the SLO's own window has no
    data yet (then the daemons speak)."""
    period = ratios.get(window)
    if period is None:
        return None
    allowed = 1.0 - target
    status: dict[str, Any] = {"attainment": round(1.0 - period, 6), "source": "prometheus"}
    if allowed > 0:
        status["errorBudgetRemaining"] = round(1.0 - period / allowed, 6)
        status["burnRates"] = {w: round(r / allowed, 6) for w, r in sorted(ratios.items())}
    else:  # a target of 1: any error spends the whole budget
        status["errorBudgetRemaining"] = 1.0 if period == 0 else 0.0
        status["burnRates"] = {}
    # exact event counts are the daemons'; Prometheus' increase() extrapolates
    status["good"] = None
    status["valid"] = None
    return status


class PrometheusClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = aiohttp.ClientSession(
            headers={"Accept": "application/json", "User-Agent": "agent-sre-operator"},
            timeout=TIMEOUT,
        )

    async def close(self) -> None:
        await self.session.close()

    async def error_ratios(self, names: list[str]) -> ErrorRatios:
        """The recorded error ratios of the SLOs ``names``; raises PrometheusError."""
        if not names:
            return {}
        form = {"query": query_for(names)}
        try:
            async with self.session.post(
                self.url + "/api/v1/query", data=form, allow_redirects=False
            ) as response:
                status = response.status
                body = bytearray()
                while len(body) <= MAX_ANSWER_BYTES:
                    chunk = await response.content.read(65536)
                    if not chunk:
                        break
                    body += chunk
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise PrometheusError(f"unreachable: {exc or type(exc).__name__}") from exc
        if len(body) > MAX_ANSWER_BYTES:
            raise PrometheusError(f"the answer is over {MAX_ANSWER_BYTES} bytes")
        try:
            answer = read_json(bytes(body), max_bytes=MAX_ANSWER_BYTES, what="Prometheus' answer")

        except JsonBodyError as exc:
            raise PrometheusError(f"{status}: {exc}") from exc
        if status != 200 and not isinstance(answer, dict):
            raise PrometheusError(f"answered {status}")
        return error_ratios(answer)
