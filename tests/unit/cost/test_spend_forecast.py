"""A budget subject's spend series and its forecast to the limit, for each kind of window."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from agent_sre.cost.forecast import spend_forecast
from agent_sre.cost.spec import BudgetSpec
from agent_sre.cost.windows import position

DAY = 86400.0
MIDNIGHT = datetime(2026, 12, 7, tzinfo=timezone.utc).timestamp()


def spec(window: str, limit: float = 10.0) -> BudgetSpec:
    return BudgetSpec.model_validate(
        {"name": "b", "scope": "agent", "limit_usd": limit, "window": window}
    )


def test_a_day_budget_forecasts_at_the_rate_since_midnight() -> None:
    now = MIDNIGHT + 6 * 3600
    bucket = position("day", now).bucket
    forecast = spend_forecast(spec("day"), {bucket: 4.0}, now)
    assert forecast.window_start == MIDNIGHT and forecast.window_end == MIDNIGHT + DAY
    assert forecast.rate_usd_per_s is not None
    assert math.isclose(forecast.rate_usd_per_s * 3600, 4.0 / 6)
    assert math.isclose(forecast.exhaustion_in_s or 0, 9 * 3600)  # 6 USD more at 2/3 an hour
    assert forecast.points == ((MIDNIGHT, 0.0), (now, 4.0))
    data = forecast.to_dict(now)
    assert math.isclose(data["used"], 0.4)
    assert math.isclose(data["exhaustion_at"], now + data["exhaustion_in_s"])


def test_an_exhaustion_after_the_reset_is_none() -> None:
    now = MIDNIGHT + 12 * 3600
    forecast = spend_forecast(spec("day"), {position("day", now).bucket: 1.0}, now)
    assert forecast.exhaustion_in_s is None  # 1 USD per half day: 2 USD by midnight


def test_a_spent_budget_is_exhausted_now_and_nothing_spent_never() -> None:
    now = MIDNIGHT + 3600
    bucket = position("day", now).bucket
    assert spend_forecast(spec("day"), {bucket: 10.0}, now).exhaustion_in_s == 0.0
    assert spend_forecast(spec("day"), {}, now).exhaustion_in_s is None
    assert spend_forecast(spec("day"), {}, now).points == ((MIDNIGHT, 0.0), (now, 0.0))


def test_rolling_windows_keep_their_buckets_and_drop_old_ones() -> None:
    now = MIDNIGHT + 3 * 3600 + 30
    where = position("1h", now)
    buckets = {where.bucket - 70: 50.0, where.bucket - 30: 3.0, where.bucket: 4.0}
    forecast = spend_forecast(spec("1h"), buckets, now)
    assert forecast.spent_usd == 7.0  # the bucket 70 minutes ago is out of the window
    assert [round(spent, 6) for _, spent in forecast.points] == [0.0, 3.0, 7.0]
    assert forecast.window_end is None
    # the last 10 minutes spent 4 USD: 24 an hour, the 3 USD left last 7.5 minutes
    assert forecast.rate_usd_per_s is not None
    assert math.isclose(forecast.rate_usd_per_s, 4.0 / 600)
    assert math.isclose(forecast.exhaustion_in_s or 0, 3.0 / (4.0 / 600))
    # 1 USD in the last 10 minutes: 6 an hour stays under 10 over a whole window: never
    calm = spend_forecast(spec("1h"), {where.bucket - 30: 3.0, where.bucket: 1.0}, now)
    assert calm.exhaustion_in_s is None


def test_a_month_window_starts_on_the_first() -> None:
    now = MIDNIGHT + 3600
    forecast = spend_forecast(spec("month"), {position("month", now).bucket: 1.0}, now)
    assert forecast.window_start == datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()
    assert forecast.window_end == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()


def test_non_finite_spend_of_an_old_ledger_counts_as_none() -> None:
    now = MIDNIGHT + 3600
    bucket = position("day", now).bucket
    forecast = spend_forecast(spec("day"), {bucket: math.nan, bucket - 1: math.inf}, now)
    assert forecast.spent_usd == 0.0
    assert forecast.exhaustion_in_s is None


def test_per_task_budgets_have_no_window() -> None:
    task = BudgetSpec.model_validate(
        {"name": "t", "scope": "task", "limit_usd": 1.0, "window": "per_task"}
    )
    forecast = spend_forecast(task, {0: 2.0}, MIDNIGHT)
    assert forecast.window_start is None and forecast.points == ()
    assert forecast.exhaustion_in_s == 0.0
