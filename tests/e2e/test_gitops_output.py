"""The whole GitOps output, held against Argo CD's documented rules and its real CRDs, then kept.

One install (real v3.3.14 manifest, through real Ansible, into the Kubernetes
emulator; the infra repo in the GitHub emulator), then:

1. every rule of tests/fixtures/argocd_rules.py holds on Git + cluster, and every
   Argo CD object validates against the manifest's own CRD schemas;
2. Argo CD's side is played: the root syncs ``argocd/apps`` (as the controller
   would, with its tracking annotation), the kit's section charts render their
   component Applications, and root.yaml from Git is applied over the live root;
   the rules still hold and ``plan`` has nothing to change (exit 0): bootstrap and
   Argo CD do not fight;
3. without credentials for the kit, verify fails naming the URL;
4. destroy deletes the root, waits while the (stand-in) controller cascades through
   the resources finalizers, and only then removes the controller and the CRDs:
   nothing is left Terminating.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bootstrap.clients.kubernetes import KubeClient
from bootstrap.errors import PermanentError
from sandbox import customer as sandbox_customer
from sandbox import github_seed
from steps.argocd_install import ArgocdInstall
from tests.fixtures import argocd_rules as rules
from tests.fixtures.world import World, deep_merge
from tests.steps.cluster_run import destroy
from tests.steps.test_argocd_install import STEPS, seed_argocd_users

NS = "argocd"
API = rules.API


def kube(world: World) -> KubeClient:
    return KubeClient(str(world.kube.kubeconfig_path), "sandbox")


def git_tree(world: World) -> dict[str, str]:
    return world.github.read_tree(*sandbox_customer.INFRA_REPO.split("/"), "main")


def output(world: World) -> rules.Output:
    k = kube(world)
    cluster = [
        *k.list(API, "Application", NS),
        *k.list(API, "AppProject", NS),
        *k.list("v1", "Secret", NS),
    ]
    addons = sandbox_customer.document(world.endpoints)["kit"]["addons"]
    components = {
        s: sorted(yaml.safe_load(github_seed.section_files(s, "v1.4")[f"{s}/values.yaml"])["components"])
        for s in ("base", "aws")
    }
    components["addons"] = list(addons)
    git = git_tree(world)
    infra_url = yaml.safe_load(git["argocd/root.yaml"])["spec"]["source"]["repoURL"]
    return rules.Output(git, cluster, infra_url, kit_components=components)


def render_section(app: dict[str, Any], git: dict[str, str]) -> list[dict[str, Any]]:
    """What a kit section chart renders (sandbox/github_seed.py's template), done in Python.

    Helm merges the customer's values file over the chart's values.yaml; the template
    emits one Application per component (addons: only appEnabled ones), tracked by the
    section Application that synced it.
    """
    kit_src, _ = app["spec"]["sources"]
    section = kit_src["path"]
    chart = yaml.safe_load(
        github_seed.section_files(section, kit_src["targetRevision"])[f"{section}/values.yaml"]
    )
    values_path = kit_src["helm"]["valueFiles"][0].removeprefix("$values/")
    values = deep_merge(chart, yaml.safe_load(git[values_path]))
    out = []
    for name, c in values["components"].items():
        if section == "addons" and not values.get("appEnabled", {}).get(name):
            continue
        child_name = f"{values['customer']}-{name}"
        out.append(
            {
                "apiVersion": API,
                "kind": "Application",
                "metadata": {
                    "name": child_name,
                    "namespace": values["argocd"]["namespace"],
                    "finalizers": ["resources-finalizer.argocd.argoproj.io"],
                    "annotations": {
                        rules.TRACKING: f"{app['metadata']['name']}:argoproj.io/Application:{NS}/{child_name}"
                    },
                },
                "spec": {
                    "project": values["argocd"]["project"],
                    "source": {
                        "repoURL": c["repoURL"],
                        "chart": c["chart"],
                        "targetRevision": str(c["version"]),
                        "helm": {
                            "valuesObject": deep_merge({"global": {"domain": values["domain"]}}, c["values"])
                        },
                    },
                    "destination": {
                        "server": values["argocd"]["destination"]["server"],
                        "namespace": c["namespace"],
                    },
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True},
                        "retry": {"limit": 5},
                        "syncOptions": ["CreateNamespace=true"],
                    },
                },
            }
        )
    return out


def test_output_is_accepted_and_kept_by_argocd(world: World) -> None:
    seed_argocd_users(world)
    world.customer(argocd={"wait_timeout": 60})
    summary, _, _ = world.run(STEPS)
    assert summary.exit_code() == 0, [r.message for r in summary.results]
    assert summary.results[-1].status == "done"

    assert rules.violations(output(world)) == []

    # Argo CD's turn: the root syncs apps/, the sections render their components, and root.yaml
    # from Git is applied over the live root by another writer.
    k = kube(world)
    git = git_tree(world)
    root = yaml.safe_load(git["argocd/root.yaml"])
    synced = rules.sync_like_argocd(k, git, root, NS)
    assert sorted(synced) == ["Application/kuvaq-addons", "Application/kuvaq-aws", "Application/kuvaq-base"]
    components = []
    for path in rules.synced_files(root, git):
        for child in rules.documents(git, "argocd")[path]:
            for component in render_section(child, git):
                assert rules.schema_errors(component) == []
                k.apply(copy.deepcopy(component), rules.ARGOCD_MANAGER)
                components.append(component["metadata"]["name"])
    assert sorted(components) == [
        "kuvaq-aws-load-balancer-controller",
        "kuvaq-cert-manager",
        "kuvaq-external-dns",
        "kuvaq-kube-prometheus-stack",
        "kuvaq-sealed-secrets",
    ]
    k.apply(copy.deepcopy(root), rules.ARGOCD_MANAGER)
    assert rules.violations(output(world)) == []

    world.reset_logs()
    planned, _, _ = world.run(STEPS, dry_run=True)
    assert planned.exit_code() == 0, [(r.step, r.plan and r.plan.changes) for r in planned.results]
    assert world.writes() == 0

    # Without a credential for the kit, verify says which Applications cannot be fetched.
    doc = world.document()
    del doc["kit"]["credentials"]
    world.customer(doc)
    k.delete("v1", "Secret", NS, "creds-kuvaq-kit")
    with pytest.raises(
        PermanentError, match=r"no credentials for https://127\.0\.0\.1:\d+/acme-sre/kit-core\.git"
    ):
        ArgocdInstall().verify(world.context())
    world.customer(argocd={"wait_timeout": 60})

    # Destroy: root first, the controller cascades, then the controller and the CRDs go.
    gone = destroy(world, STEPS)
    assert gone.exit_code() == 0, [r.message for r in gone.results]
    assert (
        k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "applications.argoproj.io") is None
    )
    assert not [key for key in world.kube.stored_keys() if key[0] == "argoproj.io"], (
        "Applications left behind (Terminating)"
    )
    assert k.get("apps/v1", "StatefulSet", NS, "argocd-application-controller") is None
