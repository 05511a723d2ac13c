"""The CRDs: generated from the daemon's models (no drift), structural, valid for the API
server's own schema, and every example resource valid against them and for the daemon."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_sre_operator.crds import CHART_CRDS, render_crds
from agent_sre_operator.kinds import BY_KIND, KINDS
from agent_sre_operator.render import Resource, render
from tests.deploy.chart import KUBE_VERSION

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "operator").glob("*.yaml"))
_JUNCTOR_FORBIDDEN = {"type", "default", "nullable", "additionalProperties", "description"}


def crds() -> dict[str, dict[str, Any]]:
    return {
        doc["spec"]["names"]["kind"]: doc
        for path in sorted(CHART_CRDS.glob("*.yaml"))
        for doc in [yaml.safe_load(path.read_text())]
    }


def test_the_crds_in_the_chart_are_the_ones_the_models_give() -> None:
    shipped = {p.name: p.read_text() for p in CHART_CRDS.glob("*.yaml")}
    assert shipped == render_crds(), "regenerate: make crds"


def test_a_model_change_shows_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_sre.slo.spec import SLOSpec

    before = render_crds()
    schema = SLOSpec.model_json_schema()
    schema["properties"]["new_key"] = {"type": "string"}
    monkeypatch.setattr(SLOSpec, "model_json_schema", classmethod(lambda cls: schema))
    assert render_crds() != before


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_each_crd_is_valid_for_the_api_server(kind: str) -> None:
    doc = crds()[kind]
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert doc["spec"]["scope"] == "Namespaced"
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Valid", "Applied", "Age"} <= columns
    problems = list(_structural_problems(version["schema"]["openAPIV3Schema"], "schema"))
    assert problems == []


def test_the_printer_columns_the_issue_names() -> None:
    def columns(kind: str) -> set[str]:
        return {c["name"] for c in crds()[kind]["spec"]["versions"][0]["additionalPrinterColumns"]}

    assert {"Target", "Window", "Attainment", "Budget Left"} <= columns("AgentSLO")
    assert {"Limit", "Spent", "Left"} <= columns("AgentBudget")
    assert {"Phase", "Result", "Score"} <= columns("AgentChaosExperiment")
    assert {"Phase", "Step", "Weight", "Verdict"} <= columns("AgentRollout")


def _structural_problems(node: dict[str, Any], where: str, in_junctor: bool = False) -> Any:
    """The API server's structural-schema rules that matter here."""
    if in_junctor:
        for key in _JUNCTOR_FORBIDDEN & node.keys():
            yield f"{where}: {key} inside anyOf/allOf/oneOf/not"
    elif not (
        node.get("type")
        or node.get("x-kubernetes-int-or-string")
        or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        yield f"{where}: no type"
    if "$ref" in node:
        yield f"{where}: $ref"
    for name, sub in node.get("properties", {}).items():
        yield from _structural_problems(sub, f"{where}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _structural_problems(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _structural_problems(node["additionalProperties"], f"{where}{{}}")
    if "not" in node:
        yield from _structural_problems(node["not"], f"{where}.not", True)
    for junctor in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(node.get(junctor, [])):
            yield from _structural_problems(sub, f"{where}.{junctor}[{i}]", True)


def as_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3.0 CRD schema as JSON Schema draft 4, strict like `kubectl
    --validate=strict` (an unknown field is an error, not pruned)."""
    node = copy.deepcopy(node)
    out: dict[str, Any] = {k: v for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if "properties" in node:
        out["properties"] = {k: as_json_schema(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        out["items"] = as_json_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = as_json_schema(node["additionalProperties"])
    return out


def example_resources() -> list[dict[str, Any]]:
    return [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_there_is_an_example_of_every_kind() -> None:
    assert {doc["kind"] for doc in example_resources()} == set(BY_KIND)


@pytest.mark.parametrize(
    "doc", example_resources(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_each_example_is_valid_against_its_crd(doc: dict[str, Any]) -> None:
    schema = crds()[doc["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(as_json_schema(schema)).validate(doc)


def test_the_strict_schema_catches_an_unknown_field_and_a_wrong_type() -> None:
    schema = as_json_schema(crds()["AgentSLO"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    good = next(d for d in example_resources() if d["kind"] == "AgentSLO")
    for bad_spec in ({**good["spec"], "colour": 1}, {**good["spec"], "target": "high"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft4Validator(schema).validate({**good, "spec": bad_spec})


def test_the_examples_together_are_valid_for_the_daemon() -> None:
    from tests.deploy.chart import daemon_config_text, documents
    from tests.deploy.chart import render as render_chart

    base = daemon_config_text(documents(render_chart({})))
    resources = [
        Resource(BY_KIND[d["kind"]], d["metadata"]["namespace"], d["metadata"]["name"], d["spec"])
        for d in example_resources()
    ]
    out = render(base, resources)
    assert {key: v.problems for key, v in out.verdicts.items() if not v.valid} == {}


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _draft_2020(node: Any) -> Any:
    """OpenAPI 3.0's boolean ``exclusiveMinimum``/``exclusiveMaximum`` as 2020-12's numbers."""
    if isinstance(node, list):
        return [_draft_2020(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _draft_2020(v) for k, v in node.items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
        elif isinstance(out.get(exclusive), bool):
            del out[exclusive]
    return out


def _cr_validator(kind: str) -> Any:
    """A validator of a whole ``kind`` resource built the way kubernetes-validate builds its
    own (JSON Schema 2020-12 over its Kubernetes definitions, strict): ``metadata`` against
    its ObjectMeta, ``spec`` and ``status`` against the CRD. kubernetes-validate itself has
    no schema of a custom kind (asserted below), so the CRD supplies that part."""
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry
    from referencing import Resource as Referenced

    version = KUBE_VERSION.rpartition(".")[0] + ".0"
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    crd = crds()[kind]
    openapi = _draft_2020(as_json_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))
    group = crd["spec"]["group"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://kubernetes.io/api/{kind.lower()}/v1alpha1",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": f"{group}/v1alpha1"},
            "kind": {"const": kind},
            "metadata": {"$ref": "/api/_definitions.json#/$defs/" + OBJECT_META},
            "spec": openapi["properties"]["spec"],
            "status": openapi["properties"]["status"],
        },
    }
    registry = Referenced.from_contents(definitions) @ Registry()
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize(
    "doc", example_resources(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_each_example_is_valid_with_kubernetes_validates_schemas(doc: dict[str, Any]) -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    _cr_validator(doc["kind"]).validate(doc)


def test_kubernetes_validates_schemas_catch_bad_metadata_and_spec() -> None:
    good = next(d for d in example_resources() if d["kind"] == "AgentSLO")
    validator = _cr_validator("AgentSLO")
    for bad in (
        {**good, "metadata": {**good["metadata"], "labels": {"a": 1}}},
        {**good, "metadata": {**good["metadata"], "colour": "red"}},
        {**good, "spec": {**good["spec"], "target": "high"}},
        {**good, "extra": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)
