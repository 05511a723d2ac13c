"""Budget configuration (placeholder until the cost guard lands)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BudgetsConfig(BaseModel):
    """The ``budgets:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
