"""SLO specifications as written in configuration (placeholder until the SLO engine lands)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SLOSpec(BaseModel):
    """One SLO as declared under ``slos:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
