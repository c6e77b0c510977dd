"""github-oauth in hub mode: Grafana's SSO Secret in the customer cluster, no Dex config anywhere.

The hub's Dex (one ``dex.config`` for all clusters) belongs to the hub; the customer
cluster runs no Argo CD. So the only cluster write is ``monitoring/grafana-github-oauth``.
"""

from __future__ import annotations

from bootstrap.clients import argocd
from steps.github_oauth import GRAFANA_NS, GRAFANA_SECRET, GithubOauth
from tests.fixtures.world import World
from tests.steps.cluster_run import destroy, run


def test_hub_mode_writes_only_grafanas_secret(hub_world: World) -> None:
    world = hub_world
    cm_before = world.hub.get("v1", "ConfigMap", "argocd", argocd.CM)
    result = run(world, (GithubOauth,))
    assert result.result.status == "done", result.result.message
    grafana = argocd.secret_data(world.kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET))
    assert grafana["GF_AUTH_GITHUB_CLIENT_ID"] == "Iv1.sandbox0000000001"
    assert world.kube.get("v1", "Namespace", None, "argocd") is None
    assert world.hub.log.writes == [] and world.hub.get("v1", "ConfigMap", "argocd", argocd.CM) == cm_before
    world.reset_logs()
    assert run(world, (GithubOauth,)).result.status == "up-to-date" and world.writes() == 0
    gone = destroy(world, (GithubOauth,))
    assert gone.results[0].status == "done", gone.results[0].message
    assert world.kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET) is None
