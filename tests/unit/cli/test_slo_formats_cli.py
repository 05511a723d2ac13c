"""``agent-sre slo import`` / ``slo export`` and ``slo check`` across formats, as a user
runs them: files in, files or stdout out, exit statuses as documented."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from agent_sre_daemon.cli import exits, main

if TYPE_CHECKING:
    from collections.abc import Callable

DATA = Path(__file__).parents[2] / "data" / "slo_formats"
CONFIG = """\
slos:
  - name: support-tasks
    description: The support agent finishes its tasks
    target: 0.99
    window: 28d
    sli: {kind: task_success, match: {agent.id: support}}
    labels: [agent.version]
  - name: llm-latency
    target: 0.995
    sli: {kind: latency, threshold: 2s}
    alerting:
      - {severity: page, long: 1h, short: 5m, budget_percent: 2}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent-sre.yaml"
    path.write_text(CONFIG)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", ["openslo", "sloth", "pyrra"])
def test_export_then_import_gives_the_same_slos_section(
    fmt: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / f"slos.{fmt}.yaml"
    code, _, err = run(capsys, "slo", "export", "--format", fmt, "--config", str(config),
                       "-o", str(exported))  # fmt: skip
    assert code == exits.OK, err
    code, out, err = run(capsys, "slo", "import", str(exported))
    assert (code, err) == (exits.OK, "")
    imported = tmp_path / "imported.yaml"
    imported.write_text(out)
    code, out, err = run(capsys, "slo", "check", str(config), str(imported))
    assert code == exits.OK, err
    code, _, err = run(capsys, "slo", "check", str(imported), str(config))
    assert code == exits.OK, err
    assert yaml.safe_load(imported.read_text())["slos"][0]["name"] == "support-tasks"


LOWER: dict[str, Callable[[list[dict]], None]] = {
    "openslo": lambda docs: docs[0]["spec"]["objectives"][0].update({"target": 0.98}),
    "sloth": lambda docs: docs[0]["slos"][0].update({"objective": 98.0}),
    "pyrra": lambda docs: docs[0]["spec"].update({"target": "98"}),
}


@pytest.mark.parametrize("fmt", sorted(LOWER))
def test_a_target_lowered_in_another_format_fails_the_check(
    fmt: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "slo", "export", "--format", fmt, "--config", str(config))
    docs = list(yaml.safe_load_all(out))
    LOWER[fmt](docs)
    lowered = tmp_path / "lowered.yaml"
    lowered.write_text(yaml.safe_dump_all(docs))
    code, out, _ = run(capsys, "slo", "check", str(config), str(lowered))
    assert code == exits.FAILURE
    assert "slo 'support-tasks': target lowered from 0.99 to 0.98" in out
    # and across two foreign formats
    other = tmp_path / "other.yaml"
    run(capsys, "slo", "export", "--format", "openslo" if fmt != "openslo" else "pyrra",
        "--config", str(config), "-o", str(other))  # fmt: skip
    code, out, _ = run(capsys, "slo", "check", str(other), str(lowered))
    assert code == exits.FAILURE and "target lowered" in out


def test_foreign_slis_are_named_and_fail_unless_partial(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = tmp_path / "ours.yaml"
    run(capsys, "slo", "export", "--format", "pyrra", "--config", str(config), "-o", str(ours))
    sloth = str(DATA / "sloth-getting-started.yml")
    code, out, err = run(capsys, "slo", "import", str(ours), sloth)
    assert code == exits.FAILURE
    assert "SLO 'requests-availability': the Sloth SLI" in err
    assert [s["name"] for s in yaml.safe_load(out)["slos"]] == ["support-tasks", "llm-latency"]
    code, out, err = run(capsys, "slo", "import", "--partial", str(ours), sloth)
    assert code == exits.OK and "requests-availability" in err
    # a check against a document that does not map is bad input, not a pass
    code, _, err = run(capsys, "slo", "check", str(config), sloth)
    assert code == exits.USAGE and "requests-availability" in err


def test_unreadable_and_non_yaml_files_are_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    code, _, err = run(capsys, "slo", "import", str(bad))
    assert code == exits.USAGE and "not YAML" in err
    code, _, err = run(capsys, "slo", "import", str(tmp_path / "missing.yaml"))
    assert code == exits.USAGE and "cannot read" in err
