"""Generated documents stay in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sre_daemon import metricsdoc

ROOT = Path(__file__).parents[2]


def test_metrics_doc_is_current() -> None:
    expected = metricsdoc.render()
    actual = (ROOT / "docs" / "metrics.md").read_text()
    assert actual == expected, "regenerate: python -m agent_sre_daemon.metricsdoc > docs/metrics.md"


def test_issue_contract_metric_names_exist() -> None:
    text = metricsdoc.render()
    for name in (
        "agent_sre_receiver_accepted_spans_total",
        "agent_sre_receiver_refused_spans_total",
        "agent_sre_exporter_sent_spans_total",
        "agent_sre_exporter_failed_requests_total",
        "agent_sre_queue_size_bytes",
        "agent_sre_queue_oldest_age_seconds",
        "agent_sre_spans_total",
    ):
        assert f"`{name}`" in text


def test_config_json_schema_is_current() -> None:
    import json

    from agent_sre.config import config_json_schema

    shipped = json.loads((ROOT / "config" / "agent-sre.schema.json").read_text())
    assert shipped == config_json_schema(), (
        "regenerate: agent-sre schema > config/agent-sre.schema.json"
    )


def test_shipped_config_validates_against_the_schema() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads((ROOT / "config" / "agent-sre.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "config" / "agent-sre.yaml").read_text()), schema)


# -- every YAML example in the docs loads, and the JSON Schema accepts it ------------------

FRAGMENT = "# fragment"
"""A comment marking a YAML example that is deliberately part of a file (write it as the
example's first line): it is checked merged into :data:`MINIMAL_CONFIG`."""
MINIMAL_CONFIG = {"node": {"name": "docs"}}
OTHER_YAML = ("# helm values", "# kubernetes")
"""First-line comments of YAML examples that are not the daemon's configuration (Helm values
and Kubernetes objects, checked by tests/deploy)."""
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def yaml_examples() -> list[tuple[str, str]]:
    """``(file:line, text)`` of every fenced ```yaml block in README.md and docs/*.md."""
    examples = []
    for document in DOCUMENTS:
        lines = document.read_text("utf-8").splitlines()
        start: int | None = None
        for number, line in enumerate(lines, 1):
            fence = line.strip()
            if start is None and fence.startswith("```") and fence[3:].strip() == "yaml":
                start = number
            elif start is not None and fence == "```":
                name = f"{document.relative_to(ROOT)}:{start}"
                text = "\n".join(lines[start : number - 1]) + "\n"
                if not text.startswith(OTHER_YAML):
                    examples.append((name, text))
                start = None
    return examples


def _merged(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        out[key] = _merged(old, value) if both else value  # type: ignore[arg-type]
    return out


def test_the_docs_have_yaml_examples() -> None:
    names = [name for name, _ in yaml_examples()]
    assert any(name.startswith("README.md") for name in names)
    assert any(name.startswith("docs/configuration.md") for name in names)


SELF_TEST = ("a fragment", f"{FRAGMENT}\nbudgets: {{anomaly: {{interval: 2m}}}}\n")


@pytest.mark.parametrize(
    ("name", "text"),
    [pytest.param(*example, id=example[0]) for example in [*yaml_examples(), SELF_TEST]],
)
def test_every_yaml_example_loads_and_matches_the_schema(
    name: str, text: str, tmp_path: Path
) -> None:
    import json

    import jsonschema
    import yaml

    from agent_sre.config import ConfigError, load_config
    from agent_sre.yamlsource import load_yaml

    data = load_yaml(text, name, {}).data
    assert isinstance(data, dict), f"{name}: an example is a mapping of sections"
    if FRAGMENT in text:
        data = _merged(MINIMAL_CONFIG, data)
        text = yaml.safe_dump(data, sort_keys=False)
    path = tmp_path / "example.yaml"
    path.write_text(text, "utf-8")
    try:
        load_config(str(path), env={})
    except ConfigError as exc:
        pytest.fail(f"{name}: the loader refuses the example:\n{exc}")
    schema = json.loads((ROOT / "config" / "agent-sre.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert not errors, f"{name}: the schema refuses the example: " + "; ".join(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )
