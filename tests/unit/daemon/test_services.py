"""Services the components offer each other: one object per name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agent_sre.config import Config
from agent_sre_daemon.node import ENGINES
from tests.support.context import node_context

if TYPE_CHECKING:
    from pathlib import Path


def test_a_second_object_under_one_name_is_refused() -> None:
    context = node_context(Config())
    first, second = object(), object()
    context.provide("incidents", first)
    context.provide("incidents", first)  # the same object again is harmless
    with pytest.raises(ValueError, match="'incidents' is already provided"):
        context.provide("incidents", second)
    assert context.service("incidents") is first


def test_every_engine_offers_its_services_under_names_of_its_own(tmp_path: Path) -> None:
    """Two engines offering different objects under one name left readers with the last one
    (the fleet read the incidents book where it expected the incidents runtime)."""
    context = node_context(Config(state_dir=str(tmp_path)))
    engines = [make(context) for make in ENGINES]
    offered = {name: type(service).__name__ for name, service in context.services.items()}
    assert len(engines) == len(ENGINES)
    assert offered["incidents"] == "IncidentsRuntime", offered
