"""A Kubernetes API for operator tests: kmock's emulator on loopback, in a thread of its own
(the tests and the daemons it serves stay synchronous), and a stand-in kubelet that copies a
ConfigMap into the daemons' mounted files.

kmock 0.8 has gaps; what this layer mends, and nothing else (the operator's own calls go to
kmock untouched):
- it fills what an API server would on writes the *tests* make: ``metadata.namespace`` (the
  emulator's namespaced watch otherwise misses live events), ``uid``, ``generation`` (bumped
  when the spec changes) and ``creationTimestamp``;
- it declares the custom resources (a CRD object is stored but not served) and the built-in
  kinds (``load_bundled``);
- optimistic concurrency, which leader election rests on: every create and patch gets a new
  ``metadata.resourceVersion`` (one counter, as etcd's revision), and a JSON merge patch that
  names a ``metadata.resourceVersion`` other than the stored one answers 409 Conflict, as the
  API server does; kmock has no resourceVersion at all;
- it records every write (method, path, User-Agent) in ``writes``, as an API server's audit
  log does, so a test can say which operator replica wrote what.
Not mended but avoided: ``/api/v1/namespaces`` answers 500 (kopf would retry for ever); the
operator turns kopf's namespace and CRD scanning off in production too, so it never asks.
Left as they are: creates answer 200 (the operator takes 200 and 201), lists ignore label
selectors (the operator checks the labels itself: an unlabelled pod in the tests proves it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.daemon import DaemonProcess


class FakeCluster:
    """kmock's emulator served on 127.0.0.1 while the context is open."""

    def __init__(self, custom: list[tuple[str, str, str, bool]]) -> None:
        """``custom``: (group/version, plural, kind, namespaced) of each custom resource."""
        self.custom = custom
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)
        self._error: BaseException | None = None
        self.writes: list[tuple[str, str, str]] = []
        """(method, path, User-Agent) of every create, patch and delete served."""

    def __enter__(self) -> FakeCluster:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        import kmock

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with _emulator(self.writes)() as k, kmock.Server(k) as server:
            k.resources.load_bundled()
            for group_version, plural, kind, namespaced in self.custom:
                k.resources[f"{group_version}/{plural}"] = kmock.ResourceInfo(
                    kind=kind,
                    namespaced=namespaced,
                    verbs={"list", "watch", "get", "create", "patch", "delete", "update"},
                    subresources={"status"},
                )
            self.port = server.port
            self._ready.set()
            await self._stop.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "not-checked"}}],
                    "contexts": [
                        {
                            "name": "kmock",
                            "context": {"cluster": "kmock", "user": "tester", "namespace": "t"},
                        }
                    ],
                    "current-context": "kmock",
                }
            )
        )
        return path

    # -- plain HTTP, as kubectl would -----------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        return body if status == 200 else None

    def create(self, path: str, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        status, body = self.request("POST", path, obj)
        assert status in (200, 201), (status, body)
        return dict(body)

    def patch_spec(self, path: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A change of spec, with ``metadata.generation`` bumped as the API server does."""
        current = self.get(path)
        generation = int(current["metadata"].get("generation", 1)) + 1
        status, body = self.request(
            "PATCH", path, {"metadata": {"generation": generation}, "spec": spec}
        )
        assert status == 200, (status, body)
        return dict(body)

    def delete(self, path: str) -> int:
        return self.request("DELETE", path)[0]

    def wait_for(self, what: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = what()
            if last:
                return last
            time.sleep(every)
        raise AssertionError(f"not within {timeout}s; last: {last!r}")


class Kubelet:
    """Copies a ConfigMap's ``agent-sre.yaml`` into each daemon's file, as a volume mount
    does (atomically, some time after the change); ``hold()`` stops the copying."""

    def __init__(self, cluster: FakeCluster, namespace: str, configmap: str) -> None:
        self.cluster = cluster
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{configmap}"
        self.daemons: list[DaemonProcess] = []
        self.held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self.copies = 0

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def hold(self) -> None:
        self.held.set()

    def release(self) -> None:
        self.held.clear()

    def text(self) -> str | None:
        cm = self.cluster.get(self.path)
        return None if cm is None else (cm.get("data") or {}).get("agent-sre.yaml")

    def sync(self) -> None:
        text = self.text()
        if text is None:
            return
        for daemon in self.daemons:
            if daemon.config_path.exists() and daemon.config_path.read_text() == text:
                continue
            tmp = daemon.config_path.with_name(".agent-sre.yaml.tmp")
            tmp.write_text(text)
            os.replace(tmp, daemon.config_path)
            self.copies += 1

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if not self.held.is_set():
                with contextlib.suppress(OSError):
                    self.sync()


def _emulator(writes: list[tuple[str, str, str]]) -> Any:
    """kmock's emulator with resourceVersions, 409 on a stale one, and the write log."""
    import kmock
    from kmock._internal.k8s import KubernetesObjectConflictError

    class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
        revision = 0
        revision_lock: asyncio.Lock | None = None

        async def _handle(self, request: Any) -> Any:
            action = request.action
            writing = request.resource is not None and action in (
                kmock.action.CREATE,
                kmock.action.UPDATE,
                kmock.action.DELETE,
            )
            if not writing:
                return await super()._handle(request)
            if self.revision_lock is None:
                self.revision_lock = asyncio.Lock()
            async with self.revision_lock:
                writes.append(
                    (str(request.method).upper().rpartition(".")[2], request.url.path,
                     request.headers.get("User-Agent", ""))
                )  # fmt: skip
                data = request.data
                if action != kmock.action.DELETE and isinstance(data, dict):
                    meta = data.get("metadata")
                    wanted = meta.get("resourceVersion") if isinstance(meta, dict) else None
                    if action == kmock.action.UPDATE and wanted is not None:
                        key = (request.resource, request.namespace, request.name)
                        stored = self.objects[key] if key in self.objects else None  # noqa: SIM401
                        current = None
                        if stored is not None and not stored.deleted:
                            current = (stored.raw.get("metadata") or {}).get("resourceVersion")
                        if current is not None and str(wanted) != str(current):
                            raise KubernetesObjectConflictError(
                                reason="Conflict",
                                message="the object has been modified; please apply your "
                                "changes to the latest version and try again",
                            )
                    Emulator.revision += 1
                    data.setdefault("metadata", {})["resourceVersion"] = str(Emulator.revision)
                return await super()._handle(request)

    return Emulator
