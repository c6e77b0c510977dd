"""argocd-install in hub mode: nothing goes to the customer cluster; the hub gets the customer's share.

The hub repo's records (``hub/root.yaml``, ``hub/projects/<customer>.yaml``) are what
argocd-dir commits in hub mode; here they are committed by hand so that this step is
tested on its own.
"""

from __future__ import annotations

from typing import Any

import yaml

from bootstrap.clients import argocd
from bootstrap.step import Action
from sandbox import hub as sandbox_hub
from steps.argocd_install import ArgocdInstall
from steps.deploy_key import DeployKey
from tests.fixtures.world import World
from tests.steps.cluster_run import run, secrets_in
from tests.steps.hub_world import customer_file

NS = "argocd"
HUB_SECRET = "repo-hub-acme-sre-hub"


def hub_repo_key(world: World) -> str:
    record = world.vault.client.read(f"{world.vault.prefix}/_hub/acme-sre/hub/deploy-key")
    assert record is not None
    return str(record["private_key"])


def hub_keys(world: World) -> list[Any]:
    return world.session().services.github.list_deploy_keys(sandbox_hub.GITOPS_REPO)  # type: ignore[no-any-return]


ROOT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "hub-root", "namespace": NS},
    "spec": {
        "project": "default",
        "source": {
            "repoURL": "git@github.example:acme-sre/hub.git",
            "targetRevision": "main",
            "path": "hub/appsets",
        },
        "destination": {"server": "https://kubernetes.default.svc", "namespace": NS},
    },
}
PROJECT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AppProject",
    "metadata": {"name": "kuvaq", "namespace": NS},
    "spec": {
        "sourceRepos": ["*"],
        "destinations": [{"name": "kuvaq", "namespace": "*"}],
        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
    },
}


def test_hub_mode_writes_the_customers_share_to_the_hub_only(hub_world: World) -> None:
    world = hub_world
    assert run(world, (DeployKey,)).result.status == "done"
    owner, name = sandbox_hub.GITOPS_REPO.split("/")
    files = {"hub/root.yaml": yaml.safe_dump(ROOT), "hub/projects/kuvaq.yaml": yaml.safe_dump(PROJECT)}
    world.github.commit_files(owner, name, "main", files, "hub records")
    world.reset_logs()
    ctx = world.context()  # with deploy-key's recorded outputs, as the engine would give
    step = ArgocdInstall()
    plan = step.plan(ctx)
    assert [(c.action, c.target) for c in plan.changes] == [
        (Action.CREATE, f"Secret {NS}/repo-kuvaq-infra in the hub"),
        (Action.CREATE, f"Secret {NS}/{HUB_SECRET} in the hub"),
        (Action.CREATE, f"Secret {NS}/creds-kuvaq-kit in the hub"),
        (Action.CREATE, f"AppProject {NS}/kuvaq in the hub"),
        (Action.CREATE, f"Application {NS}/hub-root in the hub"),
    ]
    assert world.writes() == 0

    # Called directly: the engine would want argocd-dir, argocd-users and github-oauth recorded first.
    outputs = step.apply(ctx, plan)
    assert outputs == {"project": f"{NS}/kuvaq", "mode": "hub"}
    step.verify(ctx)
    # Nothing in the customer cluster: no Argo CD, no namespace, no Secret.
    assert world.kube.log.writes == [] and world.kube.get("v1", "Namespace", None, NS) is None
    repo = argocd.secret_data(world.hub.get("v1", "Secret", NS, "repo-kuvaq-infra"))
    # The hub repo's read credential: one read-only key on the hub repo, its private half in Vault.
    hub_repo = argocd.secret_data(world.hub.get("v1", "Secret", NS, HUB_SECRET))
    # The URL the hub's ApplicationSets read (argocd-dir renders them with the same ssh_url).
    assert hub_repo["url"] == ctx.config.github.ssh_url(sandbox_hub.GITOPS_REPO)
    assert hub_repo["sshPrivateKey"] == hub_repo_key(world)
    [hub_key_on_github] = hub_keys(world)
    assert hub_key_on_github.title == "argocd-hub" and hub_key_on_github.read_only
    key = world.vault.client.read(f"{world.vault.prefix}/kuvaq/deploy-key")
    assert key is not None and repo["sshPrivateKey"] == key["private_key"]
    assert world.hub.get("argoproj.io/v1alpha1", "AppProject", NS, "kuvaq")["spec"] == PROJECT["spec"]  # type: ignore[index]
    assert world.hub.get("argoproj.io/v1alpha1", "Application", NS, "hub-root") is not None

    hub_key = hub_repo_key(world)
    world.reset_logs()
    again = step.plan(world.context())
    assert again.empty and not secrets_in(str(again.to_json()), [key["private_key"], hub_key])
    assert world.writes() == 0

    # A second customer of the hub adopts the hub repo's credential: no new key, no new Vault version.
    hub = sandbox_hub.section(str(world.hub.kubeconfig_path))
    zorbu_file = customer_file(world, "zorbu", hub=hub)
    assert run(world, (DeployKey,), sess=world.session(zorbu_file)).result.status == "done"
    project = {**PROJECT, "metadata": {"name": "zorbu", "namespace": NS}}
    world.github.commit_files(
        owner, name, "main", {"hub/projects/zorbu.yaml": yaml.safe_dump(project)}, "zorbu"
    )
    zorbu = world.context(zorbu_file)
    zplan = step.plan(zorbu)
    assert f"Secret {NS}/{HUB_SECRET} in the hub" not in [c.target for c in zplan.changes]
    step.apply(zorbu, zplan)
    step.verify(zorbu)
    assert hub_repo_key(world) == hub_key
    assert [k.title for k in hub_keys(world)] == ["argocd-hub"]

    ctx = world.context()
    gone = step.plan_destroy(ctx)
    assert sorted(c.target for c in gone.changes) == [
        f"AppProject {NS}/kuvaq in the hub",
        f"Secret {NS}/creds-kuvaq-kit in the hub",
        f"Secret {NS}/repo-kuvaq-infra in the hub",
    ]  # never the hub's shared root
    step.destroy(ctx, gone)
    assert world.hub.get("argoproj.io/v1alpha1", "AppProject", NS, "kuvaq") is None
    assert world.hub.get("argoproj.io/v1alpha1", "Application", NS, "hub-root") is not None
    # The hub repo's credential is the hub's: one customer's destroy leaves it for the others.
    assert argocd.secret_data(world.hub.get("v1", "Secret", NS, HUB_SECRET))["sshPrivateKey"] == hub_key
    assert [k.title for k in hub_keys(world)] == ["argocd-hub"] and hub_repo_key(world) == hub_key
    assert step.plan(zorbu).empty
