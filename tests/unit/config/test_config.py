"""Configuration: defaults, variables, and errors that say file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sre.config import ConfigError, load_config, parse_config
from agent_sre.units import format_duration, parse_duration, parse_endpoint
from agent_sre.yamlsource import expand_vars

ROOT = Path(__file__).parents[3]


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", env or {})
    return info.value.problems


def test_embedded_default_matches_shipped_file() -> None:
    from agent_sre.config import default_config_text

    assert default_config_text() == (ROOT / "config" / "agent-sre.yaml").read_text()


def test_default_contract_keys() -> None:
    config = load_config(None, env={})
    assert config.receivers.otlp.grpc is not None and config.receivers.otlp.http is not None
    assert config.receivers.otlp.grpc.max_recv_msg_size_mib == 4
    assert config.receivers.otlp.http.endpoint == "127.0.0.1:4318"
    assert config.exporters.otlp.compression == "gzip"
    assert config.proxy.endpoint == "127.0.0.1:8790"
    assert [r.name for r in config.proxy.routes] == ["openai", "anthropic"]
    assert config.admin.endpoint == "127.0.0.1:8791" and config.admin.token == ""


def test_variables_expand_with_defaults() -> None:
    env = {"AGENT_SRE_UPSTREAM": "collector:4317", "NODE_NAME": "n7"}
    config = load_config(None, env=env)
    assert config.exporters.otlp.endpoint == "collector:4317"
    assert config.node.name == "n7"
    assert expand_vars("${A:-x}/${B}/${C:-}", {"A": "", "B": "b"}) == "x/b/"


def test_unquoted_variable_gets_yaml_type() -> None:
    config = parse_config("exporters:\n  otlp:\n    max_in_flight: ${N:-8}\n", "c", {})
    assert config.exporters.otlp.max_in_flight == 8


def test_errors_name_file_line_and_dotted_field() -> None:
    found = problems(
        "node:\n"
        "  name: x\n"
        "receivers:\n"
        "  otlp:\n"
        "    grpc:\n"
        "      endpoint: 127.0.0.1:99999\n"
        "      max_recv_msg_size_mib: -1\n"
        "proxy:\n"
        "  routes:\n"
        "    - {name: a, prefix: /a, upstream: http://x}\n"
        "    - {name: b, prefix: /b, upstream: http://x, api: soap}\n"
    )
    assert (
        "cfg.yaml:6: receivers.otlp.grpc.endpoint: '127.0.0.1:99999' has no valid port" in found[0]
    )
    assert found[1].startswith("cfg.yaml:7: receivers.otlp.grpc.max_recv_msg_size_mib:")
    assert any(p.startswith("cfg.yaml:10: proxy.routes[0].api: Field required") for p in found)
    assert any(p.startswith("cfg.yaml:11: proxy.routes[1].api: Input should be") for p in found)


def test_unknown_sections_and_reserved_sections() -> None:
    assert problems("recievers: {}\n") == [
        "cfg.yaml:1: recievers: unknown key (check the spelling; see docs/configuration.md)"
    ]
    assert problems("fleet:\n  nodes: []\n")[0].startswith("cfg.yaml:2: fleet.nodes: unknown key")


def test_yaml_syntax_error_has_line() -> None:
    assert problems("node:\n  name: [x\n")[0].startswith("cfg.yaml:3:")


def test_top_level_must_be_mapping() -> None:
    assert problems("- a\n- b\n") == ["cfg.yaml:1: the top level must be a mapping of sections"]


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "---\n"])
def test_an_empty_file_is_refused(text: str, tmp_path: Path) -> None:
    # Running on built-in defaults would turn forwarding off and wipe the admin token.
    assert problems(text) == [
        "cfg.yaml: the file is empty (or only comments); give at least one section "
        "(see config/agent-sre.yaml)"
    ]
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="empty"):
        load_config(str(path), env={})


def test_an_explicit_empty_mapping_is_all_defaults() -> None:
    assert parse_config("{}\n", "cfg.yaml", {}).receivers.otlp.grpc is not None


def test_a_file_that_is_not_utf8_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("node:\n  name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert info.value.problems == [f"{path}: not UTF-8 at byte 17 (line 2); save the file as UTF-8"]
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_bytes(b"\xff\xfe")
    (tmp_path / "main.yaml").write_text("slo_files: [slos.yaml]\n")
    with pytest.raises(ConfigError, match="not UTF-8 at byte 0"):
        load_config(str(tmp_path / "main.yaml"), env={})


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfnode: {name: n1}\n")
    assert load_config(str(path), env={}).node.name == "n1"


DURATIONS = [
    ("5m", 300),
    ("1h30m", 5400),
    ("28d", 28 * 86400),
    ("250ms", 0.25),
    ("500ms", 0.5),
    ("1.5s", 1.5),
    ("8s", 8),
    ("1m30s500ms", 90.5),
    (" 5m ", 300),
    (10, 10),
    (1.5, 1.5),
    (0, 0),
    ("2w", 1209600),
]
NOT_DURATIONS = ["", " ", "5", "1.5", "3x", "m5", "-1", "-1s", "1.s", ".5s", "5 m", "5m 3s",
                 "5M", "1e3s", "\u0665s", True, -3, float("nan"), float("inf")]  # fmt: skip


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", NOT_DURATIONS)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration|negative"):
        parse_duration(text)


def test_the_schemas_duration_accepts_exactly_what_parse_duration_accepts() -> None:
    import jsonschema

    from agent_sre.section import DURATION_JSON_SCHEMA

    def schema_accepts(value: object) -> bool:
        return jsonschema.Draft202012Validator(DURATION_JSON_SCHEMA).is_valid(value)

    for value, _ in DURATIONS:
        assert schema_accepts(value), value
    for value in NOT_DURATIONS:
        if isinstance(value, float) and value != value or value in (float("inf"),):
            continue  # JSON has no NaN or infinity
        assert not schema_accepts(value), value


def test_format_duration_and_endpoint() -> None:
    assert [format_duration(s) for s in (300, 7200, 86400 * 30, 90)] == ["5m", "2h", "30d", "90s"]
    assert parse_endpoint("[::1]:4317") == ("::1", 4317)
    with pytest.raises(ValueError):
        parse_endpoint(":4317")


def test_duplicate_slo_names_are_refused(tmp_path) -> None:
    slo = "{name: tasks, target: 0.99, sli: {kind: task_success}}"
    found = problems(f"slos:\n  - {slo}\n  - {slo}\n")
    assert len(found) == 1 and "tasks" in found[0] and found[0].startswith("cfg.yaml:1: slos")
    extra = tmp_path / "more.yaml"
    extra.write_text(f"slos:\n  - {slo}\n")
    main = tmp_path / "main.yaml"
    main.write_text(f"slo_files: [more.yaml]\nslos:\n  - {slo}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(main), env={})
    assert "tasks" in str(info.value)
    main.write_text("slo_files: [more.yaml, absent-*.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(main), env={})
    assert "main.yaml:1: slo_files[1]: 'absent-*.yaml' matches no file" in str(info.value)


def test_proxy_correlation_defaults_durations_and_unknown_keys() -> None:
    config = load_config(None, env={})
    correlation = config.proxy.correlation
    assert (correlation.enabled, correlation.hold, correlation.remember) == (True, 10.0, 600.0)
    assert config.budgets.auto_throttle is False
    text = "proxy:\n  correlation: {hold: 2s, remember: 1h, max_calls: 50}\n"
    parsed = parse_config(text, "cfg.yaml", {}).proxy.correlation
    assert (parsed.hold, parsed.remember, parsed.max_calls) == (2.0, 3600.0, 50)
    found = problems("proxy:\n  correlation: {hodl: 2s}\n")
    assert any("proxy.correlation.hodl" in p for p in found), found
    found = problems("proxy:\n  correlation: {max_calls: 0}\n")
    assert any("proxy.correlation.max_calls" in p for p in found), found


def test_an_unquoted_variable_that_expands_to_nothing_is_an_empty_string(tmp_path) -> None:
    from agent_sre.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        "node:\n  name: ${NODE_NAME:-}\n"
        "admin:\n  token: ${AGENT_SRE_ADMIN_TOKEN:-}\n"
        "receivers:\n  otlp:\n    grpc:\n      max_recv_msg_size_mib: ${SIZE:-8}\n"
    )
    config = load_config(str(path), env={})
    assert config.node.name == ""
    assert config.admin.token == ""
    assert config.receivers.otlp.grpc is not None
    assert config.receivers.otlp.grpc.max_recv_msg_size_mib == 8
