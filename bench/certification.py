"""What the certification span observer costs a received span: the node's span pass with
every engine's observers, on this checkout and on a baseline checkout (the commit before
certification), in one run.

Each checkout runs in its own process (``--child``, with that checkout's ``src`` and
``daemon`` first on the path), builds every engine of its ``node.ENGINES`` on a default
configuration with one SLO (``task_success``), points the pipeline at their span observers
exactly as the node does, and times the native span pass (``process_wire``, what the
receivers run) over 512-span requests in process CPU. Two mixes:

- ``agent``: the spans of ``tests.support.spans.make_request`` (mixed agent kinds, four
  agents) with ``agent.version`` set: every span concerns certification;
- ``plain``: the same spans without ``agent.id``/``agent.version`` (no agent): spans
  certification does not concern.

Children of the two checkouts alternate ``--rounds`` times; each reports its best of
``--trials``; the best per checkout is printed with the ratio this/baseline.

``python bench/certification.py [--baseline /work/wt-before-certify] [--rounds 3]``
(make one with ``git worktree add --detach /work/wt-before-certify <commit>`` and copy the
built ``src/agent_sre/tracing/_wirepass*.so`` into it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPANS = 512
BODIES = 4


def child(trials: int, requests: int) -> None:
    sys.path.insert(0, str(ROOT))
    from agent_sre.config import Config
    from agent_sre.tracing.batch import NATIVE
    from agent_sre_daemon import node
    from tests.support.context import node_context
    from tests.support.spans import make_request, set_value

    config = Config.model_validate(
        {
            "state_dir": tempfile.mkdtemp(prefix="bench-cert-"),
            "slos": [
                {
                    "name": "task-success",
                    "target": 0.99,
                    "window": "30d",
                    "sli": {"kind": "task_success"},
                }
            ],  # fmt: skip
        }
    )
    context = node_context(config)
    engines = [make(context) for make in node.ENGINES]
    specs = [spec for engine in engines for spec in engine.span_observers()]
    context.pipeline.set_observers(specs)
    processor = context.pipeline.processor
    now = 1_700_000_000.0
    results = {}
    for mix in ("agent", "plain"):
        bodies = []
        for _ in range(BODIES):
            request = make_request(SPANS)
            for span in request.resource_spans[0].scope_spans[0].spans:
                if mix == "agent":
                    kv = span.attributes.add()
                    kv.key = "agent.version"
                    set_value(kv, "1.4.2")
                else:
                    kept = [kv for kv in span.attributes if kv.key != "agent.id"]
                    del span.attributes[:]
                    span.attributes.extend(kept)
            bodies.append(request.SerializeToString())
        for body in bodies * 20:  # warm-up: buckets opened, caches filled
            processor.process_wire(body, now)
        best = float("inf")
        for _ in range(trials):
            started = time.process_time()
            for index in range(requests):
                processor.process_wire(bodies[index % BODIES], now)
            best = min(best, (time.process_time() - started) / (requests * SPANS) * 1e6)
        results[mix] = best
    print(json.dumps({"native": NATIVE, "engines": [type(e).__name__ for e in engines],
                      "us_per_span": results}))  # fmt: skip


def run_child(checkout: Path, trials: int, requests: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": f"{checkout}/src:{checkout}/daemon:{checkout}"}
    out = subprocess.run(
        [sys.executable, str(checkout / "bench" / "certification.py"), "--child",
         "--trials", str(trials), "--requests", str(requests)],
        env=env, capture_output=True, text=True, check=True, cwd=checkout,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, default=Path("/work/wt-before-certify"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20, help="requests of 512 spans a trial")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trials, args.requests)
        return
    # the child script is this file's: the baseline checkout runs it with its own code
    baseline_script = args.baseline / "bench" / "certification.py"
    copied = not baseline_script.exists()
    if copied:
        baseline_script.write_text(Path(__file__).read_text())
    try:
        best: dict[str, dict[str, float]] = {"baseline": {}, "this": {}}
        for _ in range(args.rounds):
            for name, checkout in (("baseline", args.baseline), ("this", ROOT)):
                result = run_child(checkout, args.trials, args.requests)
                figures = result["us_per_span"]
                assert isinstance(figures, dict)
                for mix, value in figures.items():
                    best[name][mix] = min(best[name].get(mix, float("inf")), value)
                engines = result["engines"]
    finally:
        if copied:
            baseline_script.unlink()
    print(
        f"span pass (native: {result['native']}), {SPANS}-span requests, {args.requests} a "
        f"trial, best of {args.trials} trials x {args.rounds} rounds, process CPU; engines "
        f"here: {', '.join(engines)}"  # type: ignore[arg-type]
    )
    for mix in ("agent", "plain"):
        before, after = best["baseline"][mix], best["this"][mix]
        print(
            f"  {mix:6} spans: baseline {before:6.3f} us/span  this {after:6.3f} us/span  "
            f"{after / before:5.3f}x  ({(after - before) * 1000:+.0f} ns a span)"
        )


if __name__ == "__main__":
    main()
