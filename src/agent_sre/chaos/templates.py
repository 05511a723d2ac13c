"""Shipped experiments for the common cases, selected with ``template: <name>``.

Each is the part of an experiment the template gives; the experiment's own keys win
(``targets`` usually comes from the experiment).
"""

from __future__ import annotations

from typing import Any

TEMPLATES: dict[str, dict[str, Any]] = {
    "tool-timeout": {
        "description": "Tool calls hang until the agent gives up.",
        "faults": [{"type": "timeout", "hold": "120s", "probability": 0.5}],
        "duration": "5m",
        "abort_when": [{"error_ratio_above": 0.8, "min_calls": 20}],
    },
    "error-storm": {
        "description": "A burst of provider 5xx errors.",
        "faults": [
            {"type": "error", "status": 500, "probability": 0.3},
            {"type": "error", "status": 503, "probability": 0.3},
        ],
        "duration": "5m",
        "abort_when": [{"error_ratio_above": 0.7, "min_calls": 20}],
    },
    "llm-degradation": {
        "description": "A slow, flaky model: added latency, slow streams, some errors.",
        "faults": [
            {"type": "latency", "delay": "3s", "jitter": "2s", "probability": 0.4},
            {"type": "slow_stream", "delay": "300ms", "probability": 0.3},
            {"type": "error", "status": 503, "probability": 0.1},
        ],
        "duration": "10m",
    },
    "rate-limit-storm": {
        "description": "The provider throttles: 429s with Retry-After.",
        "faults": [{"type": "rate_limit", "retry_after": "2s", "probability": 0.5}],
        "duration": "5m",
        "abort_when": [{"error_ratio_above": 0.9, "min_calls": 20}],
    },
    "cascading-failure": {
        "description": "Two routes fail together: errors on one, timeouts on the other "
        "(list both routes in targets.routes).",
        "faults": [
            {"type": "error", "status": 503, "probability": 0.4},
            {"type": "timeout", "hold": "60s", "probability": 0.2},
        ],
        "duration": "5m",
        "abort_when": [{"error_ratio_above": 0.8, "min_calls": 20}],
    },
    "cost-explosion": {
        "description": "Reported usage is inflated tenfold: does the cost guard hold?",
        "faults": [{"type": "token_inflation", "factor": 10}],
        "duration": "10m",
    },
}
"""Template name -> the experiment keys it gives."""
