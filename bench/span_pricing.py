"""What pricing costs the native span pass, and what a request of made-up models costs it.

Two figures, each in a child process per checkout (this one, and ``--baseline DIR``'s code
with this python), alternated ``--rounds`` times:

1. ``pricing``: process CPU per span of the native pass over 512-span ``make_request``
   requests (two LLM spans in seven) with pricing as the only enricher, less the same pass
   with no enricher (``bare``), turned into µs per LLM span. Best of 7 trials of 20 requests.
2. ``made-up``: wall time of the pass over one request of 2,000 LLM spans each naming a model
   nobody has heard of (each a lookup in genai-prices' data, 0.1-1 ms, unless budgeted), with
   a fresh enricher each trial: every trial of 6.

``python bench/span_pricing.py [--baseline /work/wt-s9base] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child() -> None:
    from agent_sre.cost.pricing import Pricer
    from agent_sre.cost.span_cost import PRICING_KEYS, SpanCostEnricher
    from agent_sre.tracing.batch import TraceBatchProcessor
    from tests.support.spans import llm_request, make_request

    def processor(priced: bool) -> TraceBatchProcessor:
        enrichers = [SpanCostEnricher(Pricer())] if priced else []
        made = TraceBatchProcessor(
            {"agent_sre.node": "bench"}, llm_enrichers=enrichers, enricher_keys=PRICING_KEYS
        )
        made._set_wanted(made.wanted | PRICING_KEYS)  # the same keys read both ways
        return made

    body = make_request(512).SerializeToString()
    best: dict[str, float] = {}
    for _ in range(7):
        for name in ("bare", "pricing"):
            ours = processor(name == "pricing")
            ours.process_wire(body, 1.76e9)  # warm: the models looked up once
            started = time.process_time()
            for _ in range(20):
                ours.process_wire(body, 1.76e9)
            spent = (time.process_time() - started) / 20 / 512 * 1e6
            best[name] = min(best.get(name, spent), spent)

    made_up: list[float] = []
    for trial in range(6):
        request = llm_request([f"made-up-{trial}-{n}-" + "m" * 40 for n in range(2000)])
        flood = request.SerializeToString()
        ours = processor(True)
        started = time.perf_counter()
        ours.process_wire(flood, 1.76e9)
        made_up.append((time.perf_counter() - started) * 1000)
    per_llm_span = (best["pricing"] - best["bare"]) * 7 / 2
    print(json.dumps({**best, "per_llm_span": per_llm_span, "made_up_ms": made_up}))


def run_child(checkout: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}:{checkout / 'daemon'}:{checkout}"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, help="another checkout, run alternately")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.child:
        child()
        return
    checkouts = [("this", ROOT)] + (
        [("baseline", args.baseline.resolve())] if args.baseline else []
    )
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, µs of process CPU; made-up: ms of wall time")
    for round_ in range(args.rounds):
        for label, where in checkouts:
            found = run_child(where)
            made_up = ", ".join(f"{ms:.0f}" for ms in found["made_up_ms"])  # type: ignore[attr-defined]
            print(
                f"round {round_ + 1} {label:9} bare {found['bare']:5.2f} µs/span, pricing"
                f" {found['pricing']:5.2f} µs/span: {found['per_llm_span']:5.2f} µs a priced LLM"
                f" span | one request of 2,000 made-up models: {made_up} ms"
            )


if __name__ == "__main__":
    main()
