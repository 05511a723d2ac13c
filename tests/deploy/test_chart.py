"""The Helm chart rendered and linted by Helm's own engine, every object checked against the
Kubernetes schemas, and the daemon configuration it writes checked by `agent-sre validate`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.deploy.chart import (
    CHART_DIR,
    KUBE_VERSION,
    by_kind,
    daemon_config_text,
    documents,
    render,
)

if TYPE_CHECKING:
    from pathlib import Path

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (dev extra) embeds Helm")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

CLI = [sys.executable, "-m", "agent_sre_daemon.cli"]
PROMETHEUS_OPERATOR = ["monitoring.coreos.com/v1"]

SLOS: list[dict[str, Any]] = [
    {
        "name": "support-task-success",
        "target": 0.99,
        "window": "28d",
        "sli": {"kind": "task_success", "match": {"agent.id": "support-agent"}},
        "labels": ["agent.version"],
    },
    {
        "name": "llm-latency",
        "target": 0.995,
        "sli": {"kind": "latency", "threshold": "2s"},
        "alerting": [
            {"severity": "page", "long": "1h", "short": "5m", "budget_percent": 2},
            {"severity": "ticket", "long": "1d", "short": "2h", "factor": 3},
        ],
    },
    {
        "name": "tool-success",
        "target": 0.9,
        "window": "1d",
        "sli": {"kind": "tool_call_success"},
        "alerting": [{"severity": "page", "long": "1h30m", "short": 300, "budget_percent": 5}],
    },
    {
        "name": "quiet",
        "target": 0.999,
        "window": "2w",
        "sli": {"kind": "llm_success"},
        "alerting": [],
    },  # fmt: skip
]

CASES: dict[str, dict[str, Any]] = {
    "daemonset-defaults": {},
    "deployment-defaults": {"mode": "deployment"},
    "daemonset-full": {
        "config": {
            "slos": SLOS,
            "budgets": {"store": "redis", "redis_url": "${AGENT_SRE_REDIS_URL:-}"},
            "exporters": {"otlp": {"compression": "none"}},
        },
        "upstream": "otel-collector.observability:4317",
        "adminToken": {"value": "not-a-real-token"},
        "stateVolume": {"type": "hostPath"},
        "ports": {"admin": {"enabled": True}, "otlp-http": {"enabled": False}},
        "networkPolicy": {"adminFrom": [{"podSelector": {"matchLabels": {"role": "sre"}}}]},
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "extraEnv": [
            {
                "name": "AGENT_SRE_REDIS_URL",
                "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}},
            }
        ],
    },
    "deployment-full": {
        "mode": "deployment",
        "replicaCount": 3,
        "config": {"slos": SLOS[:2], "budgets": {"store": "redis"}},
        "adminToken": {"existingSecret": "agent-sre-admin"},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "stateVolume": {"emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        "image": {"digest": "sha256:" + "a" * 64},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "agent-sre"}},
            }
        ],
    },
    "daemonset-operator": {
        "operator": {"enabled": True},
        "adminToken": {"existingSecret": "agent-sre-admin"},
    },
    "deployment-operator": {
        "mode": "deployment",
        "operator": {
            "enabled": True,
            "watchNamespaces": ["agent-sre", "team-a"],
            "replicas": 2,
            "prometheusUrl": "http://prometheus.monitoring:9090",
        },
        "adminToken": {"value": "not-a-real-token"},
        "autoscaling": {"enabled": True},
    },
}


def _pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    workload = next(
        d
        for d in docs
        if d["kind"] in ("DaemonSet", "Deployment") and d["metadata"]["name"] == "agent-sre"
    )
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _pod_spec(docs)["containers"][0]
    return container


def _validate_config(text: str, tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """`agent-sre validate` the rendered file, then read it back as the daemon does."""
    path = tmp_path / "agent-sre.yaml"
    path.write_text(text)
    env = {"PYTHONPATH": os.pathsep.join(sys.path)} | env  # this checkout's daemon
    result = subprocess.run(
        [*CLI, "validate", str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    from agent_sre.config import load_config
    from agent_sre.yamlsource import load_yaml

    expanded = load_yaml(text, str(path), env=env).data
    assert isinstance(expanded, dict)
    load_config(str(path), env)  # the same models, in this process
    return expanded


def test_lint_strict_passes_for_every_case() -> None:
    for name, values in CASES.items():
        report = helm.lint(CHART_DIR, values, strict=True, kube_version="v" + KUBE_VERSION)
        errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not errors, (name, errors)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_is_valid_kubernetes(case: str) -> None:
    docs = documents(render(CASES[case], api_versions=PROMETHEUS_OPERATOR))
    kinds = {doc["kind"] for doc in docs}
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: no upstream schema; checked by the tests below
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    workload = "Deployment" if CASES[case].get("mode") == "deployment" else "DaemonSet"
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    daemons = [d for d in workloads if d["metadata"]["name"] == "agent-sre"]
    assert [d["kind"] for d in daemons] == [workload]
    assert {"ConfigMap", "Service", "ServiceAccount", "NetworkPolicy", "ServiceMonitor"} <= kinds
    assert ("PodDisruptionBudget" in kinds) == (workload == "Deployment")


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_daemon_config_validates_and_keeps_placeholders(case: str, tmp_path: Path) -> None:
    docs = documents(render(CASES[case]))
    text = daemon_config_text(docs)
    # the pod's Secret sets the Redis URL when budgets use Redis (validate refuses an empty one)
    env = {"PATH": "/usr/bin:/bin", "AGENT_SRE_REDIS_URL": "redis://redis:6379/0"}
    config = _validate_config(text, tmp_path, env)
    # unset ${VAR:-} placeholders must read as "" (a string), never as YAML null
    assert config["node"]["name"] == ""
    assert config["admin"]["token"] == ""
    assert config["exporters"]["otlp"]["endpoint"] == ""
    assert config["state_dir"] == "/var/lib/agent-sre"
    # ...and take the pod's values when the downward API and the Secret set them
    env |= {
        "NODE_NAME": "node-7",
        "AGENT_SRE_ADMIN_TOKEN": "t0ken",
        "AGENT_SRE_UPSTREAM": "collector:4317",
        "AGENT_SRE_STATE_DIR": "/state",
    }
    config = _validate_config(text, tmp_path, env)
    assert config["node"]["name"] == "node-7"
    assert config["admin"]["token"] == "t0ken"
    assert config["exporters"]["otlp"]["endpoint"] == "collector:4317"
    assert config["state_dir"] == "/state"


def test_listeners_follow_ports_and_admin_stays_on_loopback() -> None:
    config = json.loads(daemon_config_text(documents(render())))
    assert config["receivers"]["otlp"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["receivers"]["otlp"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["proxy"]["endpoint"] == "0.0.0.0:8790"
    assert config["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:9464"
    assert config["admin"]["endpoint"] == "127.0.0.1:8791"
    docs = documents(render(CASES["daemonset-full"]))
    config = json.loads(daemon_config_text(docs))
    assert config["admin"]["endpoint"] == "0.0.0.0:8791"
    assert config["receivers"]["otlp"]["http"] is None  # ports.otlp-http.enabled: false
    assert config["budgets"] == {"store": "redis", "redis_url": "${AGENT_SRE_REDIS_URL:-}"}


def test_daemonset_sends_agents_to_their_own_node() -> None:
    docs = documents(render())
    kinds = by_kind(docs)
    ports = {p["name"]: p for p in _container(docs)["ports"]}
    assert {n: p.get("hostPort") for n, p in ports.items()} == {
        "otlp-grpc": 4317,
        "otlp-http": 4318,
        "proxy": 8790,
        "metrics": None,
    }
    assert kinds["Service"]["spec"]["internalTrafficPolicy"] == "Local"
    env = {e["name"]: e for e in _container(docs)["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "AGENT_SRE_ADMIN_TOKEN" not in env  # no Secret named: changes stay refused
    deployment = documents(render({"mode": "deployment"}))
    assert by_kind(deployment)["Service"]["spec"]["internalTrafficPolicy"] == "Cluster"
    assert all("hostPort" not in p for p in _container(deployment)["ports"])


def test_admin_token_comes_from_a_secret_never_from_the_config_map() -> None:
    docs = documents(render(CASES["daemonset-full"]))
    kinds = by_kind(docs)
    env = {e["name"]: e for e in _container(docs)["env"]}
    ref = env["AGENT_SRE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": kinds["Secret"]["metadata"]["name"], "key": "token"}
    assert "not-a-real-token" not in yaml.safe_dump(kinds["ConfigMap"])
    existing = documents(render(CASES["deployment-full"]))
    assert "Secret" not in by_kind(existing)
    env = {e["name"]: e for e in _container(existing)["env"]}
    assert env["AGENT_SRE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "agent-sre-admin"


def test_config_change_rolls_the_pods_unless_told_not_to() -> None:
    def checksum(values: dict[str, Any]) -> str | None:
        template = by_kind(documents(render(values)))["DaemonSet"]["spec"]["template"]
        annotations = template["metadata"].get("annotations") or {}
        return annotations.get("checksum/config")

    first, same = checksum({}), checksum({"logLevel": "debug"})
    changed = checksum({"config": {"slos": SLOS[:1]}})
    assert first and first == same and changed and changed != first
    assert checksum({"rollOnConfigChange": False}) is None


def test_state_dir_volume_emptydir_or_hostpath() -> None:
    volumes = {v["name"]: v for v in _pod_spec(documents(render()))["volumes"]}
    assert volumes["state"]["emptyDir"]["sizeLimit"] == "1Gi"
    pod = _pod_spec(documents(render(CASES["daemonset-full"])))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["hostPath"] == {
        "path": "/var/lib/agent-sre/agent-sre",
        "type": "DirectoryOrCreate",
    }
    init = pod["initContainers"][0]
    assert init["command"] == ["chown", "10001:10001", "/var/lib/agent-sre"]
    assert pod["priorityClassName"] == "system-node-critical"


def test_probes_and_security_context() -> None:
    docs = documents(render())
    container = _container(docs)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert _pod_spec(docs)["securityContext"]["runAsUser"] == 10001
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {
        "/etc/agent-sre",
        "/var/lib/agent-sre",
        "/tmp",
    }


def test_network_policy_keeps_the_admin_port_off_the_network() -> None:
    policy = by_kind(documents(render()))["NetworkPolicy"]
    ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert sorted(ports) == [4317, 4318, 8790, 9464]
    policy = by_kind(documents(render(CASES["daemonset-full"])))["NetworkPolicy"]
    admin_rules = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 8791]
    assert admin_rules == [
        {
            "ports": [{"port": 8791, "protocol": "TCP"}],
            "from": [{"podSelector": {"matchLabels": {"role": "sre"}}}],
        }
    ]


def test_prometheus_operator_objects_follow_the_cluster_or_the_override() -> None:
    values = {"config": {"slos": SLOS}}
    assert not {"ServiceMonitor", "PrometheusRule"} & set(by_kind(documents(render(values))))
    present = by_kind(documents(render(values, api_versions=PROMETHEUS_OPERATOR)))
    assert {"ServiceMonitor", "PrometheusRule"} <= set(present)
    assert present["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    off = {"enabled": False}
    forced_off = values | {"serviceMonitor": off, "prometheusRule": off}
    rendered = by_kind(documents(render(forced_off, api_versions=PROMETHEUS_OPERATOR)))
    assert not {"ServiceMonitor", "PrometheusRule"} & set(rendered)
    forced_on = values | {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    assert {"ServiceMonitor", "PrometheusRule"} <= set(by_kind(documents(render(forced_on))))
    # no SLOs, no rules
    assert "PrometheusRule" not in by_kind(documents(render(api_versions=PROMETHEUS_OPERATOR)))


def test_prometheus_rule_is_what_agent_sre_rules_prometheus_writes(tmp_path: Path) -> None:
    docs = documents(render({"config": {"slos": SLOS}}, api_versions=PROMETHEUS_OPERATOR))
    config = tmp_path / "agent-sre.yaml"
    config.write_text(daemon_config_text(docs))
    result = subprocess.run(
        [*CLI, "rules", "prometheus", "--config", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = yaml.safe_load(result.stdout)["groups"]
    groups = by_kind(docs)["PrometheusRule"]["spec"]["groups"]
    assert [g["name"] for g in groups] == [g["name"] for g in expected]
    assert groups == expected


def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (tests/setup-services.sh installs it)")
    docs = documents(render({"config": {"slos": SLOS}}, api_versions=PROMETHEUS_OPERATOR))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": by_kind(docs)["PrometheusRule"]["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "sidecar"}, "at '/mode': value must be one of 'daemonset', 'deployment'"),
        ({"stateVolume": {"type": "pvc"}}, "at '/stateVolume/type'"),
        ({"ports": {"proxy": {"containerPort": 70000}}}, "at '/ports/proxy/containerPort'"),
        ({"config": {"slos": [{"name": "x", "target": 1.5, "sli": {"kind": "llm_success"}}]}},
         "at '/config/slos/0/target'"),
        ({"config": {"slos": [{"name": "x", "target": 0.9, "window": "a month",
                               "sli": {"kind": "llm_success"}}]}},
         "at '/config/slos/0/window'"),
        ({"config": {"exporter": {}}}, "additional properties 'exporter' not allowed"),
        ({"serviceMonitor": {"enabled": "yes"}}, "at '/serviceMonitor/enabled'"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"operator": {"replicas": 0}}, "at '/operator/replicas'"),
        ({"operator": {"leaderElection": {"leaseDuration": 1}}},
         "at '/operator/leaderElection/leaseDuration'"),
        ({"operator": {"prometheusUrl": "prometheus:9090"}}, "at '/operator/prometheusUrl'"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_by_the_schema(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as error:
        render(values)
    assert message in str(error.value)
    report = helm.lint(CHART_DIR, values)
    assert any(message in m["error"] for m in report["messages"] if m["severity"] == 3), report


WHOLE = {"config", "resources", "podSecurityContext", "securityContext", "livenessProbe",
         "nodeSelector", "readinessProbe", "updateStrategy", "rollout"}  # fmt: skip
"""Values documented as one object (one row each), like each ``ports.<name>``."""


def test_every_value_is_documented_in_the_readme() -> None:
    """README.md's table lists every leaf key of values.yaml, and nothing else."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    def leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in data.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value and key not in WHOLE and prefix != "ports.":
                out.extend(leaves(value, path + "."))
            else:
                out.append(path)
        return out

    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    assert sorted(set(leaves(values)) - documented) == []
    assert sorted(documented - set(leaves(values))) == []


def test_the_values_example_in_docs_renders_a_valid_config(tmp_path: Path) -> None:
    from tests.deploy.chart import ROOT

    text = (ROOT / "docs" / "kubernetes.md").read_text()
    example = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "slos:" in b)
    values = yaml.safe_load(example)
    docs = documents(render(values))
    env = {"PATH": "/usr/bin:/bin", "AGENT_SRE_REDIS_URL": "redis://127.0.0.1:6379/0"}
    config = _validate_config(daemon_config_text(docs), tmp_path, env)
    assert config["budgets"]["redis_url"] == "redis://127.0.0.1:6379/0"
    assert config["budgets"]["budgets"][0]["name"] == "per-agent-daily"


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("case", ["daemonset-operator", "deployment-operator"])
def test_operator_mode_renders_the_operator_and_hands_it_the_config(case: str) -> None:
    docs = documents(render(CASES[case]))
    configmaps = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
    assert configmaps == ["agent-sre-base"]  # the operator writes `agent-sre` itself
    pod = _pod_spec(docs)
    assert {"name": "config", "configMap": {"name": "agent-sre"}} in pod["volumes"]
    assert "admin" in {p["name"] for p in _container(docs)["ports"]}
    assert json.loads(daemon_config_text(docs))["admin"]["endpoint"] == "0.0.0.0:8791"

    operator = _named(docs, "Deployment", "agent-sre-operator")
    spec = operator["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"][:5] == [
        "operator",
        "--namespace=agent-sre",
        "--configmap=agent-sre",
        "--base-configmap=agent-sre-base",
        "--selector=app.kubernetes.io/name=agent-sre,app.kubernetes.io/instance=agent-sre",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["AGENT_SRE_ADMIN_TOKEN"]["valueFrom"]
    assert spec["serviceAccountName"] == "agent-sre-operator"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}

    # least privilege: the two ConfigMaps by name, pods listed, the resources and their status
    role = _named(docs, "Role", "agent-sre-operator")
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"],
            "resourceNames": ["agent-sre", "agent-sre-base"]} in role["rules"]  # fmt: skip
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]} in role["rules"]
    assert not any("secrets" in r["resources"] for d in docs if d["kind"].endswith("Role")
                   for r in d["rules"])  # fmt: skip
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    namespaces = CASES[case]["operator"].get("watchNamespaces") or ["agent-sre"]
    resources = {b["metadata"]["namespace"] for b in bindings if b["metadata"]["name"].endswith(
        "-resources")}  # fmt: skip
    assert resources == set(namespaces)
    cluster_wide = {d["metadata"]["name"] for d in docs if d["kind"].startswith("Cluster")}
    # nothing cluster-wide unless it watches beyond its namespace (kopf's scanning is off)
    expected = set() if namespaces == ["agent-sre"] else {"agent-sre-operator-resources-elsewhere"}
    assert cluster_wide == expected

    # the admin port admits the operator's pod
    policy = by_kind(docs)["NetworkPolicy"]
    admin = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 8791]
    assert admin[0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "agent-sre-operator",
        "app.kubernetes.io/instance": "agent-sre",
    }


@pytest.mark.parametrize("case", ["daemonset-operator", "deployment-operator"])
def test_the_operator_elects_a_leader_through_one_lease(case: str) -> None:
    docs = documents(render(CASES[case]))
    operator = _named(docs, "Deployment", "agent-sre-operator")
    replicas = CASES[case]["operator"].get("replicas", 1)
    assert operator["spec"]["replicas"] == replicas
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-lease=agent-sre-operator" in container["args"]
    assert "--lease-duration=15" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    role = _named(docs, "Role", "agent-sre-operator")
    leases = [r for r in role["rules"] if r["apiGroups"] == ["coordination.k8s.io"]]
    assert leases == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["agent-sre-operator"], "verbs": ["get", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]  # fmt: skip
    url = CASES[case]["operator"].get("prometheusUrl")
    assert (f"--prometheus-url={url}" in container["args"]) == bool(url)


def test_the_operator_without_leader_election_runs_one_replica_at_a_time() -> None:
    values = {"operator": {"enabled": True, "leaderElection": {"enabled": False}},
              "adminToken": {"existingSecret": "s"}}  # fmt: skip
    docs = documents(render(values))
    operator = _named(docs, "Deployment", "agent-sre-operator")
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert not any("--leader-lease" in a for a in operator["spec"]["template"]["spec"][
        "containers"][0]["args"])  # fmt: skip
    role = _named(docs, "Role", "agent-sre-operator")
    assert not any("leases" in r["resources"] for r in role["rules"])
    values["operator"]["replicas"] = 2  # type: ignore[index]
    with pytest.raises(helm.HelmError, match="needs operator.leaderElection.enabled"):
        render(values)


def test_operator_everywhere_uses_a_cluster_role() -> None:
    docs = documents(render({"operator": {"enabled": True, "watchNamespaces": ["*"]},
                             "adminToken": {"existingSecret": "s"}}))  # fmt: skip
    operator = _named(docs, "Deployment", "agent-sre-operator")
    assert "--all-namespaces" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert _named(docs, "ClusterRole", "agent-sre-operator-resources")
    assert _named(docs, "ClusterRoleBinding", "agent-sre-operator-resources")


def test_operator_without_an_admin_token_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="operator.enabled needs an admin token"):
        render({"operator": {"enabled": True}})


def test_the_operator_renders_the_examples_into_the_charts_base(tmp_path: Path) -> None:
    """The base ConfigMap of operator mode plus every example resource: the config the
    daemons get loads in `agent-sre validate`."""
    from agent_sre_operator.kinds import BY_KIND
    from agent_sre_operator.render import Resource
    from agent_sre_operator.render import render as render_config
    from tests.deploy.chart import ROOT

    base = daemon_config_text(documents(render(CASES["daemonset-operator"])))
    examples = [
        d for p in sorted((ROOT / "examples" / "operator").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text()) if d
    ]  # fmt: skip
    resources = [
        Resource(BY_KIND[d["kind"]], "agent-sre", d["metadata"]["name"], d["spec"])
        for d in examples
    ]
    out = render_config(base, resources)
    assert all(v.valid for v in out.verdicts.values()), out.verdicts
    config = _validate_config(out.text, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert {s["name"] for s in config["slos"]} == {"support-task-success", "llm-latency"}


def test_deployment_mode_has_a_headless_service_and_an_hpa_option() -> None:
    docs = documents(render({"mode": "deployment"}))
    headless = _named(docs, "Service", "agent-sre-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in headless["spec"]["ports"]] == ["otlp-grpc", "otlp-http", "proxy"]
    assert "HorizontalPodAutoscaler" not in by_kind(docs)
    assert _named(docs, "Deployment", "agent-sre")["spec"]["replicas"] == 2
    scaled = documents(render({"mode": "deployment", "autoscaling": {"enabled": True}}))
    hpa = by_kind(scaled)["HorizontalPodAutoscaler"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert "replicas" not in _named(scaled, "Deployment", "agent-sre")["spec"]
    # a DaemonSet has neither
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents(render())}
    assert ("Service", "agent-sre-headless") not in kinds
    assert _pod_spec(documents(render()))["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_the_chart_ships_the_generated_crds() -> None:
    from agent_sre_operator.crds import render_crds

    chart = helm.Chart.load(CHART_DIR)
    shipped = {c["name"].removeprefix("crds/"): c["data"] for c in chart.crds}
    assert set(shipped) == set(render_crds())


def test_make_package_writes_a_chart_archive(tmp_path: Path) -> None:
    import tarfile

    from tests.deploy.chart import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "deployments" / "package_chart.py"), str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
    archive = tmp_path / f"agent-sre-{version}.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"agent-sre/Chart.yaml", "agent-sre/values.schema.json",
            "agent-sre/templates/operator.yaml"} <= names  # fmt: skip
    assert {f"agent-sre/crds/{p.name}" for p in (CHART_DIR / "crds").glob("*.yaml")} <= names


def test_the_changelog_has_an_entry_for_this_chart_version() -> None:
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
    changelog = (CHART_DIR / "CHANGELOG.md").read_text()
    assert f"\n## {version}\n" in changelog
