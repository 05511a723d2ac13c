"""What each engine's proxy stage costs a call it does not concern, in-process, against a
do-nothing stage in the same run (and, with ``--before DIR``, the same stages of another
checkout run alternately with this one); and what one-call correlation costs the proxy's
span of a call on a node where no agent sends its own spans (``correlation``, over the
pipeline's own work for that span, ``proxy span``).

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


async def measure(calls_count: int, rounds: int) -> None:
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
    out.update(correlation_cost(node, proxy, calls_count // 4, rounds))
    # out of here at once: cancelling the running node from outside crashes this Python
    # (3.11, a coroutine frame resumed after its code was cleared), daemons stop by signal
    print(json.dumps(out), flush=True)
    os._exit(0)


def proxy_spans(proxy: Any, count: int) -> list[tuple[Any, dict[str, Any]]]:
    """Spans of proxied calls as the proxy builds them (the attributes of a priced call)."""
    from agent_sre.gateway.identity import TraceContext
    from agent_sre_daemon.proxy.spans import CallRecord, build_request

    made = []
    now = time.time_ns()
    for _ in range(count):
        record = CallRecord("openai", "LLM_INFERENCE", "chat gpt-4o-mini", now, now + 900_000)
        record.attributes.update(
            {
                "http.request.method": "POST",
                "http.response.status_code": 200,
                "agent_sre.decided_by": "upstream",
                "agent.id": "bench",
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.stream": False,
                "gen_ai.request.max_tokens": 16,
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-" + os.urandom(12).hex(),
                "agent_sre.budget.decision": "admitted",
                "gen_ai.usage.input_tokens": 9,
                "gen_ai.usage.output_tokens": 12,
                "agent_sre.cost.estimated": False,
                "agent_sre.cost_usd": 0.0000123,
            }
        )
        trace = TraceContext(os.urandom(16), b"", os.urandom(8), 1)
        made.append((build_request(record, trace, proxy._resource), record.attributes))
    return made


def correlation_cost(node: Any, proxy: Any, count: int, rounds: int) -> dict[str, float]:
    """The proxy's span handed to correlation (held, then released, or let through) against
    the same span accepted straight away (the pipeline's own work), on a node where no
    agent sends its own spans and the first hold ran out: µs per call, best round."""
    correlation: Any = next(c for c in node.components if c.name == "correlation")
    pipeline = correlation.context.pipeline
    clock = correlation.context.clock
    # one call, then its hold runs out with no agent span (a checkout that always holds just
    # releases it)
    first = proxy_spans(proxy, 1)[0]
    pipeline.export_proxy_call(*first)
    correlation._release(correlation.correlator.expire(clock.time() + 3600), "hold_expired")
    best_direct = best_offered = float("inf")
    for _ in range(rounds):
        spans = proxy_spans(proxy, count)
        started = time.process_time()
        for request, _ in spans:
            pipeline.export_call(request)
        best_direct = min(best_direct, (time.process_time() - started) / count)
        spans = proxy_spans(proxy, count)
        started = time.process_time()
        for request, attrs in spans:
            pipeline.export_proxy_call(request, attrs)
        # whatever was held is released (its hold would run out) and accepted then
        correlation._release(correlation.correlator.release_all(), "hold_expired")
        best_offered = min(best_offered, (time.process_time() - started) / count)
    return {
        "correlation": (best_offered - best_direct) * 1e6,
        "proxy span": best_direct * 1e6,
    }


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

        try:
            uvloop.run(measure(args.calls, args.rounds))  # prints the figures and exits
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        os._exit(1)
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
    for name in (*ENGINES, "nothing", "correlation", "proxy span"):
        row = " | ".join(
            f"{label} " + ", ".join(f"{r.get(name, float('nan')):5.2f}" for r in results[label])
            for label in labels
        )
        print(f"{name:<16} {row}")


if __name__ == "__main__":
    main()
