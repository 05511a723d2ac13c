"""AgentSLO status from Prometheus' answers: the figures (pure), and what a careless or hostile
Prometheus answers (a real HTTP server on loopback serving it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent_sre_operator.prometheus import (
    MAX_ANSWER_BYTES,
    PrometheusClient,
    PrometheusError,
    error_ratios,
    query_for,
    slo_status,
)


def answer(*series: tuple[dict[str, str], Any]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1700000000.0, v]} for m, v in series],
        },
    }


def rec(slo: str, window: str, **labels: str) -> dict[str, str]:
    return {"__name__": f"slo:sli_error:ratio_rate{window}", "slo": slo, "window": window,
            **labels}  # fmt: skip


def test_the_figures_are_the_rules_own() -> None:
    ratios = error_ratios(answer((rec("a", "7d"), "0.02"), (rec("a", "5m"), "0.1")))
    status = slo_status("7d", 0.99, ratios["a"])
    assert status is not None
    assert status["attainment"] == 0.98
    assert status["errorBudgetRemaining"] == pytest.approx(1 - 0.02 / 0.01)
    assert status["burnRates"] == {"5m": pytest.approx(10.0), "7d": pytest.approx(2.0)}
    assert status["source"] == "prometheus"
    assert status["good"] is None and status["valid"] is None


def test_an_slo_split_by_labels_speaks_for_its_worst_group() -> None:
    ratios = error_ratios(
        answer(
            (rec("a", "7d", agent_id="x"), "0.01"),
            (rec("a", "7d", agent_id="y"), "0.3"),
            (rec("a", "7d", agent_id="z"), "0"),
        )
    )
    assert ratios == {"a": {"7d": 0.3}}


def test_no_data_for_the_slos_window_leaves_the_daemons_to_speak() -> None:
    ratios = error_ratios(answer((rec("a", "5m"), "0.5")))
    assert slo_status("7d", 0.99, ratios["a"]) is None
    assert slo_status("7d", 0.99, {}) is None


def test_a_target_of_one_spends_the_budget_on_any_error() -> None:
    assert slo_status("7d", 1.0, {"7d": 0.0})["errorBudgetRemaining"] == 1.0  # type: ignore[index]
    assert slo_status("7d", 1.0, {"7d": 0.001})["errorBudgetRemaining"] == 0.0  # type: ignore[index]


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "x", 0.5, None, "1" * 50])
def test_a_value_that_is_no_finite_number_is_no_data(value: Any) -> None:
    assert error_ratios(answer((rec("a", "7d"), value))) == {}


def test_ratios_out_of_range_are_clamped() -> None:
    assert error_ratios(answer((rec("a", "7d"), "-0.5"), (rec("b", "7d"), "7"))) == {
        "a": {"7d": 0.0},
        "b": {"7d": 1.0},
    }


@pytest.mark.parametrize(
    "series",
    [
        "not a dict",
        {"metric": "x", "value": [0, "0.1"]},
        {"metric": rec("a", "7d"), "value": "0.1"},
        {"metric": rec("a", "7d"), "value": [0, "0.1", 2]},
        {"metric": {**rec("a", "7d"), "window": "5m"}, "value": [0, "0.1"]},  # name != window
        {"metric": {"__name__": "slo:sli_error:ratio_rate7d", "window": "7d"}, "value": [0, "1"]},
        {"metric": {**rec("a", "7d"), "slo": 3}, "value": [0, "0.1"]},
    ],
)
def test_malformed_series_are_skipped(series: Any) -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [series]}}
    assert error_ratios(body) == {}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": {}}},
        {"status": "success"},
    ],
)
def test_an_answer_that_is_no_instant_vector_is_an_error(body: Any) -> None:
    with pytest.raises(PrometheusError):
        error_ratios(body)


def test_the_query_names_each_slo_exactly() -> None:
    query = query_for(["a.b", 'q"uote', "c"])
    slos = re.search(r'slo=~"(.*)"}$', query)
    assert slos is not None
    # PromQL string escapes undone, the regex matches only the names given
    pattern = slos.group(1).replace('\\"', '"').replace("\\\\", "\\")
    assert re.fullmatch(pattern, "a.b") and re.fullmatch(pattern, 'q"uote')
    assert not re.fullmatch(pattern, "axb")


class Hostile:
    """A Prometheus stand-in that answers ``body`` with ``status`` (and headers)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(outer.status)
                for key, value in (outer.headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.status, self.body, self.headers = status, body, headers
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ask(url: str) -> Any:
    async def main() -> Any:
        client = PrometheusClient(url)
        try:
            return await client.error_ratios(["a"])
        finally:
            await client.close()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (200, b"[" * 10_000 + b"]" * 10_000, None, "deep"),
        (200, b"<html>not json</html>", None, "200"),
        (200, b" " * (MAX_ANSWER_BYTES + 10), None, "over"),
        (302, b"", {"Location": "http://127.0.0.1:1/"}, "302"),
        (503, b'{"status": "error", "error": "overloaded"}', None, "overloaded"),
    ],
)
def test_a_hostile_prometheus_is_an_error_not_a_crash(
    status: int, body: bytes, headers: dict[str, str] | None, expected: str
) -> None:
    server = Hostile(status, body, headers)
    try:
        with pytest.raises(PrometheusError, match=expected):
            ask(server.url)
    finally:
        server.close()


def test_an_unreachable_prometheus_is_an_error() -> None:
    with pytest.raises(PrometheusError, match="unreachable"):
        ask("http://127.0.0.1:1")


def test_a_good_answer_is_read() -> None:
    server = Hostile(200, json.dumps(answer((rec("a", "7d"), "0.25"))).encode())
    try:
        assert ask(server.url) == {"a": {"7d": 0.25}}
    finally:
        server.close()
