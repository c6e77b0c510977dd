"""cluster-register on two Kubernetes emulators (hub + customer cluster), real Ansible, real OpenBao."""

from __future__ import annotations

import json

from bootstrap import hub
from bootstrap.clients import argocd
from steps.cluster_register import ClusterRegister
from tests.fixtures.world import World
from tests.steps.cluster_run import destroy, run, secrets_in, state_text

NS = "kube-system"
TOKEN_1 = "bootstrap-argocd-manager-token-1"


def hub_secret(world: World) -> dict:
    got = world.hub.get("v1", "Secret", "argocd", "cluster-kuvaq")
    assert got is not None
    return got


def test_register_smoke(hub_world: World) -> None:
    world = hub_world
    first = run(world, (ClusterRegister,))
    assert first.result.status == "done", first.result.message
    secret = hub_secret(world)
    data = argocd.secret_data(secret)
    config = json.loads(data["config"])
    token = argocd.secret_data(world.kube.get("v1", "Secret", NS, TOKEN_1))["token"]
    assert config["bearerToken"] == token
    assert secret["metadata"]["labels"][hub.KUBERNETES_VERSION] == "1.33"
    assert not secrets_in(state_text(world), [token])
    again = run(world, (ClusterRegister,))
    assert again.result.status == "up-to-date", again.result
    removed = destroy(world, (ClusterRegister,))
    assert removed.results[0].status == "removed", removed.results[0]
