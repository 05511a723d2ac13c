"""The daemons' configuration from the chart's base configuration and every resource.

Pure: text and resources in, text and verdicts out. Each resource is judged by the daemon's
own loader (:func:`agent_sre.config.parse_config_file`) with the resources accepted before it,
so its problems are the ones ``agent-sre validate`` prints, cross references included (an
experiment naming an SLO, a rollout naming a route). A resource that fails keeps its last
applied entry in force, as a refused reload keeps the running configuration; an SLO whose
target went down is refused the same way (``agent-sre slo check``'s rule).
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from agent_sre.config import ConfigError, parse_config_file
from agent_sre.slo.compare import compare_slo_sets
from agent_sre.slo.spec import SLOSpec
from agent_sre_operator.kinds import KINDS, SLO, Kind

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

SOURCE = "agent-sre.yaml"
HEADER = (
    "# Written by the agent-sre operator: the chart's base configuration plus every\n"
    "# AgentSLO, AgentBudget, AgentChaosExperiment and AgentRollout. Do not edit.\n"
)
_PROBLEM = re.compile(r"^(?P<where>[^:]*(?::\d+)?): (?P<field>[^:]+): (?P<message>.*)$", re.S)


@dataclass(frozen=True)
class Resource:
    """One custom resource as the operator sees it."""

    kind: Kind
    namespace: str
    name: str
    spec: Mapping[str, Any]
    generation: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.kind.kind} {self.namespace}/{self.name}"


@dataclass
class Verdict:
    """What became of one resource."""

    problems: list[str] = field(default_factory=list)
    """``field: message`` lines; empty when the resource is applied as written."""
    kept: bool = False
    """Refused, and its previously applied entry stays in force."""

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Rendering:
    text: str
    verdicts: dict[tuple[str, str, str], Verdict]

    @property
    def digest(self) -> str:
        return config_digest(self.text)


class BaseConfigError(ValueError):
    """The chart's base configuration does not load: nothing can be rendered."""


def config_digest(text: str) -> str:
    """SHA-256 of a configuration file's bytes, as the daemon reports it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(
    base_text: str,
    resources: Iterable[Resource],
    running_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Rendering:
    """The configuration to run and a verdict per resource.

    Args:
        base_text: the chart's base configuration (YAML).
        resources: every resource seen.
        running_text: the configuration the operator wrote last (its entries are what the
            daemons run: a refused resource keeps its entry from there).
        env: variables for ``${VAR}`` while validating (the daemons expand their own).

    Raises:
        BaseConfigError: the base configuration itself does not load.
    """
    environ = {} if env is None else env
    try:
        parse_config_file(base_text, SOURCE, environ)
    except ConfigError as exc:
        raise BaseConfigError(str(exc)) from None
    base: dict[str, Any] = yaml.safe_load(base_text)
    running = _entries(running_text)
    order = sorted(resources, key=lambda r: (KINDS.index(r.kind), r.namespace, r.name))
    verdicts, candidates, taken = _prechecks(base, order, running)
    # one load of everything; the entries it blames go, until it loads (a few passes)
    accepted, blamed = _settle(base, candidates, environ)
    if accepted is None:  # a problem no entry can be blamed for: one at a time
        return _one_by_one(base, order, verdicts, candidates, running, environ)
    for key, problems in blamed.items():
        verdicts[key].problems.extend(problems)
    chosen = {resource.key: entry for resource, entry in accepted}
    keep = [
        (r, running[r.kind.kind][r.name])
        for r in order
        if verdicts[r.key].problems
        and r.name in running.get(r.kind.kind, {})
        and not _owned_elsewhere(r, taken)
    ]
    if keep:
        kept, _ = _settle(base, [*accepted, *keep], environ, removable={r.key for r, _ in keep})
        for resource, entry in kept or accepted:
            if resource.key not in chosen:
                chosen[resource.key] = entry
                verdicts[resource.key].kept = True
    doc = copy.deepcopy(base)
    for resource in order:
        if resource.key in chosen:
            _section(doc, resource.kind).append(chosen[resource.key])
    text = HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)
    try:
        parse_config_file(text, SOURCE, environ)
    except ConfigError:  # the order mattered after all: the careful way
        return _one_by_one(base, order, {r.key: Verdict() for r in order}, None, running, environ)
    return Rendering(text, verdicts)


def _owned_elsewhere(resource: Resource, taken: dict[str, dict[str, str]]) -> bool:
    return taken[resource.kind.kind].get(resource.name) != resource.ref


_ENTRY = re.compile(r"^(?P<section>[a-z_]+(?:\.[a-z_]+)?)\[(?P<index>\d+)\]")


def _settle(
    base: dict[str, Any],
    candidates: list[tuple[Resource, dict[str, Any]]],
    env: Mapping[str, str],
    removable: set[tuple[str, str, str]] | None = None,
) -> tuple[list[tuple[Resource, dict[str, Any]]] | None, dict[tuple[str, str, str], list[str]]]:
    """Loads ``base`` with every candidate; drops the candidates the loader blames and
    loads again, until it loads. Returns what stays and each dropped one's problems; None
    when a problem cannot be blamed on a (removable) candidate."""
    pending = list(candidates)
    blamed: dict[tuple[str, str, str], list[str]] = {}
    while True:
        doc = copy.deepcopy(base)
        at: dict[tuple[str, int], Resource] = {}
        for resource, entry in pending:
            entries = _section(doc, resource.kind)
            at[(resource.kind.section_path, len(entries))] = resource
            entries.append(copy.deepcopy(entry))
        try:
            parse_config_file(yaml.safe_dump(doc, sort_keys=False), SOURCE, env)
        except ConfigError as exc:
            found: dict[tuple[str, str, str], list[str]] = {}
            for problem in exc.problems:
                culprit, index = _blame(problem, at)
                if culprit is None or (removable is not None and culprit.key not in removable):
                    return None, blamed
                found.setdefault(culprit.key, []).append(
                    _in_resource_terms(problem, culprit.kind, index)
                )
            blamed.update(found)
            pending = [c for c in pending if c[0].key not in found]
            continue
        return pending, blamed


def _blame(problem: str, at: dict[tuple[str, int], Resource]) -> tuple[Resource | None, int]:
    match = _PROBLEM.match(problem)
    entry = _ENTRY.match(match["field"]) if match else None
    if entry is None:
        return None, -1
    index = int(entry["index"])
    return at.get((entry["section"], index)), index


def _one_by_one(
    base: dict[str, Any],
    order: list[Resource],
    verdicts: dict[tuple[str, str, str], Verdict],
    candidates: list[tuple[Resource, dict[str, Any]]] | None,
    running: dict[str, dict[str, dict[str, Any]]],
    env: Mapping[str, str],
) -> Rendering:
    """Each resource judged with those accepted before it: one load per resource (slow with
    hundreds, but it needs no problem to name its entry)."""
    if candidates is None:  # judge the prechecks again
        return _sequential(base, order, running, env)
    doc = copy.deepcopy(base)
    chosen = {r.key: e for r, e in candidates}
    for resource in order:
        verdict = verdicts[resource.key]
        entry = chosen.get(resource.key)
        if entry is not None:
            verdict.problems.extend(_judge(doc, resource.kind, entry, env))
            if not verdict.problems:
                _section(doc, resource.kind).append(entry)
                continue
        previous = running.get(resource.kind.kind, {}).get(resource.name)
        if (
            previous is not None
            and verdict.problems
            and not _judge(doc, resource.kind, previous, env)
        ):
            _section(doc, resource.kind).append(previous)
            verdict.kept = True
    text = HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)
    return Rendering(text, verdicts)


def _sequential(
    base: dict[str, Any],
    order: list[Resource],
    running: dict[str, dict[str, dict[str, Any]]],
    env: Mapping[str, str],
) -> Rendering:
    verdicts, candidates, _ = _prechecks(base, order, running)
    return _one_by_one(base, order, verdicts, candidates, running, env)


def _prechecks(
    base: dict[str, Any], order: list[Resource], running: dict[str, dict[str, dict[str, Any]]]
) -> tuple[
    dict[tuple[str, str, str], Verdict],
    list[tuple[Resource, dict[str, Any]]],
    dict[str, dict[str, str]],
]:
    """What is judged before the daemon's loader: names taken, ``${...}``, a lowered target.
    Returns the verdicts so far, the entries left to load, and who owns each name."""
    verdicts = {r.key: Verdict() for r in order}
    taken = {kind.kind: _names_in(base, kind) for kind in KINDS}
    candidates: list[tuple[Resource, dict[str, Any]]] = []
    for resource in order:
        verdict = verdicts[resource.key]
        owner = taken[resource.kind.kind].get(resource.name)
        if owner is not None:
            verdict.problems.append(
                f"metadata.name: {resource.kind.section_path} already has an entry named "
                f"{resource.name!r} (from {owner}); a name is unique across namespaces"
            )
            continue
        taken[resource.kind.kind][resource.name] = resource.ref
        entry = {"name": resource.name, **resource.spec}
        verdict.problems.extend(_variables(resource.spec, "spec"))
        previous = running.get(resource.kind.kind, {}).get(resource.name)
        if not verdict.problems and resource.kind is SLO and previous is not None:
            verdict.problems.extend(_lowered(previous, entry))
        if not verdict.problems:
            candidates.append((resource, entry))
    return verdicts, candidates, taken


def _judge(
    doc: dict[str, Any], kind: Kind, entry: dict[str, Any], env: Mapping[str, str]
) -> list[str]:
    """The daemon's problems with ``doc`` once ``entry`` is added, as ``spec...: message``."""
    candidate = copy.deepcopy(doc)
    entries = _section(candidate, kind)
    entries.append(copy.deepcopy(entry))
    index = len(entries) - 1
    try:
        parse_config_file(yaml.safe_dump(candidate, sort_keys=False), SOURCE, env)
    except ConfigError as exc:
        return [_in_resource_terms(p, kind, index) for p in exc.problems]
    return []


def _in_resource_terms(problem: str, kind: Kind, index: int) -> str:
    """``agent-sre.yaml:12: slos[3].sli.kind: message`` -> ``spec.sli.kind: message``."""
    match = _PROBLEM.match(problem)
    if match is None:
        return problem
    where, message = match["field"], match["message"]
    prefix = f"{kind.section_path}[{index}]"
    if where == f"{prefix}.name":
        where = "metadata.name"
    elif where == prefix:
        where = "spec"
    elif where.startswith(prefix + ".") or where.startswith(prefix + "["):
        where = "spec" + where[len(prefix) :]
    return f"{where}: {message}"


def _lowered(previous: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    try:
        old = SLOSpec.model_validate(previous)
        new = SLOSpec.model_validate(entry)
    except ValueError:
        return []
    return [
        f"spec.target: {problem}; an SLO target is never lowered (`agent-sre slo check` "
        f"refuses it too): the daemons keep {old.target}. Raise it, or delete the AgentSLO "
        "and create it anew"
        for problem in compare_slo_sets([old], [new])
    ]


def _variables(value: Any, where: str) -> list[str]:
    """``${...}`` in a resource: the daemons would expand it from their environment (and
    could show a secret from it to whoever reads the SLO back)."""
    if isinstance(value, str):
        if "${" in value:
            return [f"{where}: '${{' is not allowed in a resource (the daemon would expand it)"]
        return []
    if isinstance(value, dict):
        found = []
        for key, inner in value.items():
            found += _variables(str(key), f"{where}.{key}") if "${" in str(key) else []
            found += _variables(inner, f"{where}.{key}")
        return found
    if isinstance(value, list):
        return [p for i, inner in enumerate(value) for p in _variables(inner, f"{where}[{i}]")]
    return []


def _section(doc: dict[str, Any], kind: Kind) -> list[Any]:
    node = doc
    for key in kind.section[:-1]:
        inner = node.get(key)
        if not isinstance(inner, dict):
            inner = node[key] = {} if inner is None else inner
        node = inner
    entries = node.get(kind.section[-1])
    if entries is None:
        entries = node[kind.section[-1]] = []
    if not isinstance(entries, list):  # the base config was validated: cannot happen
        raise BaseConfigError(f"{kind.section_path} is not a list")
    return entries


def _names_in(doc: dict[str, Any], kind: Kind) -> dict[str, str]:
    node: Any = doc
    for key in kind.section:
        node = node.get(key) if isinstance(node, dict) else None
    entries = node if isinstance(node, list) else []
    return {
        str(e["name"]): "the chart's config" for e in entries if isinstance(e, dict) and "name" in e
    }


def _entries(text: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Kind -> name -> entry, of a configuration the operator wrote before."""
    if not text:
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(doc, dict):
        return {}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in KINDS:
        node: Any = doc
        for key in kind.section:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list):
            found[kind.kind] = {
                str(e["name"]): e for e in node if isinstance(e, dict) and "name" in e
            }
    return found
