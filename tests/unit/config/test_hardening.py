"""What ``run`` would refuse, loading refuses first, with the file, the line and the field;
and the environment fills the keys a file leaves unset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from agent_sre.config import ConfigError, load_config, parse_config

if TYPE_CHECKING:
    from pathlib import Path


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", {})
    return info.value.problems


# -- environment defaults ------------------------------------------------------------------

ENV = {
    "AGENT_SRE_UPSTREAM": "collector:4317",
    "AGENT_SRE_ADMIN_TOKEN": "from-env",
    "AGENT_SRE_STATE_DIR": "/var/lib/agent-sre",
}


def test_environment_fills_keys_the_file_leaves_unset(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("node: {name: n1}\nadmin: {endpoint: '127.0.0.1:0'}\n")
    config = load_config(str(path), env=ENV)
    assert config.exporters.otlp.endpoint == "collector:4317"
    assert config.admin.token == "from-env"
    assert config.admin.endpoint == "127.0.0.1:0"
    assert config.state_dir == "/var/lib/agent-sre"
    unset = load_config(str(path), env={"AGENT_SRE_UPSTREAM": ""})
    assert (unset.exporters.otlp.endpoint, unset.admin.token) == ("", "")
    assert unset.state_dir == ".agent-sre"


def test_a_value_in_the_file_wins_over_the_environment() -> None:
    config = parse_config(
        "state_dir: /data\n"
        "exporters: {otlp: {endpoint: 'up:4317'}}\n"
        "admin: {token: ''}\n",  # explicitly no token: changes stay refused
        "cfg.yaml",
        ENV,
    )
    assert config.exporters.otlp.endpoint == "up:4317"
    assert config.admin.token == ""
    assert config.state_dir == "/data"


def test_a_section_of_the_wrong_type_is_still_reported() -> None:
    with pytest.raises(ConfigError, match=r"cfg.yaml:1: exporters: Input should be"):
        parse_config("exporters: 3\n", "cfg.yaml", ENV)


# -- listeners -----------------------------------------------------------------------------


def test_two_listeners_on_one_port_are_refused() -> None:
    found = problems(
        "receivers:\n"
        "  otlp:\n"
        "    grpc: {endpoint: '127.0.0.1:7000'}\n"
        "    http: {endpoint: '127.0.0.1:0'}\n"
        "exporters:\n"
        "  prometheus: {endpoint: '127.0.0.1:0'}\n"
        "proxy: {endpoint: '0.0.0.0:7000'}\n"
        "admin: {endpoint: 'localhost:7001'}\n"
    )
    assert found == [
        "cfg.yaml:7: proxy.endpoint: port 7000 is already receivers.otlp.grpc.endpoint's "
        "(each listener needs its own port; 0 picks a free one)"
    ]


def test_port_0_may_repeat_and_distinct_addresses_may_share_a_port() -> None:
    config = parse_config(
        "receivers: {otlp: {grpc: {endpoint: '127.0.0.1:0'}, http: {endpoint: '127.0.0.1:0'}}}\n"
        "exporters: {prometheus: {endpoint: '127.0.0.1:0'}}\n"
        "proxy: {endpoint: '127.0.0.2:8000'}\n"
        "admin: {endpoint: '127.0.0.3:8000'}\n",
        "cfg.yaml",
        {},
    )
    assert config.admin.endpoint == "127.0.0.3:8000"


def test_the_default_listeners_clash_with_a_moved_one() -> None:
    assert problems("admin: {endpoint: '127.0.0.1:4317'}\n")[0].startswith(
        "cfg.yaml:1: admin.endpoint: port 4317 is already receivers.otlp.grpc.endpoint's"
    )


# -- proxy routes --------------------------------------------------------------------------

ROUTES = "proxy:\n  routes:\n"


def route(name: str, prefix: str) -> str:
    return f"    - {{name: {name}, prefix: '{prefix}', upstream: 'http://x', api: openai}}\n"


@pytest.mark.parametrize("prefix", ["/", "//", ""])
def test_a_route_prefix_that_never_matches_is_refused(prefix: str) -> None:
    found = problems(ROUTES + route("a", prefix))
    assert len(found) == 1
    assert found[0].startswith(f"cfg.yaml:3: proxy.routes[0].prefix: {prefix!r} would never match")


def test_duplicate_route_names_and_prefixes_are_refused() -> None:
    found = problems(ROUTES + route("a", "/a") + route("a", "/b") + route("c", "/a/"))
    assert found == [
        "cfg.yaml:4: proxy.routes[1].name: 'a' is already the name of proxy.routes[0]",
        "cfg.yaml:5: proxy.routes[2].prefix: '/a' is already the prefix of proxy.routes[0]",
    ]


# -- upstream headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("x api key", "v", "not a valid gRPC metadata name"),
        ("x~y", "v", "not a valid gRPC metadata name"),
        ("grpc-timeout", "1S", "names starting with 'grpc-' are reserved by gRPC"),
        ("content-type", "x", "gRPC sets this header itself"),
        ("trace-bin", "abc", "'-bin' names carry binary values"),
        ("x-api-key", "s3cret\\n", "the value has a newline at position 6"),
        ("x-api-key", "caf\u00e9", "the value has character U+00E9 at position 3"),
        ("x-api-key", "a\\tb", "the value has a tab at position 1"),
    ],
)
def test_headers_grpc_would_refuse_are_refused(key: str, value: str, message: str) -> None:
    found = problems(f'exporters:\n  otlp:\n    headers:\n      "{key}": "{value}"\n')
    assert len(found) == 1
    assert found[0].startswith(f"cfg.yaml:4: exporters.otlp.headers.{key}: {message}")
    assert "s3cret" not in found[0]  # a credential is never repeated


def test_headers_are_case_insensitive() -> None:
    config = parse_config(
        "exporters: {otlp: {headers: {Authorization: 'Bearer x', x-tenant_id.v2: t}}}\n",
        "cfg.yaml",
        {},
    )
    assert config.exporters.otlp.headers["Authorization"] == "Bearer x"
    found = problems("exporters: {otlp: {headers: {Authorization: a, authorization: b}}}\n")
    assert found == [
        "cfg.yaml:1: exporters.otlp.headers.authorization: the same header as "
        "'Authorization' (names are case-insensitive)"
    ]


# -- budgets store -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:secret@cache.example:6380/2",
        "redis://cache",
        "unix:///run/redis.sock",
    ],
)
def test_redis_urls_that_parse(url: str) -> None:
    assert parse_config(f"budgets: {{redis_url: '{url}'}}\n", "c", {}).budgets.redis_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:6379", "not a Redis URL"),
        ("http://cache:6379", "not a Redis URL"),
        ("redis://:secret@cache:port/0", "not a Redis URL (bad port)"),
        ("redis://:secret@cache:99999", "not a Redis URL (bad port)"),
        ("redis:///0", "names no host"),
        ("redis://cache/zero", "the database after the host must be a number"),
        ("unix://", "names no socket path"),
    ],
)
def test_malformed_redis_urls_are_refused(url: str, message: str) -> None:
    found = problems(f"budgets:\n  store: redis\n  redis_url: '{url}'\n")
    assert len(found) == 1
    assert found[0].startswith(f"cfg.yaml:3: budgets.redis_url: {message}")
    assert "secret" not in found[0]


# -- renamed budget settings ---------------------------------------------------------------


def test_budget_durations_take_the_new_names_and_still_read_the_old_ones() -> None:
    new = parse_config(
        "budgets:\n"
        "  auto_throttle_tau: 5m\n"
        "  anomaly: {interval: 2m}\n"
        "  rate_limits: [{requests_per_minute: 60, burst: 1500ms}]\n",
        "c",
        {},
    ).budgets
    old = parse_config(
        "budgets:\n"
        "  auto_throttle_tau_seconds: 300\n"
        "  anomaly: {interval_seconds: 120}\n"
        "  rate_limits: [{requests_per_minute: 60, burst_seconds: 1.5}]\n",
        "c",
        {},
    ).budgets
    assert new == old
    assert (new.auto_throttle_tau, new.anomaly.interval, new.rate_limits[0].burst) == (
        300,
        120,
        1.5,
    )


def test_giving_a_new_name_and_its_old_one_is_refused() -> None:
    assert problems("budgets:\n  rate_limits:\n    - {burst: 2s, burst_seconds: 2}\n") == [
        "cfg.yaml:3: budgets.rate_limits[0]: give burst or its old name burst_seconds, not both"
    ]
