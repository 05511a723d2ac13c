"""What reading a call costs per provider, in-process: ``plan_call`` on the request and the
answer's usage (``facts_from_json``, or the stream tap over a whole streamed answer), and
the SigV4 signature of a Bedrock call; and the same OpenAI reading in ``--before`` (an
older checkout, run in a subprocess in the same window) as a ratio. No sockets, no daemon:
the figure is the providers seam's own CPU per call, the part of a proxied call this
seam decides (``bench/proxy.py --providers`` gives whole calls through the daemon).

    .venv/bin/python bench/providers.py [--before /work/wt-before-providers] [--calls 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}],
                   "max_tokens": 16}).encode()  # fmt: skip
CHAT_ANSWER = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello word word"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}).encode()  # fmt: skip
OPENAI_ONLY = """
import json, sys, time
from agent_sre.config import ProxyRoute
from agent_sre.gateway.providers import facts_from_json, plan_call
route = ProxyRoute(name="openai", prefix="/openai", upstream="http://x", api="openai")
body, answer, calls = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
best = None
for _ in range(5):
    started = time.perf_counter()
    for _ in range(calls):
        facts_from_json(plan_call(route, "POST", "/v1/chat/completions", body), answer)
    spent = (time.perf_counter() - started) / calls
    best = spent if best is None else min(best, spent)
print(best)
"""


def openai_in(checkout: Path, calls: int) -> float:
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}"}
    out = subprocess.run(
        [sys.executable, "-c", OPENAI_ONLY, CHAT.decode(), CHAT_ANSWER.decode(), str(calls)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip())


def cases() -> dict[str, tuple[dict[str, object], str, bytes, bytes, str]]:
    from agent_sre.gateway.eventstream import encode_message

    gemini_answer = json.dumps({
        "candidates": [{"content": {"parts": [{"text": "Hello word word"}]},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3,
                          "thoughtsTokenCount": 4}, "modelVersion": "gemini-2.5-flash",
    }).encode()  # fmt: skip
    chunk = b"data: " + gemini_answer + b"\r\n\r\n"
    converse = json.dumps({"messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
                           "inferenceConfig": {"maxTokens": 16}}).encode()  # fmt: skip
    frames = b"".join(
        encode_message({":event-type": name, ":message-type": "event"}, json.dumps(data).encode())
        for name, data in [("contentBlockDelta", {"delta": {"text": "Hello"}})] * 3
        + [("metadata", {"usage": {"inputTokens": 9, "outputTokens": 3}})]
    )
    return {
        "openai": ({"api": "openai"}, "/v1/chat/completions", CHAT, CHAT_ANSWER, ""),
        "gemini": ({"api": "gemini"}, "/v1beta/models/gemini-2.5-flash:generateContent",
                   b'{"contents":[{"parts":[{"text":"Say hello"}]}],'
                   b'"generationConfig":{"maxOutputTokens":16}}', gemini_answer, ""),
        "gemini stream": ({"api": "gemini"},
                          "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                          b"{}", chunk * 4, "text/event-stream"),
        "azure": ({"api": "azure_openai", "deployments": {"prod": "gpt-4o-mini"}},
                  "/openai/deployments/prod/chat/completions", CHAT, CHAT_ANSWER, ""),
        "local": ({"api": "openai_compatible"}, "/v1/chat/completions", CHAT, CHAT_ANSWER, ""),
        "bedrock": ({"api": "bedrock"}, "/model/amazon.nova-lite-v1:0/converse", converse,
                    b'{"output":{"message":{"content":[{"text":"Hello"}]}},'
                    b'"usage":{"inputTokens":9,"outputTokens":3}}', ""),
        "bedrock stream": ({"api": "bedrock"}, "/model/amazon.nova-lite-v1:0/converse-stream",
                           converse, frames, "application/vnd.amazon.eventstream"),
    }  # fmt: skip


def per_call(run: object, calls: int) -> float:
    best = None
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            run()  # type: ignore[operator]
        spent = (time.perf_counter() - started) / calls
        best = spent if best is None else min(best, spent)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="an older checkout: its OpenAI reading, same run")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--alternations", type=int, default=6, help="before/after turns")
    args = parser.parse_args()
    from multidict import CIMultiDict

    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.providers import facts_from_json, plan_call
    from agent_sre.gateway.sse import stream_tap

    print(f"# python {sys.version.split()[0]}, best of 5 x {args.calls} calls, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    figures: dict[str, float] = {}
    for name, (extra, path, body, answer, stream) in cases().items():
        route = ProxyRoute(name="r", prefix="/r", upstream="http://x", **extra)  # type: ignore[arg-type]

        def run(route=route, path=path, body=body, answer=answer, stream=stream) -> None:  # noqa: ANN001
            plan = plan_call(route, "POST", path, body)
            if stream:
                tap = stream_tap(plan, stream)
                assert tap is not None
                tap.feed(answer)
                tap.finish()
                assert tap.facts.usage is not None
            else:
                assert facts_from_json(plan, answer).usage is not None

        figures[name] = per_call(run, args.calls)
    base = figures["openai"]
    for name, spent in figures.items():
        print(f"{name:<15} plan + usage {spent * 1e6:7.2f} µs/call ({spent / base:4.2f}x openai)")
    from agent_sre_daemon.proxy.signing import aws_signer

    bedrock = ProxyRoute(name="b", prefix="/b", api="bedrock",
                         upstream="https://bedrock-runtime.us-east-1.amazonaws.com")  # fmt: skip
    sign = aws_signer(bedrock, {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "s"})
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-lite-v1:0/converse"

    def signed() -> None:
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
        coroutine = sign("POST", url, headers, CHAT)
        with contextlib.suppress(StopIteration):  # static credentials: it never waits
            coroutine.send(None)

    spent = per_call(signed, max(1, args.calls // 10))
    print(f"{'bedrock SigV4':<15} signature      {spent * 1e6:7.2f} µs/call "
          f"({spent / base:4.2f}x an openai reading)")  # fmt: skip
    if args.before:  # alternated, the best of each: the machine's drift falls on both
        befores, afters = [], []
        for _ in range(args.alternations):
            befores.append(openai_in(Path(args.before).resolve(), args.calls))
            afters.append(openai_in(ROOT, args.calls))
        before, after = min(befores), min(afters)
        print(f"openai reading: before {before * 1e6:.2f} µs, after {after * 1e6:.2f} µs "
              f"({after / before:4.2f}x before)")  # fmt: skip


if __name__ == "__main__":
    main()
