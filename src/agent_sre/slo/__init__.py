"""SLO specs, SLIs, bucketed windows, error budgets, burn rates and Prometheus rules.

The engine is pure: spans and times in, counts, reports and status signals out.
"""

from agent_sre.slo.alerts import BurnRateWindow, Status, StatusChange
from agent_sre.slo.buckets import SnapshotError
from agent_sre.slo.compare import compare_slo_sets
from agent_sre.slo.compiled import OVERFLOW
from agent_sre.slo.engine import SLOEngine
from agent_sre.slo.report import InstanceReport, SLOReport
from agent_sre.slo.rules import generate_prometheus_rules
from agent_sre.slo.spec import AlertWindowSpec, SLIKind, SLISpec, SLOSpec

__all__ = [
    "OVERFLOW",
    "AlertWindowSpec",
    "BurnRateWindow",
    "InstanceReport",
    "SLIKind",
    "SLISpec",
    "SLOEngine",
    "SLOReport",
    "SLOSpec",
    "SnapshotError",
    "Status",
    "StatusChange",
    "compare_slo_sets",
    "generate_prometheus_rules",
]
