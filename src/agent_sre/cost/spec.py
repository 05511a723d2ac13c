"""The ``budgets:`` section: cost budgets, rate limits, prices for private models, the store.

Example::

    budgets:
      store: sqlite                    # or redis (cluster-wide), with redis_url
      on_store_error: fail_closed      # or fail_open (a local ledger catches up)
      price_overrides:
        my-private-model: {input_per_mtok: 1.0, output_per_mtok: 2.0}
      budgets:
        - {name: per-agent-daily, scope: agent, limit_usd: 5, window: day}
        - {name: task-cap, scope: task, limit_usd: 0.5, window: per_task, action: block}
      rate_limits:
        - {requests_per_minute: 600, tokens_per_minute: 200000}
"""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agent_sre.section import Duration, Section

BudgetScope = Literal["task", "agent", "team", "node", "global"]
BudgetWindow = Literal["per_task", "1h", "24h", "day", "month"]
BudgetAction = Literal["block", "throttle", "alert"]


class ModelPrice(Section):
    """USD per million tokens for a model genai-prices does not know (or to override it)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)
    context_window: int | None = Field(None, gt=0)
    """Largest output the model can produce, for the worst-case reservation."""


class PriceAs(Section):
    """``unpriced_models: {price_as: MODEL}``: an unknown model is reserved and charged at
    the rates of ``price_as`` (a model the price table or ``price_overrides`` knows)."""

    price_as: str = Field(min_length=1)


UnpricedModels = Literal["block", "allow"] | PriceAs


class BudgetSpec(Section):
    """One spending limit, kept per subject of its scope (each agent, each task, ...)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    scope: BudgetScope
    limit_usd: float = Field(gt=0)
    window: BudgetWindow = "day"
    """``per_task`` (the life of a task), rolling ``1h``/``24h``, calendar ``day``/``month``
    (UTC)."""
    soft_thresholds: list[float] = [0.8]
    """Shares of the limit (0 < x < 1) that raise a ``budget_threshold`` signal once per
    window."""
    action: BudgetAction = "block"
    """``block`` refuses with ``budget_exceeded``; ``throttle`` answers 429 with Retry-After
    until the window frees room; ``alert`` only raises signals."""
    agents: list[str] = []
    """Only calls of these agent ids count (empty: every agent)."""
    teams: list[str] = []
    """Only calls of these teams count (empty: every team, and calls without one)."""

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        for share in self.soft_thresholds:
            if not 0 < share < 1:
                raise ValueError(f"soft_thresholds: {share} must be between 0 and 1")
        if self.window == "per_task" and self.scope != "task":
            raise ValueError("window per_task needs scope task")
        return self


class RateLimitSpec(Section):
    """Token buckets kept per agent; exceeding one answers 429 ``agent_throttled``."""

    renamed_keys: ClassVar[dict[str, str]] = {"burst_seconds": "burst"}

    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    """Counted on the worst-case tokens of each request (input estimate + max output)."""
    burst: Duration = Field(10.0, gt=0)
    """Bucket depth, as a duration of the rate (``10s``: ten seconds' worth of requests)."""
    agents: list[str] = []
    """Agents this applies to (empty: every agent, each with its own buckets)."""


class AnomalySpec(Section):
    """EWMA of each agent's spend per interval; a spike raises a ``cost_anomaly`` signal."""

    renamed_keys: ClassVar[dict[str, str]] = {"interval_seconds": "interval"}

    enabled: bool = True
    interval: Duration = Field(60.0, gt=0)
    """Length of one interval whose spend is compared with the average."""
    alpha: float = Field(0.3, gt=0, le=1)
    threshold_sigma: float = Field(4.0, gt=0)
    min_usd: float = Field(0.01, ge=0)
    """Spikes below this spend per interval are ignored."""
    warmup_intervals: int = Field(3, ge=1)


class BudgetsConfig(Section):
    """The ``budgets`` section."""

    renamed_keys: ClassVar[dict[str, str]] = {"auto_throttle_tau_seconds": "auto_throttle_tau"}

    budgets: list[BudgetSpec] = []
    rate_limits: list[RateLimitSpec] = []
    price_overrides: dict[str, ModelPrice] = {}
    """Keyed by model name (as sent in the request, e.g. ``my-org/llama-70b``)."""
    auto_throttle: bool = False
    """Pace an agent whose spend rate would exhaust an ``agent`` or ``task`` budget before
    its window ends (429 ``agent_throttled`` with the wait in Retry-After)."""
    auto_throttle_after: float = Field(0.5, ge=0, lt=1)
    """Share of a budget used before pacing applies to it: early in a window bursts are fine,
    as the budget runs down the pace is stretched to last the window."""
    auto_throttle_tau: Duration = Field(300.0, gt=0)
    """Time constant of the spend rate auto-throttle watches: bursts shorter than this
    barely count, a pace sustained over it does."""
    anomaly: AnomalySpec = AnomalySpec()
    agent_teams: dict[str, str] = {}
    """Team of an agent id, for ``team`` budgets when the call carries no ``X-Agent-Team``."""
    unpriced_models: UnpricedModels = "block"
    """What to do with an LLM call that a budget covers when its model has no price (unknown
    to genai-prices and ``price_overrides``, or no readable model at all): ``block`` refuses
    it (403 ``model_unpriced``), ``allow`` lets it through uncharged (counted in
    ``agent_sre_llm_unpriced_requests_total``), ``{price_as: MODEL}`` charges it at MODEL's
    rates. Calls no budget covers are never refused for this."""
    default_max_output_tokens: int = Field(4096, gt=0)
    """Worst-case output for a request without ``max_tokens`` and a model of unknown limit."""
    store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "agent-sre:ledger"
    on_store_error: Literal["fail_closed", "fail_open"] = "fail_closed"

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        problem = redis_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _unique(self) -> BudgetsConfig:
        names = [budget.name for budget in self.budgets]
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique: {', '.join(dupes)}")
        return self


_REDIS_URL_FORMS = "redis://host:port/db, rediss://host:port/db (TLS) or unix:///path/to.sock"


def redis_url_problem(url: str) -> str | None:
    """Why the Redis client would refuse ``url``; None when it parses. The URL itself is not
    repeated: it may hold a password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"not a Redis URL (bad port); use {_REDIS_URL_FORMS}"
    if parts.scheme == "unix":
        return None if parts.path else f"names no socket path; use {_REDIS_URL_FORMS}"
    if parts.scheme not in ("redis", "rediss"):
        return f"not a Redis URL; use {_REDIS_URL_FORMS}"
    if not parts.hostname:
        return f"names no host; use {_REDIS_URL_FORMS}"
    if port == 0:
        return f"port 0 cannot be connected to; use {_REDIS_URL_FORMS}"
    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        return f"the database after the host must be a number (/0); use {_REDIS_URL_FORMS}"
    return None
