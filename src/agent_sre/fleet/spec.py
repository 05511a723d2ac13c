"""The ``fleet:`` section: publishing this node's summary and reading the others'.

::

    fleet:
      enabled: true
      store: auto            # auto: the budgets' Redis when budgets.store is redis
                             # redis: budgets.redis_url always; none: this node only
      publish_interval: 10s
      ttl: 30s               # a node not heard from within this drops out
      key_prefix: agent-sre:fleet
      max_agents: 10000
      prometheus_url: ""     # where the fleet's long-term math lives (linked from the view)

The shared store is the Redis the budgets use (``budgets.redis_url``): there is no second
Redis setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent_sre.section import Duration, Section

MAX_AGENTS = 10_000
"""The most agents one summary carries, and the most the fleet view keeps."""


class FleetConfig(Section):
    enabled: bool = True
    """``false``: nothing is published and ``GET /v1/fleet`` answers for this node alone."""
    store: Literal["auto", "redis", "none"] = "auto"
    """Where summaries are shared: ``auto`` uses the budgets' Redis (``budgets.redis_url``)
    when ``budgets.store`` is ``redis``, else none; ``redis`` always uses
    ``budgets.redis_url``; ``none``: the fleet is this node."""
    publish_interval: Duration = Field(10.0, ge=0.1, le=3600.0)
    """How often this node publishes its summary and reads the others'."""
    ttl: Duration = Field(30.0, ge=0.3, le=86400.0)
    """A summary older than this no longer counts (its key expires in the store too); a
    node silent longer than two publish intervals is shown ``stale`` until then."""
    key_prefix: str = Field("agent-sre:fleet", min_length=1, max_length=100)
    """Keys are ``{<key_prefix>}:node:<node>`` and the index ``{<key_prefix>}:nodes``."""
    max_agents: int = Field(MAX_AGENTS, ge=1, le=MAX_AGENTS)
    """Agents this node remembers and publishes (the most recently seen first)."""
    max_nodes: int = Field(1000, ge=1, le=10_000)
    """Summaries read from the store at most (the most recently published first)."""
    prometheus_url: str = Field("", max_length=2000)
    """The Prometheus that holds the fleet's long-term SLO math (the generated rules,
    ``agent-sre rules prometheus``); shown as a link in ``GET /v1/fleet``."""

    @model_validator(mode="after")
    def _ttl_covers_a_publish(self) -> FleetConfig:
        if self.ttl < 2 * self.publish_interval:
            raise ValueError(
                f"ttl ({self.ttl:g}s) must be at least twice publish_interval "
                f"({self.publish_interval:g}s), or a live node would drop out between publishes"
            )
        return self
