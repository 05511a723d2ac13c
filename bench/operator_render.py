"""The operator's render pass: the base configuration plus N resources judged by the
daemon's loader. Prints seconds per pass of the way the operator renders (one load of all,
again without what it blamed) and of the careful way it falls back to (one load per
resource, with those before it), and their ratio, both measured in this run (never asserted).

    .venv/bin/python bench/operator_render.py
"""

from __future__ import annotations

import time

import yaml

from agent_sre_operator.kinds import BUDGET, SLO
from agent_sre_operator.render import Resource, _sequential, render

BASE = "admin: {token: x}\n"


def resources(n: int) -> list[Resource]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(Resource(BUDGET, "ns", f"b{i}", {"scope": "agent", "limit_usd": 5}))
        else:
            spec = {"target": 0.99, "window": "7d", "sli": {"kind": "task_success"}}
            out.append(Resource(SLO, "ns", f"s{i}", spec))
    return out


def timed(n: int, careful: bool = False, repeat: int = 3) -> float:
    items = resources(n)
    base = yaml.safe_load(BASE)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = _sequential(base, items, {}, {}) if careful else render(BASE, items)
        best = min(best, time.perf_counter() - start)
    assert all(v.valid for v in out.verdicts.values())
    return best


def main() -> None:
    print(f"{'resources':>10} {'render s':>9} {'careful s':>10} {'careful/render':>15}")
    for n in (10, 50, 100, 200):
        fast = timed(n)
        careful = timed(n, careful=True, repeat=1)
        print(f"{n:>10} {fast:>9.3f} {careful:>10.3f} {careful / fast:>15.1f}")


if __name__ == "__main__":
    main()
