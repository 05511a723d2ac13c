"""What a reconcile pass spends on AgentSLO status, per source, for N SLOs over D daemons:
the daemons' answers summed as before (every daemon's list scanned for each SLO), the same
indexed once per pass (now), and one Prometheus answer read through the JSON gate
(``--prometheus-url``). Prints seconds per pass, the ratios to the scan, and the pass's
render time for scale (bench/operator_render.py), all measured in this run (never
asserted).

    .venv/bin/python bench/operator_status.py
"""

from __future__ import annotations

import json
import time
from typing import Any

from agent_sre.jsonbody import read_json
from agent_sre_operator import prometheus
from agent_sre_operator import status as fleet
from agent_sre_operator.kinds import SLO
from agent_sre_operator.render import Resource, render

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "7d")
DAEMONS = 10


def daemon_answers(n: int) -> list[dict[str, Any]]:
    slos = [
        {
            "name": f"s{i}",
            "overall": {
                "budget": {"good": 990, "total": 1000},
                "windows": [{"window": w, "good": 99, "total": 100} for w in WINDOWS],
            },
        }
        for i in range(n)
    ]
    return [{fleet.SLOS: {"slos": slos}} for _ in range(DAEMONS)]


def prometheus_body(n: int) -> bytes:
    result = [
        {"metric": {"__name__": f"slo:sli_error:ratio_rate{w}", "slo": f"s{i}", "window": w},
         "value": [1700000000.0, "0.01"]}
        for i in range(n) for w in WINDOWS
    ]  # fmt: skip
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(body).encode()


def best(fn: Any, repeat: int = 5) -> float:
    out = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - start)
    return out


def main() -> None:
    print(f"{DAEMONS} daemons, {len(WINDOWS)} windows per SLO")
    print(f"{'SLOs':>6} {'scan s':>8} {'indexed s':>10} {'prometheus s':>13} "
          f"{'indexed/scan':>13} {'prom/scan':>10} {'render s':>9}")  # fmt: skip
    for n in (10, 100, 200):
        answers = daemon_answers(n)
        body = prometheus_body(n)

        def scanned(n: int = n, answers: list[dict[str, Any]] = answers) -> None:
            for i in range(n):  # each SLO reads every daemon's whole list
                fleet.slo_status(f"s{i}", 0.99, answers)

        def indexed(n: int = n, answers: list[dict[str, Any]] = answers) -> None:
            once = fleet.Answers(answers)
            for i in range(n):
                fleet.slo_status(f"s{i}", 0.99, once)

        def from_prometheus(n: int = n, body: bytes = body) -> None:
            ratios = prometheus.error_ratios(read_json(body, max_bytes=prometheus.MAX_ANSWER_BYTES))
            for i in range(n):
                prometheus.slo_status("7d", 0.99, ratios[f"s{i}"])

        spec = {"target": 0.99, "window": "7d", "sli": {"kind": "task_success"}}
        items = [Resource(SLO, "ns", f"s{i}", spec) for i in range(n)]
        scan_s = best(scanned, repeat=2)
        index_s = best(indexed)
        prom_s = best(from_prometheus)
        render_s = best(lambda items=items: render("admin: {token: x}\n", items), repeat=1)
        print(f"{n:>6} {scan_s:>8.4f} {index_s:>10.4f} {prom_s:>13.4f} "
              f"{index_s / scan_s:>13.3f} {prom_s / scan_s:>10.3f} {render_s:>9.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
