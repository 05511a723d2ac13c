"""Fuzzes the native span pass under AddressSanitizer and UndefinedBehaviorSanitizer.

Run by ``tests/unit/tracing/test_wire_fuzz.py`` in a subprocess whose interpreter has
``libasan`` preloaded, with ``--module`` naming a build of ``_wirepass`` compiled with
``-fsanitize=address,undefined``. Valid requests (the parity test's generator) are mutated
(bits flipped, bytes cut, inserted, spliced, lengths changed); every mutant goes through
``scan`` and ``build`` (any input: a ValueError or a result, never a crash), and each mutant
protobuf still accepts goes through both span passes, which must agree.

Usage: python tests/support/wire_fuzz.py --module PATH [--examples N] [--seed N]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_sanitized(path: str) -> object:
    """Loads the sanitized build as ``agent_sre.tracing._wirepass`` before anything imports
    the installed one."""
    name = "agent_sre.tracing._wirepass"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    try:
        ctypes.CDLL(None).__asan_init  # noqa: B018 - raises when ASan is not in the process
    except AttributeError:
        raise SystemExit("AddressSanitizer is not loaded (LD_PRELOAD its runtime)") from None
    module = load_sanitized(args.module)
    sys.path.insert(0, str(ROOT))

    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agent_sre.numbers import MAX_MAGNITUDE
    from agent_sre.tracing import batch
    from agent_sre.tracing.view import AgentSpan
    from tests.support.wire import assert_same
    from tests.unit.tracing.test_wire_parity import requests

    assert batch._wirepass is module, "the span pass did not load the sanitized build"
    counts = {"examples": 0, "accepted_by_protobuf": 0, "refused_by_scan": 0}
    keys = tuple(sorted(batch.TraceBatchProcessor({}).resource_wanted))

    @st.composite
    def mutants(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(requests()))
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            op = draw(st.integers(min_value=0, max_value=5))
            at = draw(st.integers(min_value=0, max_value=len(data)))
            if op == 0 and data:  # flip bits
                at = min(at, len(data) - 1)
                data[at] ^= draw(st.integers(min_value=1, max_value=255))
            elif op == 1:  # cut
                data = data[:at] + data[at + draw(st.integers(min_value=1, max_value=8)) :]
            elif op == 2:  # insert
                data[at:at] = draw(st.binary(min_size=1, max_size=6))
            elif op == 3:  # a huge or negative-looking length / varint
                data[at:at] = draw(
                    st.sampled_from([b"\xff" * 10, b"\x80" * 11, b"\x0a\xff\xff\xff\xff\x0f"])
                )
            elif op == 4:  # splice a piece of itself elsewhere
                end = draw(st.integers(min_value=at, max_value=len(data)))
                data[draw(st.integers(min_value=0, max_value=len(data))) :] += data[at:end]
            else:  # truncate
                data = data[:at]
        return bytes(data)

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(mutants(), st.binary(max_size=200)))
    def fuzz(body: bytes) -> None:
        counts["examples"] += 1
        kinds = batch._KIND_TABLES
        try:
            spans, _, _ = module.scan(  # type: ignore[attr-defined]
                body, keys, keys, kinds, AgentSpan, MAX_MAGNITUDE
            )
            edits: list[object] = [
                None if i % 3 == 0 else "TOOL_CALL" if i % 3 == 1 else False
                for i in range(len(spans))
            ]
            module.build(body, edits, "agent.span.kind", (("n", "v"),), "n")  # type: ignore[attr-defined]
        except ValueError:
            counts["refused_by_scan"] += 1
        try:
            ExportTraceServiceRequest.FromString(body)
        except Exception:  # noqa: BLE001 - what protobuf refuses the receivers answer 400
            return
        counts["accepted_by_protobuf"] += 1
        assert_same(body)

    if args.seed is not None:
        fuzz = seed(args.seed)(fuzz)
    fuzz()
    print(
        f"fuzzed {counts['examples']} inputs: {counts['accepted_by_protobuf']} decodable"
        f" (both passes agreed), {counts['refused_by_scan']} refused by the scan"
    )


if __name__ == "__main__":
    main()
