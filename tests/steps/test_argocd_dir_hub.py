"""argocd-dir in hub mode: ApplicationSets in the hub repo, expanded as Argo CD's cluster generator would."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bootstrap import hub, preflight, session
from bootstrap.secrets import Redactor
from sandbox.httpemu import Fault
from steps.argocd_dir import ArgocdDir, Head, application_problems, writes
from tests.fixtures import appset_eval, argocd_rules
from tests.fixtures.github import committed
from tests.fixtures.world import World
from tests.steps import hub_world
from tests.steps.hub_world import HUB_NAME, HUB_OWNER, PATH

KIT_URL_SUFFIX = "/acme-sre/kit-core.git"
SHARED_V14 = {
    f"{PATH}/README.md",
    f"{PATH}/root.yaml",
    f"{PATH}/appsets/kit-core/base.yaml",
    f"{PATH}/appsets/kit-core/aws.yaml",
    *(
        f"{PATH}/appsets/kit-core/addon-{a}.yaml"
        for a in ("cert-manager", "external-dns", "ingress-nginx", "loki")
    ),
}


def own(cluster: str, project: str) -> set[str]:
    values = {f"{PATH}/clusters/{cluster}/values/{s}.yaml" for s in ("base", "aws", "addons")}
    return values | {f"{PATH}/projects/{project}.yaml"}


def commits(world: World) -> int:
    return len(world.github.repos[(HUB_OWNER, HUB_NAME)].commits)


@pytest.fixture
def hubbed(world: World) -> World:
    hub_world.add_hub_repo(world)
    return world


def test_hub_render_commits_once_shared_sets_render_once_and_rerun_writes_nothing(hubbed: World) -> None:
    world = hubbed
    kuvaq = hub_world.customer_file(world, "kuvaq")
    planned = hub_world.run(world, kuvaq, dry_run=True).results[0]
    assert planned.plan is not None and world.github.log.writes == []
    assert {w.path for w in writes(planned.plan)} == SHARED_V14 | own("kuvaq", "kuvaq")
    before = commits(world)
    done = hub_world.run(world, kuvaq).results[0]
    assert done.status == "done", done.message
    assert commits(world) == before + 1
    assert done.outputs["repo"] == hub_world.HUB_REPO and done.outputs["hub_cluster"] == "kuvaq"
    # The infra repo is not touched in hub mode.
    assert not any(p.startswith("argocd/") for p in world.github.read_tree("kuvaq", "infra", "main"))

    world.reset_logs()
    again = hub_world.run(world, kuvaq).results[0]
    assert again.status == "up-to-date" and world.github.log.writes == []

    # A second customer with the same kit adds only its own files: the shared sets are in place.
    zenta = hub_world.customer_file(world, "zenta", kit={"addons": ["loki"]})
    plan = hub_world.run(world, zenta, dry_run=True).results[0].plan
    assert plan is not None
    assert {w.path for w in writes(plan)} == own("zenta", "zenta")
    assert hub_world.run(world, zenta).results[0].status == "done"
    files = hub_world.hub_files(world)
    assert set(files) == SHARED_V14 | own("kuvaq", "kuvaq") | own("zenta", "zenta")


def test_every_rendered_object_passes_the_real_crd_schemas_and_argo_rules(hubbed: World) -> None:
    world = hubbed
    path = hub_world.customer_file(world, "kuvaq", kit={"values": {"ingress": {"class": "nginx"}}})
    assert hub_world.run(world, path).results[0].status == "done"
    files = hub_world.hub_files(world)
    kinds: dict[str, int] = {}
    for name, text in files.items():
        if not name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind"):
                kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
                assert argocd_rules.schema_errors(doc) == [], name
                if doc["kind"] == "ApplicationSet":
                    spec = doc["spec"]
                    assert spec["goTemplate"] is True and spec["goTemplateOptions"] == ["missingkey=error"]
                    assert spec["template"]["spec"]["syncPolicy"]["retry"]["limit"] == 5
    assert kinds == {"Application": 1, "ApplicationSet": 6, "AppProject": 1}
    root = yaml.safe_load(files[f"{PATH}/root.yaml"])
    assert application_problems(root) == []
    synced = argocd_rules.synced_files(root, files)
    assert f"{PATH}/root.yaml" not in synced  # the root never manages itself (argoproj/argo-cd#8846)
    assert not [p for p in synced if "/clusters/" in p]  # values are read through $values, not applied
    assert f"{PATH}/projects/kuvaq.yaml" in synced and f"{PATH}/appsets/kit-core/base.yaml" in synced
    # Slack per customer from the hub: the project subscribes all its Applications to the customer's channel.
    project = yaml.safe_load(files[f"{PATH}/projects/kuvaq.yaml"])
    assert project["metadata"]["annotations"] == {
        "notifications.argoproj.io/subscribe.on-sync-failed.slack": "alerts-kuvaq",
        "notifications.argoproj.io/subscribe.on-health-degraded.slack": "alerts-kuvaq",
    }
    values = yaml.safe_load(files[f"{PATH}/clusters/kuvaq/values/addons.yaml"])
    assert "appEnabled" not in values  # addons are switched by labels only
    assert values["argocd"] == {"namespace": "argocd", "project": "kuvaq"}
    assert values["ingress"] == {"class": "nginx"}
    base = yaml.safe_load(files[f"{PATH}/clusters/kuvaq/values/base.yaml"])
    spec = base["components"]["kube-prometheus-stack"]["values"]["alertmanager"]["alertmanagerSpec"]
    assert spec == {"useExistingSecret": True, "configSecret": "alertmanager-gitops-bootstrap"}


def _three_clusters(world: World) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three customers on one hub: kuvaq (aws, v1.4), zenta (gcp, v1.5, loki), omori (aws, v1.5, none)."""
    paths = {
        "kuvaq": hub_world.customer_file(world, "kuvaq"),
        "zenta": hub_world.customer_file(
            world, "zenta", kit={"cloud": "gcp", "version": "v1.5", "addons": ["loki"]}
        ),
        "omori": hub_world.customer_file(world, "omori", kit={"version": "v1.5", "addons": []}),
    }
    secrets = []
    for i, path in enumerate(paths.values()):
        assert hub_world.run(world, path).results[0].status == "done"
        secrets.append(
            hub_world.cluster_secret(hub_world.config(world, path), f"https://10.0.0.{i + 1}:6443")
        )
    return hub_world.appsets(hub_world.hub_files(world)), secrets


def test_each_cluster_gets_exactly_its_applications_at_its_revision(hubbed: World) -> None:
    sets, secrets = _three_clusters(hubbed)
    # v1.5 brought velero: its ApplicationSet was added once, by the first v1.5 customer.
    assert sorted(s["metadata"]["name"] for s in sets) == [
        "kit-core-addon-cert-manager",
        "kit-core-addon-external-dns",
        "kit-core-addon-ingress-nginx",
        "kit-core-addon-loki",
        "kit-core-addon-velero",
        "kit-core-aws",
        "kit-core-base",
        "kit-core-gcp",
    ]
    apps = appset_eval.applications(sets, secrets)
    assert {c: sorted(a) for c, a in apps.items()} == {
        "kuvaq": ["kuvaq-addon-cert-manager", "kuvaq-addon-external-dns", "kuvaq-aws", "kuvaq-base"],
        "zenta": ["zenta-addon-loki", "zenta-base", "zenta-gcp"],
        "omori": ["omori-aws", "omori-base"],
    }
    revisions = {"kuvaq": "v1.4", "zenta": "v1.5", "omori": "v1.5"}
    servers = {
        "kuvaq": "https://10.0.0.1:6443",
        "zenta": "https://10.0.0.2:6443",
        "omori": "https://10.0.0.3:6443",
    }
    for cluster, mine in apps.items():
        for name, app in mine.items():
            assert argocd_rules.schema_errors(app) == [], name
            assert application_problems(app) == [], name
            kit, values = app["spec"]["sources"]
            section = "addons" if "-addon-" in name else name.removeprefix(f"{cluster}-")
            assert kit["repoURL"].endswith(KIT_URL_SUFFIX) and kit["path"] == section
            assert kit["targetRevision"] == revisions[cluster]
            assert kit["helm"]["valueFiles"] == [f"$values/{PATH}/clusters/{cluster}/values/{section}.yaml"]
            params = {p["name"]: p["value"] for p in kit["helm"]["parameters"]}
            assert params["argocd.destination.server"] == servers[cluster]
            assert params["argocd.project"] == cluster
            if section == "addons":
                addon = name.split("-addon-", 1)[1]
                assert params[f"appEnabled.{addon}"] == "true"
            assert values["ref"] == "values" and values["repoURL"].endswith(f"{HUB_OWNER}/{HUB_NAME}.git")
            assert app["spec"]["project"] == cluster
            assert app["metadata"]["namespace"] == "argocd"
            # Application objects live in the hub; the components reach the cluster via the parameter.
            assert app["spec"]["destination"] == {
                "server": "https://kubernetes.default.svc",
                "namespace": "argocd",
            }
    # every values file an Application names exists in the hub repo
    files = hub_world.hub_files(hubbed)
    for mine in apps.values():
        for app in mine.values():
            ref = app["spec"]["sources"][0]["helm"]["valueFiles"][0].removeprefix("$values/")
            assert ref in files


def test_flipping_one_addon_label_changes_only_that_clusters_set(hubbed: World) -> None:
    sets, secrets = _three_clusters(hubbed)
    before = appset_eval.applications(sets, secrets)
    git_before = hub_world.hub_files(hubbed)
    label = hub.addon_label("acme-sre/kit-core", "velero")
    assert secrets[2]["metadata"]["labels"][label] == "false"
    secrets[2]["metadata"]["labels"][label] = "true"
    after = appset_eval.applications(sets, secrets)
    assert after["kuvaq"] == before["kuvaq"] and after["zenta"] == before["zenta"]
    assert set(after["omori"]) - set(before["omori"]) == {"omori-addon-velero"}
    assert set(before["omori"]) <= set(after["omori"])
    assert hub_world.hub_files(hubbed) == git_before  # nothing in Git changes to enable an addon
    # Upgrading a cluster's kit = changing its version label: only its revisions move.
    secrets[0]["metadata"]["labels"][hub.KIT_VERSION] = "v1.5"
    upgraded = appset_eval.applications(sets, secrets)
    assert {a["spec"]["sources"][0]["targetRevision"] for a in upgraded["kuvaq"].values()} == {"v1.5"}
    assert upgraded["zenta"] == before["zenta"]


def test_a_cluster_secret_without_kit_version_is_an_error_not_a_broken_application(hubbed: World) -> None:
    sets, secrets = _three_clusters(hubbed)
    del secrets[1]["metadata"]["labels"][hub.KIT_VERSION]
    base = next(s for s in sets if s["metadata"]["name"] == "kit-core-base")
    result = appset_eval.expand(base, secrets)
    assert "zenta" in result.errors and "no label bootstrap.gitops.dev/kit-version" in result.errors["zenta"]
    assert "zenta" not in result.applications  # the controller creates nothing for it
    assert set(result.applications) == {"kuvaq", "omori"}  # the others are unaffected
    with pytest.raises(
        appset_eval.TemplateError, match=r"for cluster zenta: .*no label bootstrap\.gitops\.dev/kit-version"
    ):
        appset_eval.applications(sets, secrets)


def test_destroy_removes_only_the_customers_own_files(hubbed: World) -> None:
    world = hubbed
    kuvaq, zenta = hub_world.customer_file(world, "kuvaq"), hub_world.customer_file(world, "zenta")
    for path in (kuvaq, zenta):
        assert hub_world.run(world, path).results[0].status == "done"
    planned = hub_world.run(world, kuvaq, destroy=True, dry_run=True).results[0]
    assert planned.plan is not None
    assert {w.path for w in writes(planned.plan)} == own("kuvaq", "kuvaq")
    hub_world.run(world, kuvaq, destroy=True)
    assert set(hub_world.hub_files(world)) == SHARED_V14 | own("zenta", "zenta")


def test_preflight_needs_write_on_the_hub_repo_not_the_infra_repo(hubbed: World) -> None:
    path = hub_world.customer_file(hubbed, "kuvaq")
    cfg = hub_world.config(hubbed, path)
    needs = ArgocdDir().checks(cfg)
    assert [(n.service, n.target, n.permissions) for n in needs if n.service == "github"] == [
        ("github", hub_world.HUB_REPO, ("contents:write",))
    ]
    # A token that may only read: the preflight refuses before anything is written, naming the hub repo.
    hubbed.github.add_token("ghp_hub_reader", "kuvaq-bootstrap", scopes=("repo",), role="read")
    hubbed.env["GITHUB_TOKEN"] = "ghp_hub_reader"
    sess = session.open_session(path, redactor=Redactor(), environ=hubbed.env)
    report = preflight.run(sess.context, [ArgocdDir()])
    assert [(r.check, r.steps) for r in report.problems] == [
        (f"github Contents: write on {hub_world.HUB_REPO}", ("argocd-dir",))
    ]
    assert hubbed.github.log.writes == []


def test_a_failed_branch_update_is_retried_and_converges_to_one_render(hubbed: World) -> None:
    world = hubbed
    path = hub_world.customer_file(world, "kuvaq")
    world.github.faults.add(
        Fault("status", method="PATCH", path=r"/git/refs/heads/main$", times=1, status=502)
    )
    done = hub_world.run(world, path).results[0]
    assert done.status == "done", done.message
    assert set(hub_world.hub_files(world)) == SHARED_V14 | own("kuvaq", "kuvaq")
    world.reset_logs()
    assert hub_world.run(world, path).results[0].status == "up-to-date"
    assert world.github.log.writes == []


def test_a_crash_after_the_commit_before_the_checkpoint_resumes_without_a_second_commit(
    hubbed: World,
) -> None:
    world = hubbed
    path = hub_world.customer_file(world, "kuvaq")
    assert hub_world.run(world, path).results[0].status == "done"
    state = path.parent / ".bootstrap" / "state.json"
    state.unlink()  # the commit landed, the checkpoint never did
    world.reset_logs()
    resumed = hub_world.run(world, path).results[0]
    assert resumed.status == "up-to-date", resumed.message
    assert world.github.log.writes == []  # adopted by observing the hub repo, nothing rewritten
    assert set(resumed.outputs["files"]) == SHARED_V14 | own("kuvaq", "kuvaq")


@pytest.mark.parametrize("start", ["first-customer", "second-customer", "values-changed"])
def test_apply_commits_exactly_the_planned_files_to_the_hub(hubbed: World, start: str) -> None:
    """The hub's shared branch gets one commit on the planned head holding exactly the planned files."""
    world = hubbed
    path = hub_world.customer_file(world, "kuvaq")
    if start != "first-customer":
        assert hub_world.run(world, path).results[0].status == "done"
    if start == "second-customer":
        path = hub_world.customer_file(world, "zenta", kit={"addons": ["loki"]})
    elif start == "values-changed":
        path = hub_world.customer_file(world, "kuvaq", kit={"values": {"ingress": {"class": "nginx"}}})
    ctx = world.context(path)
    step = ArgocdDir()
    plan = step.plan(ctx)
    assert not plan.empty
    world.reset_logs()
    step.apply(ctx, plan)
    made = committed(world.github, hub_world.HUB_REPO, plan.observed_as(Head).commit)
    assert made == {w.path: w.content for w in writes(plan)}
    assert step.plan(ctx).empty
