"""argocd-install in hub mode: nothing goes to the customer cluster; the hub gets the customer's share.

The hub repo's records (``hub/root.yaml``, ``hub/projects/<customer>.yaml``) are what
argocd-dir commits in hub mode; here they are committed by hand so that this step is
tested on its own.
"""

from __future__ import annotations

import yaml

from bootstrap.clients import argocd
from bootstrap.step import Action
from sandbox import hub as sandbox_hub
from steps.argocd_install import ArgocdInstall
from steps.deploy_key import DeployKey
from tests.fixtures.world import World
from tests.steps.cluster_run import run, secrets_in

NS = "argocd"
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
    sess = world.session()
    step = ArgocdInstall()
    plan = step.plan(sess.context)
    assert [(c.action, c.target) for c in plan.changes] == [
        (Action.CREATE, f"Secret {NS}/repo-kuvaq-infra in the hub"),
        (Action.CREATE, f"Secret {NS}/creds-kuvaq-kit in the hub"),
        (Action.CREATE, f"AppProject {NS}/kuvaq in the hub"),
        (Action.CREATE, f"Application {NS}/hub-root in the hub"),
    ]
    assert world.writes() == 0

    # Called directly: the engine would want argocd-dir, argocd-users and github-oauth recorded first.
    outputs = step.apply(sess.context, plan)
    assert outputs == {"project": f"{NS}/kuvaq", "mode": "hub"}
    step.verify(sess.context)
    # Nothing in the customer cluster: no Argo CD, no namespace, no Secret.
    assert world.kube.log.writes == [] and world.kube.get("v1", "Namespace", None, NS) is None
    repo = argocd.secret_data(world.hub.get("v1", "Secret", NS, "repo-kuvaq-infra"))
    key = world.vault.client.read(f"{world.vault.prefix}/kuvaq/deploy-key")
    assert key is not None and repo["sshPrivateKey"] == key["private_key"]
    assert world.hub.get("argoproj.io/v1alpha1", "AppProject", NS, "kuvaq")["spec"] == PROJECT["spec"]  # type: ignore[index]
    assert world.hub.get("argoproj.io/v1alpha1", "Application", NS, "hub-root") is not None

    world.reset_logs()
    again = step.plan(world.session().context)
    assert again.empty and not secrets_in(str(again.to_json()), [key["private_key"]])
    assert world.writes() == 0

    sess = world.session()
    gone = step.plan_destroy(sess.context)
    assert sorted(c.target for c in gone.changes) == [
        f"AppProject {NS}/kuvaq in the hub",
        f"Secret {NS}/creds-kuvaq-kit in the hub",
        f"Secret {NS}/repo-kuvaq-infra in the hub",
    ]  # never the hub's shared root
    step.destroy(sess.context, gone)
    assert world.hub.get("argoproj.io/v1alpha1", "AppProject", NS, "kuvaq") is None
    assert world.hub.get("argoproj.io/v1alpha1", "Application", NS, "hub-root") is not None
