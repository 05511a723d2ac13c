"""What each engine's proxy stage costs a call it does not concern, in-process, against a
do-nothing stage in the same run (and, with ``--before DIR``, the same stages of another
checkout run alternately with this one).

    .venv/bin/python bench/stages.py [--calls 20000] [--rounds 7] [--before DIR]

The stages are the real node's (``Node`` from the shipped configuration plus the engine
state of ``bench/proxy.py``'s variants: three chaos experiments running that target other
agents, two rollouts that take no part in the calls, three circuit breakers that cover
other routes or tool calls, two replay sessions open on another prefix or by header), taken
from the running proxy's chain; the calls are plain objects shaped as the proxy's (headers
in a ``CIMultiDictProxy``, as aiohttp gives them). Per call: ``on_request`` then
``on_response``, awaited; the figure is the best round's process CPU per call, less the
do-nothing stage's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from proxy import (  # noqa: E402  (the variants' engine state, shared with bench/proxy.py)
    BREAKERS,
    CHAOS_EXPERIMENTS,
    ROLLOUTS,
    merged,
)

ENGINES = ("chaos", "rollout", "replay", "circuit_breaker", "throttle")
"""The stages whose engines keep per-call state that concerns only some calls."""


class NoStage:
    name = "nothing"

    async def on_request(self, call: Any) -> None:
        return None

    async def on_response(self, call: Any) -> None:
        return None


def make_calls(count: int) -> list[Any]:
    from multidict import CIMultiDict, CIMultiDictProxy

    from agent_sre.gateway.outcome import DecidedBy

    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Authorization": "Bearer sk-bench",
                "X-Agent-Id": "bench",
                "Content-Type": "application/json",
                "Content-Length": "90",
                "User-Agent": "OpenAI/Python 1.0",
                "Accept": "application/json",
            }
        )
    )
    route = SimpleNamespace(
        name="openai", prefix="/openai", config=SimpleNamespace(api="openai", name="openai")
    )
    made = []
    for index in range(count):
        made.append(
            SimpleNamespace(
                request=SimpleNamespace(headers=headers, method="POST", transport=None),
                route=route,
                path="/v1/chat/completions",
                identity=SimpleNamespace(
                    agent_id="bench", task_id=f"task-{index % 100}", agent_version="", team=""
                ),
                plan=SimpleNamespace(
                    api="openai",
                    model="gpt-4o-mini",
                    tool_name=None,
                    stream=False,
                    body=b"{}",
                    operation="chat",
                    priced=True,
                ),
                record=SimpleNamespace(attributes={}, error=None),
                trace=SimpleNamespace(trace_id=index.to_bytes(16, "big")),
                status=200,
                decided_by=DecidedBy.UPSTREAM,
                reached_upstream=True,
                cost=0.0001,
                facts=SimpleNamespace(usage=None, tool_error=None),
                started=0.0,
                response_headers={},
                fault=None,
                fail=lambda kind, message: None,
                add_chunk_tap=lambda tap: None,
            )
        )
    return made


async def per_call(stage: Any, calls: list[Any]) -> float:
    on_request, on_response = stage.on_request, stage.on_response
    started = time.process_time()
    for call in calls:
        await on_request(call)
        await on_response(call)
    return (time.process_time() - started) / len(calls)


async def measure(calls_count: int, rounds: int) -> dict[str, float]:
    """This checkout's stages (child mode): µs per call, best round, less nothing's."""
    import yaml

    from agent_sre.config import load_config
    from agent_sre_daemon.node import Node

    workdir = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    shipped = yaml.safe_load((ROOT / "config/agent-sre.yaml").read_text())
    config = merged(
        shipped,
        {
            "chaos": {"enabled": True, "experiments": CHAOS_EXPERIMENTS},
            "rollouts": {"rollouts": ROLLOUTS},
            "incidents": {"circuit_breakers": BREAKERS},
        },
    )
    config["state_dir"] = str(workdir / "state")
    for section, key in (
        ("receivers", "otlp"),
        ("exporters", "prometheus"),
        ("admin", None),
        ("proxy", None),
    ):
        target = config[section] if key is None else config[section][key]
        if section == "receivers":
            target["grpc"]["endpoint"] = "127.0.0.1:0"
            target["http"]["endpoint"] = "127.0.0.1:0"
        else:
            target["endpoint"] = "127.0.0.1:0"
    config["exporters"]["otlp"]["endpoint"] = ""
    path = workdir / "agent-sre.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    node = Node(load_config(str(path)), config_path=str(path), ready_file=None)
    running = asyncio.ensure_future(node.run())
    while not node.ready:
        if running.done():
            running.result()
        await asyncio.sleep(0.02)
    chaos: Any = next(c for c in node.components if c.name == "chaos")
    for experiment in CHAOS_EXPERIMENTS:
        chaos.start_experiment(str(experiment["name"]))
    replay: Any = next(c for c in node.components if c.name == "replay")
    try:
        from agent_sre.replay.script import ReplayScript
        from agent_sre_daemon.replay.sessions import ReplaySession

        for prefix in ("/anthropic", ""):
            script = ReplayScript([], replay.redactor)
            replay.sessions.open(ReplaySession("", "bench", script, prefix=prefix))
    except ImportError:
        pass
    proxy: Any = next(c for c in node.components if c.name == "proxy")
    stages = {stage.name: stage for stage in proxy._chain.stages if stage.name in ENGINES}
    calls = make_calls(calls_count)
    nothing = NoStage()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for stage in (nothing, *stages.values()):
            spent = await per_call(stage, calls)
            best[stage.name] = min(best.get(stage.name, spent), spent)
    floor = best.pop("nothing")
    out = {name: (spent - floor) * 1e6 for name, spent in best.items()}
    out["nothing"] = floor * 1e6
    return out


def child(checkout: Path, python: str, calls: int, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}:{checkout / 'daemon'}"}
    args = [python, str(Path(__file__).resolve()), "--child", "--calls", str(calls)]
    args += ["--rounds", str(rounds)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="alternations with --before")
    parser.add_argument("--before", help="another checkout, measured alternately")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        figures = uvloop.run(measure(args.calls, args.rounds))
        print(json.dumps(figures), flush=True)
        os._exit(0)  # the node's threads and sockets: nothing to keep
    labels = ["after"] + (["before"] if args.before else [])
    results: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    for _ in range(args.repeat):
        results["after"].append(child(ROOT, sys.executable, args.calls, args.rounds))
        if args.before:
            results["before"].append(
                child(Path(args.before).resolve(), sys.executable, args.calls, args.rounds)
            )
    when = time.strftime("%Y-%m-%d %H:%M")
    print(
        f"# µs per call a stage adds over a do-nothing stage (best of {args.rounds} rounds of "
        f"{args.calls} calls; each run's figure, {args.repeat} runs), {when}"
    )
    for name in (*ENGINES, "nothing"):
        row = " | ".join(
            f"{label} " + ", ".join(f"{r.get(name, float('nan')):5.2f}" for r in results[label])
            for label in labels
        )
        print(f"{name:<16} {row}")


if __name__ == "__main__":
    main()
