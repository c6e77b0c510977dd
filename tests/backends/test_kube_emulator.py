"""The Kubernetes emulator as the official client sees it: wire realism, controllers, faults.

Every test goes through ``kubernetes`` 37 over HTTP (or through our KubeClient
adapter, which uses it); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.dynamic import DynamicClient

from bootstrap.clients.kubernetes import KubeClient
from bootstrap.errors import AuthError, RetryableError
from sandbox.httpemu import Fault
from tests.fixtures.kube import KubeSandbox

APPLICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {
            "kind": "Application",
            "plural": "applications",
            "singular": "application",
            "shortNames": ["app"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
                "subresources": {"status": {}},
            }
        ],
    },
}


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "x:1"}]},
            },
        },
    }


@pytest.fixture
def api(kube_emu: KubeSandbox) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(str(kube_emu.kubeconfig_path), context="sandbox")
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def kube(kube_emu: KubeSandbox) -> Iterator[KubeClient]:
    kc = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
    yield kc
    kc.close()


def _status(exc: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_namespaces_create_and_list(core: client.CoreV1Api, kube_emu: KubeSandbox) -> None:
    ns = core.create_namespace({"metadata": {"name": "argocd"}})
    assert ns.status.phase == "Active"
    names = [n.metadata.name for n in core.list_namespace().items]
    assert "argocd" in names and "default" in names
    assert kube_emu.get("v1", "Namespace", None, "argocd") is not None


def test_create_get_list_with_metadata_and_selectors(core: client.CoreV1Api, api: client.ApiClient) -> None:
    data, status, _ = core.create_namespaced_config_map_with_http_info(
        "default", {"metadata": {"name": "a", "labels": {"team": "x"}}, "data": {"k": "v"}}
    )
    assert status == 201
    assert data.metadata.uid and data.metadata.resource_version and data.metadata.creation_timestamp
    assert data.metadata.namespace == "default"
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"team": "y"}}})
    assert core.read_namespaced_config_map("a", "default").data == {"k": "v"}
    assert [
        c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="team=x").items
    ] == ["a"]
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map("default", label_selector="team in (x,y)").items
    ] == [
        "a",
        "b",
    ]
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=b").items
    assert [c.metadata.name for c in by_name] == ["b"]
    raw = json.loads(core.list_namespaced_config_map("default", _preload_content=False).data)
    assert raw["kind"] == "ConfigMapList" and raw["apiVersion"] == "v1" and raw["metadata"]["resourceVersion"]


def test_not_found_and_already_exists_are_status_objects(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_secret("nope", "default")
    assert err.value.status == 404
    assert _status(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "secrets"},
        "code": 404,
    }
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "c"}})
    assert err.value.status == 404 and _status(err.value)["message"] == 'namespaces "missing-ns" not found'
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422 and _status(err.value)["reason"] == "Invalid"


def test_secret_string_data_becomes_base64_data(core: client.CoreV1Api, kube: KubeClient) -> None:
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    stored = core.read_namespaced_secret("s", "default")
    assert (
        stored.data == {"password": "aHVudGVyMg=="} and stored.string_data is None and stored.type == "Opaque"
    )
    assert kube.secret_data("default", "s") == {"password": "hunter2"}
    assert kube.secret_data("default", "absent") is None


def test_replace_with_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"k": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("c", "default", cm)
    assert int(updated.metadata.resource_version) > int(stale)
    cm.data = {"k": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_config_map("c", "default", cm)
    body = _status(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"] and body["details"] == {
        "name": "c",
        "kind": "configmaps",
    }


def test_merge_json_and_strategic_patches(core: client.CoreV1Api, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}})
    merged = core.patch_namespaced_config_map("c", "default", {"data": {"a": None, "c": "3"}})
    assert merged.data == {"b": "2", "c": "3"}
    patched = core.patch_namespaced_config_map(
        "c",
        "default",
        [{"op": "replace", "path": "/data/b", "value": "20"}],
        _content_type="application/json-patch+json",
    )
    assert patched.data == {"b": "20", "c": "3"}
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map(
            "c",
            "default",
            [{"op": "test", "path": "/data/b", "value": "x"}],
            _content_type="application/json-patch+json",
        )
    assert err.value.status == 422
    deployment = _deployment("web")
    deployment["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    apps.create_namespaced_deployment("default", deployment)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x:2"}]}}}}
    result = apps.patch_namespaced_deployment("web", "default", patch)  # strategic merge by default
    containers = {c.name: c.image for c in result.spec.template.spec.containers}
    assert containers == {"main": "x:2", "side": "s:1"}
    assert result.metadata.generation == 2


def test_server_side_apply_creates_tracks_managers_and_honours_dry_run(
    core: client.CoreV1Api, kube: KubeClient, kube_emu: KubeSandbox
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"a": "1"},
    }
    dry = kube.apply(cm, "bootstrap", dry_run=True)
    assert dry["data"] == {"a": "1"}
    assert kube_emu.get("v1", "ConfigMap", "default", "c") is None
    assert kube_emu.log.writes == []

    created = kube.apply(cm, "bootstrap")
    assert created["metadata"]["managedFields"][0]["manager"] == "bootstrap"
    assert created["metadata"]["managedFields"][0]["operation"] == "Apply"
    again = kube.apply(cm, "bootstrap")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert len(kube_emu.log.writes) == 1  # the no-op apply is not a write

    core.patch_namespaced_config_map(
        "c", "default", {"data": {"a": "hand-edited"}}, field_manager="kubectl-edit"
    )
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map(
            "c", "default", cm, field_manager="bootstrap", _content_type="application/apply-patch+yaml"
        )
    assert err.value.status == 409 and 'conflict with "kubectl-edit"' in _status(err.value)["message"]
    assert kube.apply(cm, "bootstrap")["data"] == {"a": "1"}  # forced

    kube.apply({**cm, "data": {"b": "2"}}, "bootstrap")  # a field no longer applied is removed
    assert kube_emu.get("v1", "ConfigMap", "default", "c")["data"] == {"b": "2"}  # type: ignore[index]

    writes = len(kube_emu.log.writes)
    kube.apply({**cm, "data": {"z": "9"}}, "bootstrap", dry_run=True)
    assert kube_emu.get("v1", "ConfigMap", "default", "c")["data"] == {"b": "2"}  # type: ignore[index]
    assert len(kube_emu.log.writes) == writes


def _owners(obj: dict[str, Any] | None) -> dict[str, set[str]]:
    """manager → the ``data`` keys it owns, read from managedFields as the steps read them."""
    out: dict[str, set[str]] = {}
    for entry in (obj or {})["metadata"].get("managedFields") or []:
        fields = (entry.get("fieldsV1") or {}).get("f:data") or {}
        out[entry["manager"]] = {k[2:] for k in fields if k.startswith("f:")}
    return out


def test_two_field_managers_share_one_object_under_concurrent_applies(
    kube_emu: KubeSandbox, tmp_path: Any
) -> None:
    """argocd-users and github-oauth both server-side apply ``argocd-cm`` (forced, own managers).

    Server-side apply (https://kubernetes.io/docs/reference/using-api/server-side-apply/):
    each manager owns the fields it applied; applying without a field it owned removes the
    field unless another manager owns it; other managers' fields are untouched, also when
    the apply carries an empty ``data`` map (which is how a step drops all of its keys).
    """

    def cm(data: dict[str, str]) -> dict[str, Any]:
        meta = {"name": "argocd-cm", "namespace": "default"}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    users = {"accounts.deployer": "apiKey", "admin.enabled": "true"}
    oauth = {"url": "https://argocd.example", "dex.config": "connectors: []"}
    errors: list[BaseException] = []

    def apply_many(manager: str, data: dict[str, str], start: threading.Barrier) -> None:
        kc = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
        try:
            start.wait(timeout=120)
            for i in range(15):
                # every other round this manager drops all of its keys, as destroy does
                kc.apply(cm({} if i % 2 else data), manager)
            kc.apply(cm(data), manager)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            kc.close()

    def concurrently() -> None:
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=apply_many, args=("bootstrap-argocd-users", users, start)),
            threading.Thread(target=apply_many, args=("bootstrap-github-oauth", oauth, start)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert errors == []

    concurrently()
    obj = kube_emu.get("v1", "ConfigMap", "default", "argocd-cm")
    assert obj is not None and obj["data"] == users | oauth
    owners = _owners(obj)
    assert owners["bootstrap-argocd-users"] == set(users)
    assert owners["bootstrap-github-oauth"] == set(oauth)

    kc = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
    try:
        kc.apply(cm({}), "bootstrap-github-oauth")  # github-oauth's destroy
        obj = kube_emu.get("v1", "ConfigMap", "default", "argocd-cm")
        assert obj is not None and obj["data"] == users
        assert _owners(obj)["bootstrap-argocd-users"] == set(users)
        kc.apply(cm({}), "bootstrap-argocd-users")  # argocd-users' destroy
        obj = kube_emu.get("v1", "ConfigMap", "default", "argocd-cm")
        assert obj is not None and not obj.get("data")
    finally:
        kc.close()

    concurrently()  # a run after a destroy
    obj = kube_emu.get("v1", "ConfigMap", "default", "argocd-cm")
    assert obj is not None and obj["data"] == users | oauth
    owners = _owners(obj)
    assert owners["bootstrap-argocd-users"] == set(users)
    assert owners["bootstrap-github-oauth"] == set(oauth)


def test_dry_run_on_every_write_verb_stores_nothing(core: client.CoreV1Api, kube_emu: KubeSandbox) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    before = kube_emu.get("v1", "ConfigMap", "default", "c")
    writes = len(kube_emu.log.writes)
    core.create_namespaced_config_map("default", {"metadata": {"name": "d"}}, dry_run="All")
    core.patch_namespaced_config_map("c", "default", {"data": {"a": "2"}}, dry_run="All")
    core.replace_namespaced_config_map("c", "default", {"metadata": {"name": "c"}, "data": {}}, dry_run="All")
    core.delete_namespaced_config_map("c", "default", dry_run="All")
    assert kube_emu.get("v1", "ConfigMap", "default", "d") is None
    assert kube_emu.get("v1", "ConfigMap", "default", "c") == before
    assert len(kube_emu.log.writes) == writes


def test_crd_makes_custom_resources_discoverable(
    api: client.ApiClient, kube: KubeClient, tmp_path: Any
) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(APPLICATION_CRD)
    dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
    apps = dyn.resources.get(api_version="argoproj.io/v1alpha1", kind="Application")
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "root", "namespace": "default"},
        "spec": {"project": "default"},
    }
    apps.create(body=app, namespace="default")
    assert apps.get(name="root", namespace="default").spec.project == "default"
    got = kube.get("argoproj.io/v1alpha1", "Application", "default", "root")
    assert got is not None and got["metadata"]["generation"] == 1
    listed = kube.list("argoproj.io/v1alpha1", "Application", "default")
    assert [a["metadata"]["name"] for a in listed] == ["root"]
    assert kube.get("argoproj.io/v1alpha1", "AppProject", "default", "x") is None  # not served: absent


def test_status_subresource_is_separate_from_the_object(api: client.ApiClient, kube_emu: KubeSandbox) -> None:
    kube_emu.ready_delay = 60.0  # keep the controller stand-in out of this test
    apps = client.AppsV1Api(api)
    apps.create_namespaced_stateful_set("default", {**_deployment("db"), "kind": "StatefulSet"})
    apps.patch_namespaced_stateful_set_status(
        "db", "default", {"status": {"replicas": 1, "readyReplicas": 1}}
    )
    assert apps.read_namespaced_stateful_set("db", "default").status.ready_replicas == 1
    apps.patch_namespaced_stateful_set(
        "db", "default", {"status": {"readyReplicas": 0}}
    )  # ignored on the main resource
    assert apps.read_namespaced_stateful_set_status("db", "default").status.ready_replicas == 1


def test_watch_streams_current_state_then_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "first"}})
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    started = threading.Event()

    def changes() -> None:
        started.wait()
        core.create_namespaced_config_map("default", {"metadata": {"name": "second"}})
        core.patch_namespaced_config_map("second", "default", {"data": {"k": "v"}})
        core.delete_namespaced_config_map("second", "default")

    worker = threading.Thread(target=changes)
    worker.start()
    for event in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        started.set()
        if event["type"] == "DELETED":
            w.stop()
            break
    worker.join()
    assert seen == [("ADDED", "first"), ("ADDED", "second"), ("MODIFIED", "second"), ("DELETED", "second")]


def test_controller_stand_in_and_hold(
    kube_emu: KubeSandbox, kube: KubeClient, core: client.CoreV1Api
) -> None:
    core.create_namespace({"metadata": {"name": "argocd"}})
    kube_emu.hold("argocd", "Deployment", "argocd-server")
    for name in ("argocd-server", "argocd-repo-server"):
        kube.apply({**_deployment(name), "metadata": {"name": name, "namespace": "argocd"}}, "bootstrap")
    sts = {**_deployment("argocd-application-controller"), "kind": "StatefulSet"}
    kube.apply(
        {**sts, "metadata": {"name": "argocd-application-controller", "namespace": "argocd"}}, "bootstrap"
    )
    workloads = [
        ("Deployment", "argocd-repo-server"),
        ("StatefulSet", "argocd-application-controller"),
        ("Deployment", "argocd-server"),
    ]
    progress: list[str] = []
    # Generous bounds: the stand-in marks workloads ready on a timer, which a busy machine delays.
    kube.wait_available("argocd", workloads[:2], timeout=120, on_progress=progress.append)
    with pytest.raises(RetryableError) as err:
        kube.wait_available("argocd", workloads, timeout=0.5, on_progress=progress.append)
    message = str(err.value)
    assert "Deployment/argocd-server" in message and "argocd-repo-server" not in message
    assert "MinimumReplicasUnavailable" in message or "not yet observed" in message
    assert progress

    kube_emu.release("argocd", "Deployment", "argocd-server")
    kube.wait_available("argocd", workloads, timeout=120, on_progress=progress.append)
    server = kube.get("apps/v1", "Deployment", "argocd", "argocd-server")
    assert server is not None
    assert {"type": "Available", "status": "True"}.items() <= server["status"]["conditions"][0].items()
    assert server["status"]["observedGeneration"] == server["metadata"]["generation"]


def test_faults_are_seen_by_the_client(
    kube_emu: KubeSandbox, kube: KubeClient, core: client.CoreV1Api
) -> None:
    kube_emu.faults.add(Fault("ratelimit", method="GET", path="/configmaps/", nth=1, retry_after=0))
    with pytest.raises(RetryableError) as err:
        kube.get("v1", "ConfigMap", "default", "x")
    assert "429" in str(err.value) and err.value.delay == 0
    kube_emu.faults.add(Fault("status", status=503, method="GET", path="/secrets/", times=1))
    with pytest.raises(RetryableError, match="503"):
        kube.secret_data("default", "x")
    kube_emu.faults.add(Fault("status", status=500, method="POST", nth=1))
    with pytest.raises(client.ApiException) as api_err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert api_err.value.status == 500 and _status(api_err.value)["kind"] == "Status"
    kube_emu.faults.add(Fault("reset", method="GET", path="/configmaps/", times=2))
    with pytest.raises(RetryableError, match="unreachable"):
        kube.get("v1", "ConfigMap", "default", "x")
    assert kube.get("v1", "ConfigMap", "default", "x") is None  # every fault has run out
    assert kube_emu.log.count("GET", "/configmaps/x") == 4


def test_auth_errors_name_the_context_and_permission(kube_emu: KubeSandbox, tmp_path: Any) -> None:
    kube_emu.forbid("patch", "secrets", "argocd")
    kube_emu.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
    kc = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "argocd"}}
    with pytest.raises(AuthError, match="needs permission to patch secrets in namespace argocd") as err:
        kc.apply(secret, "bootstrap")
    assert "'sandbox'" in str(err.value)
    kc.close()

    kube_emu.check_token = True
    kube_emu.token = "the-right-token"
    bad = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
    with pytest.raises(AuthError, match="rejected the credentials") as err:
        bad.get("v1", "ConfigMap", "default", "x")
    assert "sandbox-token" not in str(err.value) and "the-right-token" not in str(err.value)
    bad.close()


def test_unreachable_cluster_is_retryable(tmp_path: Any) -> None:
    emu = KubeSandbox()
    emu.start()
    path = emu.write_kubeconfig(tmp_path / "kc")
    emu.stop()
    kc = KubeClient(str(path), None)
    with pytest.raises(RetryableError, match="unreachable"):
        kc.get("v1", "ConfigMap", "default", "x")
    kc.close()


@pytest.mark.realcluster
@pytest.mark.skipif(
    not os.environ.get("BOOTSTRAP_REAL_CLUSTER"), reason="set BOOTSTRAP_REAL_CLUSTER=1 and KUBECONFIG"
)
def test_real_cluster_agrees_on_the_basics() -> None:
    """The same adapter calls against a real API server (opt-in): discovery, 404 → None, dry-run apply."""
    kc = KubeClient(os.environ.get("KUBECONFIG"), os.environ.get("BOOTSTRAP_REAL_CONTEXT"))
    assert kc.get("v1", "Namespace", None, "default") is not None
    assert kc.get("v1", "ConfigMap", "default", "gitops-bootstrap-absent") is None
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "gitops-bootstrap-probe", "namespace": "default"},
    }
    assert kc.apply(cm, "gitops-bootstrap-test", dry_run=True)["metadata"]["name"] == "gitops-bootstrap-probe"
    assert kc.get("v1", "ConfigMap", "default", "gitops-bootstrap-probe") is None
    kc.close()
