"""Which span pass the pipeline runs: the native one over the request's bytes when it is built
and ``receivers.otlp.span_pass`` is ``auto``; the Python one otherwise, said once in the log
when it is so because the native pass is not built."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

from agent_sre.config import Config
from agent_sre.tracing.batch import NATIVE
from agent_sre_daemon.clock import ManualClock
from agent_sre_daemon.ingest import pipeline as pipeline_module
from agent_sre_daemon.ingest.pipeline import Pipeline
from tests.support.spans import make_request

if TYPE_CHECKING:
    import pytest


def _config(span_pass: str) -> Config:
    return Config.model_validate({"receivers": {"otlp": {"span_pass": span_pass}}})


def _pipeline(config: Config) -> tuple[Pipeline, list[bytes]]:
    metrics = Pipeline.register_metrics(CollectorRegistry())
    pipeline = Pipeline(config, {"agent_sre.node": "n"}, metrics, ManualClock())
    seen: list[bytes] = []
    pipeline.observers_of_batches = [lambda body, now: seen.append(body)]
    return pipeline, seen


def test_without_the_native_pass_the_python_one_runs_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline_module, "NATIVE", False)
    monkeypatch.setattr(pipeline_module, "_FALLBACK_SAID", False)
    with caplog.at_level(logging.WARNING, logger="agent_sre.pipeline"):
        first, seen = _pipeline(_config("auto"))
        _pipeline(_config("auto"))
    said = [r for r in caplog.records if "Python span pass is in use" in r.getMessage()]
    assert len(said) == 1
    assert first.native is False
    request = make_request(3)
    body = request.SerializeToString()
    result, _ = first._process_traces(request, "grpc", len(body), body)
    assert result.accepted == 3
    forwarded = ExportTraceServiceRequest.FromString(seen[0])
    assert forwarded.resource_spans[0].resource.attributes[-1].key == "agent_sre.node"


def test_span_pass_python_is_the_python_pass_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent_sre.pipeline"):
        pipeline, _ = _pipeline(_config("python"))
    assert pipeline.native is False
    assert not caplog.records


def test_auto_runs_the_native_pass_when_built_and_forwards_what_it_wrote() -> None:
    pipeline, seen = _pipeline(_config("auto"))
    assert pipeline.native is NATIVE
    request = make_request(7)
    body = request.SerializeToString()
    calls: list[bytes] = []
    real = pipeline.processor.process_wire
    pipeline.processor.process_wire = lambda b, now: (calls.append(b), real(b, now))[1]  # type: ignore[method-assign]
    result, _ = pipeline._process_traces(request, "grpc", len(body), body)
    assert result.accepted == 7
    assert calls == ([body] if NATIVE else [])
    forwarded = ExportTraceServiceRequest.FromString(seen[0])
    kinds = [
        kv.value.string_value
        for span in forwarded.resource_spans[0].scope_spans[0].spans
        for kv in span.attributes
        if kv.key == "agent.span.kind"
    ]
    assert kinds[:3] == ["AGENT_TASK", "LLM_INFERENCE", "TOOL_CALL"]
    # the decoded request was left as it came: the bytes are what is forwarded
    if NATIVE:
        assert seen[0] != request.SerializeToString()


async def test_the_span_pass_follows_a_reload() -> None:
    pipeline, _ = _pipeline(_config("auto"))
    prepared = await pipeline.prepare_reload(_config("python"))
    assert prepared.commit is not None
    await prepared.commit()
    assert pipeline.native is False
    prepared = await pipeline.prepare_reload(_config("auto"))
    assert prepared.commit is not None
    await prepared.commit()
    assert pipeline.native is NATIVE
