"""Item counts of the signals the daemon passes through unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )


def count_metrics(request: ExportMetricsServiceRequest) -> int:
    """Number of metrics (not data points: counting those would touch every point)."""
    return sum(
        len(scope.metrics)
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
    )


def count_log_records(request: ExportLogsServiceRequest) -> int:
    return sum(
        len(scope.log_records)
        for resource in request.resource_logs
        for scope in resource.scope_logs
    )
