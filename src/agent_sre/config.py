"""One pydantic model of the whole configuration file, and its loading.

YAML -> :class:`Config` is the only place configuration is validated; engines receive the
validated models (or values derived from them) and never read YAML themselves.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator

from agent_sre.alerts.spec import AlertingConfig
from agent_sre.certification.spec import CertificationConfig
from agent_sre.chaos.spec import ChaosConfig
from agent_sre.config_checks import config_problems
from agent_sre.cost.spec import BudgetsConfig, ModelPrice
from agent_sre.delivery.spec import RolloutsConfig
from agent_sre.fleet.spec import FleetConfig
from agent_sre.gateway.providers import ApiName
from agent_sre.incidents.spec import IncidentsConfig
from agent_sre.replay.spec import ReplayConfig
from agent_sre.section import DURATION_JSON_SCHEMA as DURATION_JSON_SCHEMA
from agent_sre.section import Duration as Duration
from agent_sre.section import Endpoint as Endpoint
from agent_sre.section import Section as Section
from agent_sre.slo.spec import SLOSpec, slo_set_problems
from agent_sre.yamlsource import YamlDocument, YamlSourceError, load_yaml

if TYPE_CHECKING:
    from collections.abc import Mapping


class NodeConfig(Section):
    name: str = ""
    """Node identity put on every resource as ``agent_sre.node``; empty means the host name."""
    shutdown_timeout: Duration = 25.0
    """On SIGTERM, one deadline for the whole drain: receivers finish what they hold, proxied
    calls in flight finish and settle, and the queue is flushed upstream (at most
    ``exporters.otlp.shutdown_timeout`` of it); whatever is left stays on disk. Keep it under
    the pod's ``terminationGracePeriodSeconds`` (30 s by default)."""
    max_connections_per_listener: int | None = Field(None, ge=1, le=1_000_000)
    """Connections each listener (proxy, OTLP/gRPC, OTLP/HTTP, metrics, admin) keeps open;
    past it a new connection is refused (HTTP: 503 and closed; gRPC: closed). Unset: the
    listener's share of the open files limit, ``(soft limit - 256) / 5`` between 16 and
    10,000. Takes effect on restart."""


class GrpcReceiverConfig(Section):
    endpoint: Endpoint = "127.0.0.1:4317"
    max_recv_msg_size_mib: float = Field(4.0, gt=0, le=1024)


class HttpReceiverConfig(Section):
    endpoint: Endpoint = "127.0.0.1:4318"
    max_request_body_size_mib: float = Field(20.0, gt=0, le=1024)
    """Cap on the (inflated) request body; larger requests get 413."""


class OtlpReceiverConfig(Section):
    grpc: GrpcReceiverConfig | None = GrpcReceiverConfig()
    http: HttpReceiverConfig | None = HttpReceiverConfig()
    span_pass: Literal["auto", "python"] = "auto"
    """``auto``: the native span pass over the request's bytes when it is built (the
    package was installed with a C compiler), else the Python one; ``python``: always the
    Python one (the reference; same results, more CPU)."""


class ReceiversConfig(Section):
    otlp: OtlpReceiverConfig = OtlpReceiverConfig()


class QueueConfig(Section):
    """The durable queue in ``state_dir`` that holds accepted requests until upstream has them."""

    max_size_mib: float = Field(512.0, gt=0)
    """When the queue holds this much, receivers push back (UNAVAILABLE / 503)."""
    fsync: bool = False
    """``true`` survives power loss too (SQLite synchronous=FULL); ``false`` survives a
    crash or kill -9 of the daemon, which is what the default promises."""


class RetryConfig(Section):
    initial_interval: Duration = 1.0
    max_interval: Duration = 30.0
    multiplier: float = Field(1.5, ge=1.0)
    max_elapsed: Duration = 0.0
    """0 (the default) retries forever; the queue's byte cap is what bounds the backlog.
    Above 0, a request still failing after this long is dropped and counted."""


class BatchConfig(Section):
    """How queued requests are combined into upstream calls."""

    max_size_mib: float = Field(4.0, gt=0)
    """Upper bound of one upstream request (keep it under upstream's receive limit)."""
    timeout: Duration = 0.2
    """How long an idle sender waits for more before sending what it has."""


class OtlpExporterConfig(Section):
    endpoint: str = ""
    """``host:port``, ``http://host:port`` (plaintext) or ``https://host:port`` (TLS).
    Empty: nothing is forwarded and nothing is queued."""
    headers: dict[str, str] = {}
    ca_file: str = ""
    """PEM bundle to verify an ``https://`` upstream with (empty: the system's roots)."""
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Duration = 5.0
    max_in_flight: int = Field(4, ge=1, le=64)
    queue: QueueConfig = QueueConfig()
    batch: BatchConfig = BatchConfig()
    retry: RetryConfig = RetryConfig()
    shutdown_timeout: Duration = 5.0
    """On SIGTERM, how long to keep sending before leaving the rest on disk."""


class PrometheusExporterConfig(Section):
    endpoint: Endpoint = "127.0.0.1:9464"


class ExportersConfig(Section):
    otlp: OtlpExporterConfig = OtlpExporterConfig()
    prometheus: PrometheusExporterConfig = PrometheusExporterConfig()


class ProxyRoute(Section):
    name: str
    prefix: str
    upstream: str
    api: ApiName  # the shapes of agent_sre.gateway.providers.PROVIDERS
    tool: str | None = None
    timeout: Duration = 600.0
    """Longest wait for the upstream's next bytes (connect, headers, each chunk)."""
    deadline: Duration = Field(3600.0, gt=0)
    """Longest a whole call may take, answer included: an upstream that trickles bytes
    cannot hold a budget reservation for ever (504 before the answer starts, the stream cut
    after)."""
    inject_api_key_env: str | None = None
    deployments: dict[str, str] = {}
    """``api: azure_openai``: the model each deployment runs (``{my-gpt4o: gpt-4o}``), so a
    call to a deployment is priced as its model; an unlisted deployment is taken to be
    named after its model."""
    prices: dict[str, ModelPrice] = {}
    """USD per million tokens of this route's models, before genai-prices (keyed by the
    model as the request names it). ``api: openai_compatible``: a model not listed costs
    zero (a local server: vLLM, Ollama, LM Studio); ``"*"`` prices every other model."""
    aws_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    """``api: bedrock``: the region the proxy signs for (default: read from the upstream's
    host, ``bedrock-runtime.REGION.amazonaws.com``)."""
    aws_signing: Literal["proxy", "client"] = "proxy"
    """``api: bedrock``: ``proxy`` re-signs every call (SigV4) with the AWS credentials of
    the proxy's own environment (the client's signature, made for the proxy's host, would
    not hold upstream); ``client`` forwards the client's signature untouched."""
    callee: str | None = None
    """``api: a2a``: the id of the agent the route leads to (default: the route's name)."""
    max_delegation_depth: int = Field(8, ge=1, le=100)
    """``api: a2a``: the deepest hand-off taken (a caller at depth 0 hands off at depth 1);
    one past it is refused with the JSON-RPC error -32090."""
    delegation_reserve_usd: float = Field(0.0, ge=0)
    """``api: a2a``: what a hand-off holds of the caller's budgets while it runs (given back
    when it ends: the callee's calls are booked to the callee). A hand-off the budgets cannot
    cover is refused; at 0 only a caller whose budget is used up is refused."""

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value.strip("/"):
            raise ValueError(
                f"{value!r} would never match (a prefix matches whole path segments and the "
                "proxy is not an open proxy); give the route its own prefix, e.g. /openai"
            )
        return value


def _default_routes() -> list[ProxyRoute]:
    return [
        ProxyRoute(
            name="openai", prefix="/openai", upstream="https://api.openai.com", api="openai"
        ),
        ProxyRoute(
            name="anthropic",
            prefix="/anthropic",
            upstream="https://api.anthropic.com",
            api="anthropic",
        ),
    ]


class CorrelationConfig(Section):
    """One call, one event: linking agents' LLM and tool spans with the proxy's records."""

    enabled: bool = True
    """``false``: no linking; an agent's span and the proxy's span of a call both count."""
    tools: bool = True
    """Link tool calls too (the proxy's ``tool`` and ``mcp`` routes with the agents'
    ``execute_tool`` spans). Only in effect when a route has ``api: tool`` or ``api: mcp``;
    ``false``: the proxy's span of a tool call is the event at once, as before."""
    hold: Duration = 10.0
    """How long the proxy's record of a call waits for the agent's own span of it; one that
    no agent span claims in time is the event. 0: the proxy's record is always the event
    (an agent span of the call arriving later is marked ``duplicate``)."""
    remember: Duration = 600.0
    """How long a counted record is remembered, to recognise the other view arriving late."""
    max_calls: int = Field(10000, ge=1)
    """At most this many records remembered per side (the oldest go first)."""


class AgentKey(Section):
    agent: str = Field(min_length=1)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    """The key's SHA-256 (hex), as ``agent-sre agent-key new AGENT`` prints it."""


class AgentKeysConfig(Section):
    required: bool = False
    """Refuse (401 ``agent_key_invalid``) every proxied call without a valid agent key."""
    keys: list[AgentKey] = []

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[AgentKey]) -> list[AgentKey]:
        digests = [key.sha256 for key in keys]
        if len(set(digests)) != len(digests):
            raise ValueError("a key digest appears twice")
        return keys


class ProxyConfig(Section):
    endpoint: Endpoint = "127.0.0.1:8790"
    routes: list[ProxyRoute] = Field(default_factory=_default_routes)
    correlation: CorrelationConfig = CorrelationConfig()
    agent_keys: AgentKeysConfig = AgentKeysConfig()
    """Per-agent keys: the key decides the identity (see docs/proxy.md, Agent keys)."""


class AdminConfig(Section):
    endpoint: Endpoint = "127.0.0.1:8791"
    token: str = ""
    """Bearer token for every change; empty refuses all changes."""


class Config(Section):
    node: NodeConfig = NodeConfig()
    state_dir: str = ".agent-sre"
    receivers: ReceiversConfig = ReceiversConfig()
    exporters: ExportersConfig = ExportersConfig()
    proxy: ProxyConfig = ProxyConfig()
    admin: AdminConfig = AdminConfig()
    slos: list[SLOSpec] = []
    slo_files: list[str] = []
    budgets: BudgetsConfig = BudgetsConfig()
    chaos: ChaosConfig = ChaosConfig()
    rollouts: RolloutsConfig = RolloutsConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    alerting: AlertingConfig = AlertingConfig()
    replay: ReplayConfig = ReplayConfig()
    fleet: FleetConfig = FleetConfig()
    certification: CertificationConfig = CertificationConfig()

    @field_validator("slos")
    @classmethod
    def _unique_slo_names(cls, slos: list[SLOSpec]) -> list[SLOSpec]:
        problems = slo_set_problems(tuple(slos))
        if problems:
            raise ValueError("; ".join(problems))
        return slos


PLACEHOLDER_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "${VAR} or ${VAR:-default}: checked once expanded, when the daemon loads it",
}
"""A value holding an environment variable, which the file may give for any value."""
_PLACEHOLDER = {"$ref": "#/$defs/Placeholder"}
_NOTES = ("title", "description", "default", "deprecated")


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the configuration file, generated from the models (editors, CRDs, the
    Helm chart's values): every value the daemon refuses on its own is refused, except that
    any value may be a string holding ``${VAR}`` (expanded, then checked, at load)."""
    schema = Config.model_json_schema()
    defs = schema.setdefault("$defs", {})
    _accept_placeholders(schema, defs)
    for model in defs.values():
        _accept_placeholders(model, defs)
    defs["Placeholder"] = PLACEHOLDER_JSON_SCHEMA
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agent-sre configuration"
    return schema


def _accept_placeholders(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """Lets every value under ``schema`` (not the mappings and lists holding values) be a
    placeholder instead."""
    stack = [schema]
    while stack:
        node = stack.pop()
        slots = [(node["properties"], key) for key in node.get("properties", {})]
        if isinstance(node.get("additionalProperties"), dict):
            slots.append((node, "additionalProperties"))
        if isinstance(node.get("items"), dict):
            slots.append((node, "items"))
        for owner, key in slots:
            value = owner[key]
            if not _holds_values(value, defs):
                notes = {k: value.pop(k) for k in _NOTES if k in value}
                owner[key] = {**notes, "anyOf": [value, _PLACEHOLDER]}
                continue
            stack.append(value)
            options = value.get("anyOf", [])
            stack.extend(option for option in options if _holds_values(option, defs))
            if any(not _holds_values(option, defs) for option in options):
                options.append(_PLACEHOLDER)  # an unquoted one may expand to null


def _holds_values(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    """A mapping or a list (possibly among other choices): its values get placeholders."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _holds_values(defs[ref.removeprefix("#/$defs/")], defs)
    if schema.get("type") in ("object", "array"):
        return True
    return any(_holds_values(option, defs) for option in schema.get("anyOf", []))


class ConfigError(ValueError):
    """Every problem of one configuration file, each as ``file:line: field: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


DEFAULT_CONFIG_NAME = "agent-sre.yaml"


def default_config_text() -> str:
    """The embedded default configuration shipped inside the package."""
    return (
        resources.files("agent_sre")
        .joinpath("data")
        .joinpath(DEFAULT_CONFIG_NAME)
        .read_text("utf-8")
    )


ENV_DEFAULTS: dict[tuple[str, ...], str] = {
    ("exporters", "otlp", "endpoint"): "AGENT_SRE_UPSTREAM",
    ("admin", "token"): "AGENT_SRE_ADMIN_TOKEN",
    ("state_dir",): "AGENT_SRE_STATE_DIR",
}
"""Keys a file may leave unset for an environment variable to fill (a value in the file
wins, even an empty one)."""


@dataclass(frozen=True)
class ConfigFile:
    """A validated configuration and the document it came from, to place later problems
    (the daemon's file-system checks) at their file and line."""

    config: Config
    doc: YamlDocument
    digest: str = ""
    """SHA-256 (hex) of the text it was read from: what ``GET /v1/status`` reports as the
    configuration running, for the operator to tell when a reload took the new file."""

    def problem(self, loc: tuple[str | int, ...], message: str) -> str:
        """``file:line: dotted.field: message`` for a problem found after loading."""
        return _located(self.doc, loc, message)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Loads and validates a configuration file, or the embedded default when ``path`` is None.

    ``env`` is the environment for ``${VAR}`` and :data:`ENV_DEFAULTS` (default: the
    process's).

    Raises:
        ConfigError: listing every problem with its file, line and dotted field.
    """
    return read_config(path, env).config


def read_config(path: str | None = None, env: Mapping[str, str] | None = None) -> ConfigFile:
    """Like :func:`load_config`, keeping the document for placing later problems."""
    if path is None:
        return parse_config_file(default_config_text(), f"<embedded {DEFAULT_CONFIG_NAME}>", env)
    text = _read_text(path)
    return parse_config_file(text, path, env, base_dir=Path(path).parent)


def _read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [f"{path}: not UTF-8 at byte {exc.start} (line {line}); save the file as UTF-8"]
        ) from None


def parse_config(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validates YAML text as a :class:`Config`; ``source`` names it in messages."""
    return parse_config_file(text, source, env, base_dir).config


def parse_config_file(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> ConfigFile:
    """Like :func:`parse_config`, keeping the document for placing later problems."""
    environ: Mapping[str, str] = {} if env is None else env
    doc = _load(text, source, environ)
    if doc.data is None:
        # An empty file would run on built-in defaults: forwarding off, the admin token
        # gone. That is never what a reload of a truncated file should do.
        raise ConfigError(
            [
                f"{source}: the file is empty (or only comments); give at least one section "
                "(see config/agent-sre.yaml)"
            ]
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{source}:1: the top level must be a mapping of sections"])
    config = _validate(Config, _with_env_defaults(doc.data, environ), doc)
    problems = [_located(doc, loc, message) for loc, message in config_problems(config)]
    if problems:
        raise ConfigError(problems)
    if config.slo_files:
        config = _with_slo_files(config, doc, environ, base_dir or Path.cwd())
    return ConfigFile(config, doc, config_digest(text))


def config_digest(text: str) -> str:
    """SHA-256 (hex) of a configuration file's text, encoded as UTF-8 (its bytes on disk)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _with_env_defaults(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``data`` with each :data:`ENV_DEFAULTS` key the file leaves unset taken from ``env``."""
    data = dict(data)
    for path, variable in ENV_DEFAULTS.items():
        value = env.get(variable)
        if not value:
            continue
        section = data
        for key in path[:-1]:
            inner = section.get(key, {})
            if not isinstance(inner, dict):
                break  # not a mapping: validation reports it
            section[key] = inner = dict(inner)
            section = inner
        else:
            section.setdefault(path[-1], value)
    return data


def _located(doc: YamlDocument, loc: tuple[str | int, ...], message: str) -> str:
    line = doc.line_of(loc)
    where = f"{doc.source}:{line}" if line is not None else doc.source
    return f"{where}: {dotted(loc) or '<top>'}: {message}"


def _load(text: str, source: str, env: Mapping[str, str] | None) -> YamlDocument:
    try:
        return load_yaml(text, source, env)
    except YamlSourceError as exc:
        raise ConfigError([str(exc)]) from None


def _validate(model: type[Config], data: dict[str, Any], doc: YamlDocument) -> Config:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, doc)) from None


def format_validation_error(
    exc: ValidationError, doc: YamlDocument, prefix: tuple[str | int, ...] = ()
) -> list[str]:
    """Turns pydantic errors into ``file:line: dotted.field: message`` lines."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *(part for part in error["loc"] if not _is_union_tag(part)))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/configuration.md)"
        problems.append(_located(doc, loc, message))
    return problems


def _is_union_tag(part: object) -> bool:
    # pydantic puts the branch of a union (e.g. 'function-after[...]') into the location.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float"})


def dotted(loc: tuple[str | int, ...]) -> str:
    """``("slos", 2, "window")`` -> ``slos[2].window``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _with_slo_files(
    config: Config, doc: YamlDocument, env: Mapping[str, str] | None, base_dir: Path
) -> Config:
    slos = list(config.slos)
    problems: list[str] = []
    for index, pattern in enumerate(config.slo_files):
        full = pattern if os.path.isabs(pattern) else str(base_dir / pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            line = doc.line_of(("slo_files", index))
            problems.append(f"{doc.source}:{line}: slo_files[{index}]: {pattern!r} matches no file")
        for name in matches:
            try:
                slos.extend(load_slo_file(name, env))
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    duplicates = slo_set_problems(tuple(slos))
    if duplicates:
        raise ConfigError([f"{doc.source}: slos and slo_files: {p}" for p in duplicates])
    return config.model_copy(update={"slos": slos})


class _SLOFile(Section):
    slos: list[SLOSpec]


def load_slo_file(path: str, env: Mapping[str, str] | None = None) -> list[SLOSpec]:
    """Loads a file holding ``slos: [...]`` (the same shape as the config's ``slos`` section)."""
    doc = _load(_read_text(path), path, env)
    if doc.data is None:
        raise ConfigError([f"{path}: the file is empty (or only comments); give slos: [...]"])
    try:
        return _SLOFile.model_validate(doc.data or {}).slos
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, doc)) from None
