"""The ``rollouts:`` section: good files load, bad ones say where and what."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agent_sre.config import ConfigError, load_config

if TYPE_CHECKING:
    from pathlib import Path

ROUTES = """
proxy:
  routes:
    - {name: openai, prefix: /openai, upstream: "https://api.openai.com", api: openai}
    - {name: search, prefix: /search, upstream: "http://search:8080", api: tool}
"""


def load(tmp_path: Path, rollouts: str) -> object:
    path = tmp_path / "agent-sre.yaml"
    path.write_text(ROUTES + rollouts)
    return load_config(str(path), {})


GOOD = """
rollouts:
  evaluate_every: 30s
  rollouts:
    - name: gpt41
      route: openai
      baseline: gpt-4o
      candidate: gpt-4.1
      steps:
        - {weight: 10, duration: 10m}
        - {weight: 50, pause: true}
"""


def test_a_good_section_loads(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)
    rollout = config.rollouts.rollouts[0]  # type: ignore[attr-defined]
    assert config.rollouts.evaluate_every == 30  # type: ignore[attr-defined]
    assert rollout.steps[0].duration == 600
    assert rollout.analysis.min_samples == 50


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (GOOD.replace("route: openai", "route: nope"), "rollouts.rollouts[0].route",
         "no proxy route named 'nope'"),
        (GOOD.replace("route: openai", "route: search"), "rollouts.rollouts[0].vary",
         "names no model"),
        (GOOD.replace("{weight: 10, duration: 10m}", "{weight: 10}"),
         "rollouts.rollouts[0].steps[0]", "give the step a duration"),
        (GOOD.replace("weight: 10,", "weight: 0,"), "steps[0].weight", "greater than 0"),
        (GOOD.replace("duration: 10m", "duration: 10x"), "steps[0].duration", "not a duration"),
        (GOOD.replace("candidate: gpt-4.1", "candidate: gpt-4o"), "rollouts.rollouts[0]",
         "the same as the baseline"),
        (GOOD + "      analysis: {slo: missing}\n", "rollouts.rollouts[0].analysis",
         "no SLO named 'missing'"),
        (GOOD + "      analysis: {checks: [{metric: latency_p95}]}\n", "checks[0]",
         "give threshold, max_relative_change or both"),
        (GOOD + "      analysis: {confidence: 1.5}\n", "analysis.confidence", "less than 1"),
        (GOOD + "      vary: upstream\n", "rollouts.rollouts[0]", "not an http(s) upstream URL"),
        (GOOD + "      vary: agent_version\n      mode: shadow\n", "rollouts.rollouts[0]",
         "mode: shadow needs vary: model or upstream"),
        (GOOD + GOOD.split("rollouts:\n", 2)[2].replace("  evaluate_every: 30s\n", ""),
         "rollouts.rollouts", "'gpt41' is given twice"),
        (GOOD.replace("name: gpt41", "name: 'bad name'"), "rollouts.rollouts[0].name",
         "is not a rollout name"),
        (GOOD.replace("evaluate_every: 30s", "evaluate_every: 0s"), "rollouts",
         "evaluate_every must be more than 0"),
    ],
)  # fmt: skip
def test_bad_sections_say_where_and_what(tmp_path: Path, text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert where in message
    assert what in message
