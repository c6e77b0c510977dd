"""cluster-register on two Kubernetes emulators (hub + customer cluster), real Ansible, real OpenBao.

Each playbook run costs seconds, so one test walks a customer through the whole life of a
registration (plan → register → no-op → label change → rotate → unregister) and another
through the adoption of what a crashed run left behind.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from bootstrap import engine, hub, hub_status
from bootstrap.clients import argocd
from bootstrap.step import Action
from sandbox.github_seed import KIT_ADDONS
from sandbox.kube_tokens import TOKEN_TYPE
from steps import cluster_register
from steps.cluster_register import ClusterRegister
from tests.fixtures.world import World
from tests.steps.cluster_run import destroy, run, secrets_in, state_text
from tests.unit.recording import RecordingReporter

NS = cluster_register.NAMESPACE
HUB_NS = "argocd"
TOKEN_1 = cluster_register.token_secret_name(1)
TOKEN_2 = cluster_register.token_secret_name(2)
ADDON_DOMAIN = hub.kit_label_domain("acme-sre/kit-core")


def hub_secret(world: World) -> dict[str, Any]:
    got = world.hub.get("v1", "Secret", HUB_NS, "cluster-kuvaq")
    assert got is not None
    return got


def token_of(world: World, name: str) -> str:
    return argocd.secret_data(world.kube.get("v1", "Secret", NS, name))["token"]


def vault_record(world: World) -> dict[str, str] | None:
    return world.vault.client.read(f"{world.vault.prefix}/kuvaq/cluster-token")


def registered_token(world: World) -> str:
    return str(json.loads(argocd.secret_data(hub_secret(world))["config"])["bearerToken"])


def test_register_relabel_rotate_unregister(hub_world: World) -> None:
    world = hub_world
    world.kube.server_version["minor"] = "31+"  # as EKS/GKE answer /version
    planned = run(world, (ClusterRegister,), dry_run=True)
    plan = planned.result.plan
    assert plan is not None
    assert [(c.action, c.target) for c in plan.changes] == [
        (Action.CREATE, f"ServiceAccount {NS}/bootstrap-argocd-manager and its RBAC"),
        (Action.CREATE, f"Secret {NS}/{TOKEN_1}"),
        (Action.CREATE, f"Vault secret/{world.vault.prefix}/kuvaq/cluster-token"),
        (Action.CREATE, f"Secret {HUB_NS}/cluster-kuvaq in the hub"),
    ]
    assert f"+ label {hub.KUBERNETES_VERSION}: 1.31" in plan.changes[3].diff
    assert world.kube.log.writes == [] and world.hub.log.writes == [] and vault_record(world) is None

    first = run(world, (ClusterRegister,))
    assert first.result.status == "done", first.result.message
    token = token_of(world, TOKEN_1)
    secret = hub_secret(world)
    data = argocd.secret_data(secret)
    config = json.loads(data["config"])
    # Argo CD's declarative cluster Secret (operator-manual/declarative-setup.md, "Clusters").
    assert data["name"] == "kuvaq" and data["server"] == world.kube.url
    assert config == {
        "bearerToken": token,
        "tlsClientConfig": {"caData": base64.b64encode(world.kube.ca_bundle.encode()).decode()},
    }
    labels = secret["metadata"]["labels"]
    assert labels[hub.SECRET_TYPE] == "cluster" and labels[hub.KUBERNETES_VERSION] == "1.31"
    assert {k: v for k, v in labels.items() if k.startswith(ADDON_DOMAIN)} == {
        f"{ADDON_DOMAIN}/{a}": str(a in ("cert-manager", "external-dns")).lower() for a in KIT_ADDONS["v1.4"]
    }
    assert vault_record(world) == {"token": token, "ca_data": config["tlsClientConfig"]["caData"]}
    assert first.result.outputs["token_secret"] == f"{NS}/{TOKEN_1}"
    assert not secrets_in(state_text(world), [token]) and not first.leaks
    assert not secrets_in(json.dumps([e for e in first.reporter.events], default=str), [token])
    role = world.kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", None, "bootstrap-argocd-manager")
    assert role is not None and role["rules"][0] == {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}

    world.reset_logs()
    again = run(world, (ClusterRegister,))
    assert again.result.status == "up-to-date", again.result.message
    assert world.writes() == 0

    # A label change: only that label of the hub Secret changes, nothing in the customer cluster.
    world.customer(kit={"addons": ["cert-manager", "loki"]})
    before = hub_secret(world)
    relabel = run(world, (ClusterRegister,))
    assert relabel.result.status == "done", relabel.result.message
    after = hub_secret(world)
    changed = {
        k
        for k in before["metadata"]["labels"].keys() | after["metadata"]["labels"].keys()
        if before["metadata"]["labels"].get(k) != after["metadata"]["labels"].get(k)
    }
    assert changed == {f"{ADDON_DOMAIN}/external-dns", f"{ADDON_DOMAIN}/loki"}
    assert after["data"] == before["data"] and world.kube.log.writes == []

    # rotate cluster-token: a new token Secret, the hub moved to it, the old token Secret deleted.
    sess = world.session()
    eng = engine.Engine(
        [ClusterRegister()], sess.store, RecordingReporter(), sess.redactor, retry_delay_cap=0.2
    )
    with sess.store.lock():
        rotated = eng.rotate(sess.context, "cluster-token")
    assert [r.status for r in rotated.results] == ["staged", "done"], [r.message for r in rotated.results]
    new = token_of(world, TOKEN_2)
    assert new != token and registered_token(world) == new and vault_record(world)["token"] == new  # type: ignore[index]
    assert world.kube.get("v1", "Secret", NS, TOKEN_1) is None
    assert hub_secret(world)["metadata"]["annotations"][cluster_register.TOKEN_IN_USE] == TOKEN_2

    removed = destroy(world, (ClusterRegister,))
    assert removed.results[0].status == "done", removed.results[0].message
    assert world.hub.get("v1", "Secret", HUB_NS, "cluster-kuvaq") is None
    assert [o["metadata"]["name"] for o in world.kube.objects("Secret") if o.get("type") == TOKEN_TYPE] == []
    assert world.kube.get("v1", "ServiceAccount", NS, "bootstrap-argocd-manager") is None
    assert vault_record(world) is None


def test_a_crashed_runs_leftovers_are_adopted(hub_world: World) -> None:
    """The ServiceAccount, RBAC and a filled token Secret exist, Vault and the hub have nothing."""
    world = hub_world
    objects = [*cluster_register._rbac_objects(), cluster_register._token_secret(TOKEN_1)]
    world.kube.seed(*objects)
    _wait_filled(world, TOKEN_1)
    left = token_of(world, TOKEN_1)
    # A second-generation token Secret from a rotate that crashed before Vault: retired, not used.
    world.kube.seed(cluster_register._token_secret(TOKEN_2))
    _wait_filled(world, TOKEN_2)
    world.reset_logs()
    result = run(world, (ClusterRegister,))
    assert result.result.status == "done", result.result.message
    assert registered_token(world) == left and vault_record(world)["token"] == left  # type: ignore[index]
    assert world.kube.get("v1", "Secret", NS, TOKEN_2) is None
    # Nothing re-created in the customer cluster: only the retired token Secret is deleted.
    assert [(w.method, w.path) for w in world.kube.log.writes] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/secrets/{TOKEN_2}")
    ]


def _wait_filled(world: World, name: str) -> None:
    from bootstrap.clients.kubernetes import KubeClient

    KubeClient(str(world.kube.kubeconfig_path), "sandbox").wait_secret_keys(
        NS, name, ("token", "ca.crt"), 30.0, "test"
    )


def test_status_hub_names_unregistered_and_foreign_clusters(
    hub_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a registration the customer is 'not registered'; another tool's cluster is listed as such."""
    world = hub_world
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    foreign = argocd.secret(
        "cluster-elsewhere",
        HUB_NS,
        {
            "name": argocd.b64("elsewhere"),
            "server": argocd.b64("https://10.0.0.1"),
            "config": argocd.b64("{}"),
        },
        {hub.SECRET_TYPE: "cluster", "team.example.com/owner": "other"},
    )
    world.hub.seed(foreign)
    [entry] = hub_status.report([world.customer()])
    assert entry.missing == [f"kuvaq ({world.dir / 'customer.yaml'})"]
    [cluster] = entry.clusters
    assert (cluster.name, cluster.state, cluster.server) == (
        "elsewhere",
        "no customer.yaml given",
        "https://10.0.0.1",
    )
    assert entry.problems and '"config"' not in json.dumps(entry.to_json())


def _kube_writes(op: object) -> list[tuple[str, str]]:
    """The API server calls an operation is, in the customer cluster: server-side apply is a PATCH
    of the object's path (kubernetes.io/docs/reference/using-api/server-side-apply/)."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    match op:
        case cluster_register.ApplyAccount():
            return [
                ("PATCH", f"/api/v1/namespaces/{NS}/serviceaccounts/{cluster_register.ACCOUNT}"),
                ("PATCH", f"{rbac}/clusterroles/{cluster_register.ACCOUNT}"),
                ("PATCH", f"{rbac}/clusterrolebindings/{cluster_register.ACCOUNT}"),
            ]
        case cluster_register.CreateToken(name=name):
            return [("PATCH", f"/api/v1/namespaces/{NS}/secrets/{name}")]
    return []


def _vault_writes(world: World, op: object) -> list[tuple[str, str]]:
    """KV v2: the data, then the custom metadata naming the token Secret (POST /:mount/data/:path,
    POST /:mount/metadata/:path: developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2)."""
    if not isinstance(op, cluster_register.StoreToken):
        return []
    path = f"{world.vault.prefix}/kuvaq/cluster-token"
    return [("POST", f"/v1/secret/data/{path}"), ("POST", f"/v1/secret/metadata/{path}")]


def _hub_writes(op: object) -> list[tuple[str, str]]:
    if not isinstance(op, cluster_register.Register):
        return []
    return [("PATCH", f"/api/v1/namespaces/{HUB_NS}/secrets/cluster-kuvaq")]


def _apply_is_the_plan(world: World) -> list[object]:
    """Plan, apply, and check the writes in the customer cluster, Vault and the hub are the plan's
    operations, in order, and no more; then the plan is empty. Returns the operations."""
    step = ClusterRegister()
    plan = step.plan(world.context())
    ops = [c.payload for c in plan.changes]
    world.reset_logs()
    step.apply(world.context(), plan)
    assert [(w.method, w.path) for w in world.kube.log.writes] == [w for op in ops for w in _kube_writes(op)]
    vault = [(w.method, w.path) for w in world.vault_proxy.log.writes]  # type: ignore[union-attr]
    assert vault == [w for op in ops for w in _vault_writes(world, op)]
    assert [(w.method, w.path) for w in world.hub.log.writes] == [w for op in ops for w in _hub_writes(op)]
    assert world.github.log.writes == []
    assert step.plan(world.context()).empty
    assert registered_token(world) == vault_record(world)["token"]  # type: ignore[index]
    return ops


def test_apply_performs_exactly_the_planned_operations(hub_world: World) -> None:
    """Three starting states in a row (each playbook run costs seconds): fresh, the token Secret
    deleted, a label of the hub's cluster Secret changed by hand."""
    world = hub_world
    fresh = _apply_is_the_plan(world)
    assert [type(op) for op in fresh] == [
        cluster_register.ApplyAccount,
        cluster_register.CreateToken,
        cluster_register.StoreToken,
        cluster_register.Register,
    ]
    with world.kube.lock:
        world.kube.delete_stored(("", "secrets", NS, TOKEN_1))
    renewed = _apply_is_the_plan(world)
    assert [type(op) for op in renewed] == [
        cluster_register.CreateToken,
        cluster_register.StoreToken,
        cluster_register.Register,
    ]
    key = ("", "secrets", HUB_NS, "cluster-kuvaq")
    with world.hub.lock:
        drifted = copy.deepcopy(world.hub.stored(key))
        drifted["metadata"]["labels"][f"{ADDON_DOMAIN}/loki"] = "true"  # switched on by hand
        world.hub.commit_stored(key, drifted)
    assert [type(op) for op in _apply_is_the_plan(world)] == [cluster_register.Register]
