"""argocd-dir against the GitHub emulator, through PyGithub over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bootstrap.errors import ConfigError, DriftError, RetryableError
from bootstrap.reporting import StepResult, Summary
from bootstrap.step import Action, Plan
from sandbox import customer as sandbox_customer
from sandbox.httpemu import Fault
from steps.argocd_dir import ArgocdDir, Head, WriteFile, application_problems, writes
from tests.fixtures import argocd_rules
from tests.fixtures.github import GitHubOpenAPI, committed
from tests.fixtures.world import World

OWNER, REPO = sandbox_customer.INFRA_REPO.split("/")
KIT_OWNER, KIT = sandbox_customer.KIT_REPO.split("/")
FILES = {
    "argocd/README.md",
    "argocd/root.yaml",
    "argocd/project.yaml",
    "argocd/apps/base.yaml",
    "argocd/apps/aws.yaml",
    "argocd/apps/addons.yaml",
    "argocd/values/base.yaml",
    "argocd/values/aws.yaml",
    "argocd/values/addons.yaml",
}
IN_CLUSTER = "https://kubernetes.default.svc"


def result(world: World, dry_run: bool = False, force: bool = False) -> tuple[StepResult, Summary]:
    summary, _, _ = world.run(steps=(ArgocdDir,), dry_run=dry_run, force=force)
    return summary.results[0], summary


def plan_of(world: World) -> Plan:
    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None, planned.message
    return planned.plan


def argocd_files(world: World) -> dict[str, str]:
    return {p: t for p, t in world.github.read_tree(OWNER, REPO, "main").items() if p.startswith("argocd/")}


def commits(world: World) -> int:
    return int(world.github.log.count("POST", r"/git/commits$"))


def test_first_run_commits_once_then_second_run_writes_nothing(world: World) -> None:
    assert result(world, dry_run=True)[1].exit_code() == 2
    planned = plan_of(world)
    assert {w.path for w in writes(planned)} == FILES
    assert {c.action for c in planned.changes} == {Action.CREATE}
    assert '+  name: "kuvaq-root"' in next(c.diff for c in planned.changes if "root" in c.target)
    assert world.github.log.writes == []

    done, _ = result(world)
    assert done.status == "done", done.message
    assert commits(world) == 1
    head = world.github.repos[(OWNER, REPO)].refs["heads/main"]
    message = world.github.repos[(OWNER, REPO)].commits[head].message
    assert message == "bootstrap: argocd/ for kuvaq (kit v1.4)"
    assert set(argocd_files(world)) == FILES
    assert world.github.read_tree(OWNER, REPO, "main")["README.md"].startswith("# infra")
    out = done.outputs
    assert {
        k: out[k] for k in ("repo", "branch", "path", "commit", "root_app_path", "kit_repo", "kit_version")
    } == {
        "repo": "kuvaq/infra",
        "branch": "main",
        "path": "argocd",
        "commit": head,
        "root_app_path": "argocd/root.yaml",
        "kit_repo": "acme-sre/kit-core",
        "kit_version": "v1.4",
    }
    assert set(out["files"]) == FILES

    again = plan_of(world)
    assert again.empty
    world.reset_logs()
    rerun, _ = result(world)
    assert rerun.status == "up-to-date"
    assert world.github.log.writes == []
    assert world.state()["steps"]["argocd-dir"]["outputs"]["commit"] == head


def test_rendered_files_parse_and_applications_have_what_argo_needs(world: World) -> None:
    world.customer(kit={"values": {"ingress": {"class": "nginx"}, "note": "a: b # not a comment"}})
    assert result(world)[0].status == "done"
    files = argocd_files(world)
    apps: dict[str, dict[str, Any]] = {}
    for path, text in files.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                assert argocd_rules.schema_errors(doc) == [], path  # the real CRDs accept it
                if isinstance(doc, dict) and doc.get("kind") == "Application":
                    assert application_problems(doc) == [], (path, doc)
                    apps[doc["metadata"]["name"]] = doc
    assert set(apps) == {"kuvaq-root", "kuvaq-base", "kuvaq-aws", "kuvaq-addons"}
    root = apps["kuvaq-root"]
    assert root["metadata"]["namespace"] == "argocd"
    assert root["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert root["spec"]["project"] == "kuvaq"
    assert root["spec"]["source"]["path"] == "argocd/apps"
    assert root["spec"]["source"]["targetRevision"] == "main"
    assert root["spec"]["destination"] == {"server": IN_CLUSTER, "namespace": "argocd"}
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    infra_url = root["spec"]["source"]["repoURL"]
    assert infra_url == "git@127.0.0.1:kuvaq/infra.git"
    for section in ("base", "aws", "addons"):
        app = apps[f"kuvaq-{section}"]["spec"]
        kit, values = app["sources"]
        assert kit["repoURL"].endswith("/acme-sre/kit-core.git") and kit["targetRevision"] == "v1.4"
        assert kit["path"] == section
        assert kit["helm"]["valueFiles"] == [f"$values/argocd/values/{section}.yaml"]
        assert values == {"repoURL": infra_url, "targetRevision": "main", "ref": "values"}
        assert app["project"] == "kuvaq" and app["destination"]["namespace"] == "argocd"
        assert app["syncPolicy"]["retry"]["limit"] == 5
    common = {
        "customer": "kuvaq",
        "domain": "kuvaq.example.com",
        "githubOrg": "kuvaq",
        "cloud": "aws",
        "argocd": {"namespace": "argocd", "project": "kuvaq", "destination": {"server": IN_CLUSTER}},
        "ingress": {"class": "nginx"},
        "note": "a: b # not a comment",
    }
    assert yaml.safe_load(files["argocd/values/aws.yaml"]) == common
    assert yaml.safe_load(files["argocd/values/addons.yaml"]) == {
        **common,
        "appEnabled": {"cert-manager": True, "external-dns": True},
    }
    base = yaml.safe_load(files["argocd/values/base.yaml"])
    assert base["components"]["kube-prometheus-stack"] == {
        "namespace": "monitoring",
        "values": {
            "alertmanager": {
                "alertmanagerSpec": {
                    "useExistingSecret": True,
                    "configSecret": "alertmanager-gitops-bootstrap",
                }
            }
        },
    }
    project = yaml.safe_load(files["argocd/project.yaml"])
    assert project["kind"] == "AppProject" and project["metadata"]["name"] == "kuvaq"
    assert project["spec"]["sourceRepos"][:2] == [infra_url, kit["repoURL"]]
    assert "https://charts.jetstack.io" in project["spec"]["sourceRepos"]
    assert project["spec"]["destinations"] == [{"server": IN_CLUSTER, "namespace": "*"}]
    readme = files["argocd/README.md"]
    assert "gitops-bootstrap" in readme
    assert all(f"`{p.removeprefix('argocd/')}`" in readme for p in FILES)


def test_kit_upgrade_is_one_commit_and_plan_names_the_applications_that_move(world: World) -> None:
    assert result(world)[0].status == "done"
    world.customer(kit={"version": "v1.5"})
    planned = plan_of(world)
    moved = {c.payload_as(WriteFile).path: c.summary for c in planned.changes if "revision" in c.summary}
    assert moved == {
        f"argocd/apps/{s}.yaml": f"update; revision kuvaq-{s}: v1.4 -> v1.5"
        for s in ("base", "aws", "addons")
    }
    world.reset_logs()
    assert result(world)[0].status == "done"
    assert commits(world) == 1
    assert plan_of(world).empty


def test_root_that_syncs_its_own_directory_is_refused(world: World) -> None:
    """argoproj/argo-cd#8846: a root whose path holds root.yaml manages, and may prune, itself."""
    world.github.commit_files(
        KIT_OWNER,
        KIT,
        "v1.4",
        {
            "templates/customer/argocd/root.yaml.j2": (
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
                "metadata: {name: x-root, namespace: argocd}\n"
                "spec:\n  project: default\n"
                "  source: {repoURL: 'git@github.com:a/b.git', targetRevision: main, path: argocd}\n"
                "  destination: {server: 'https://kubernetes.default.svc', namespace: argocd}\n"
            ),
        },
        "kit: a root that syncs itself",
    )
    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "syncs the directory that holds argocd/root.yaml" in (failed.message or "")
    assert commits(world) == 0


def test_kit_template_on_the_kit_branch_wins(world: World) -> None:
    world.github.commit_files(
        KIT_OWNER,
        KIT,
        "v1.4",
        {
            "templates/customer/argocd/root.yaml.j2": (
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\n"
                "metadata: {name: {{ (customer.name ~ '-root') | yaml }}, namespace: argocd}\n"
                "spec:\n  project: default\n"
                "  source: {repoURL: {{ kit.repo_url | yaml }}, targetRevision: {{ kit.version | yaml }}, "
                "path: apps}\n"
                "  destination: {server: 'https://kubernetes.default.svc', namespace: argocd}\n"
            ),
            "templates/customer/argocd/values.yaml.j2": "{{ values.base | yaml_block }}\nfromKit: true\n",
        },
        "kit: customer template",
    )
    done, _ = result(world)
    assert done.status == "done", done.message
    files = argocd_files(world)
    assert set(files) == {"argocd/root.yaml", "argocd/values.yaml"}
    assert yaml.safe_load(files["argocd/values.yaml"])["fromKit"] is True
    assert yaml.safe_load(files["argocd/root.yaml"])["spec"]["source"]["path"] == "apps"


def test_kit_template_that_breaks_yaml_commits_nothing(world: World) -> None:
    world.github.commit_files(
        KIT_OWNER, KIT, "v1.4", {"templates/customer/argocd/root.yaml.j2": "a: [unclosed\n"}, "broken"
    )
    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "root.yaml does not render to valid YAML" in (failed.message or "")
    assert commits(world) == 0


def line_of(world: World, text: str) -> int:
    """The line of customer.yaml that starts with ``text`` (errors name it)."""
    assert world.path is not None
    lines = world.path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def test_unknown_addon_names_what_the_kit_version_has(world: World) -> None:
    world.customer(kit={"addons": ["cert-manager", "externl-dns"]})
    with pytest.raises(ConfigError) as exc:
        ArgocdDir().plan(world.session().context)
    assert str(exc.value) == (
        f"kit.addons[1]: unknown addon 'externl-dns' (line {line_of(world, '  - externl-dns')}); "
        "kit v1.4 has: cert-manager, external-dns, ingress-nginx, loki"
    )
    world.customer(kit={"version": "v1.5", "addons": ["velero"]})
    assert result(world)[0].status == "done"
    assert yaml.safe_load(argocd_files(world)["argocd/values/addons.yaml"])["appEnabled"] == {"velero": True}


def test_unknown_kit_version_lists_release_branches(world: World) -> None:
    world.customer(kit={"version": "v9.9"})
    failed, summary = result(world)
    assert summary.exit_code() == 4  # invalid input, found while observing the kit
    assert (
        failed.message == "kit.version: acme-sre/kit-core has no branch 'v9.9'; release branches: v1.4, v1.5 "
        f"(line {line_of(world, '  version: v9.9')})"
    )
    with pytest.raises(ConfigError):
        ArgocdDir().plan(world.session().context)
    assert world.github.log.writes == []


def test_push_between_plan_and_apply_is_retried_never_overwritten(world: World) -> None:
    ctx = world.session().context
    step = ArgocdDir()
    plan = step.plan(ctx)
    world.github.commit_files(OWNER, REPO, "main", {"ops/notes.md": "a person's commit\n"}, "notes")
    with pytest.raises(RetryableError):
        step.apply(ctx, plan)
    assert world.github.read_tree(OWNER, REPO, "main")["ops/notes.md"] == "a person's commit\n"
    assert argocd_files(world) == {}

    done, _ = result(world)
    assert done.status == "done", done.message
    tree = world.github.read_tree(OWNER, REPO, "main")
    assert tree["ops/notes.md"] == "a person's commit\n" and set(tree) >= FILES


def test_hand_edit_is_drift_and_only_force_overwrites(world: World) -> None:
    assert result(world)[0].status == "done"
    edited = argocd_files(world)["argocd/values/base.yaml"] + "handTuned: true\n"
    world.github.commit_files(OWNER, REPO, "main", {"argocd/values/base.yaml": edited}, "tweak by hand")

    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.UPDATE and change.payload_as(WriteFile).path == "argocd/values/base.yaml"
    assert "edited by hand" in change.summary
    assert "-handTuned: true" in change.diff

    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "argocd/values/base.yaml" in (failed.message or "") and "--force" in (failed.message or "")
    assert argocd_files(world)["argocd/values/base.yaml"] == edited
    with pytest.raises(DriftError):
        ArgocdDir().apply(world.session().context, planned)

    # A config change does not launder the hand edit: the file still differs from our last commit.
    world.customer(kit={"values": {"tuned": False}})
    replanned = plan_of(world)
    assert [w.path for w in writes(replanned) if w.by_hand] == ["argocd/values/base.yaml"]

    forced, _ = result(world, force=True)
    assert forced.status == "done", forced.message
    assert "handTuned: true" not in argocd_files(world)["argocd/values/base.yaml"]
    assert plan_of(world).empty


def test_without_a_record_a_differing_file_is_an_update_not_drift(world: World) -> None:
    world.github.commit_files(
        OWNER, REPO, "main", {"argocd/values/base.yaml": "old: true\n"}, "earlier setup"
    )
    planned = plan_of(world)
    values = next(c for c in planned.changes if c.payload_as(WriteFile).path == "argocd/values/base.yaml")
    assert values.action == Action.UPDATE and not values.payload_as(WriteFile).by_hand
    assert "edited by hand" not in values.summary
    assert result(world)[0].status == "done"


def test_config_change_is_one_commit_and_dropped_files_are_removed(world: World) -> None:
    world.github.commit_files(OWNER, REPO, "main", {"argocd/extra.txt": "mine\n"}, "unmanaged file")
    assert result(world)[0].status == "done"
    world.customer(kit={"cloud": "gcp"})
    planned = plan_of(world)
    actions = {c.payload_as(WriteFile).path: c.action for c in planned.changes}
    assert actions == {
        "argocd/apps/aws.yaml": Action.DELETE,
        "argocd/values/aws.yaml": Action.DELETE,
        "argocd/apps/gcp.yaml": Action.CREATE,
        "argocd/values/gcp.yaml": Action.CREATE,
        "argocd/values/base.yaml": Action.UPDATE,
        "argocd/values/addons.yaml": Action.UPDATE,
        "argocd/project.yaml": Action.UPDATE,
        "argocd/README.md": Action.UPDATE,
    }
    assert any("argocd/extra.txt is not managed" in n for n in planned.notes)
    world.reset_logs()
    assert result(world)[0].status == "done"
    assert commits(world) == 1
    files = argocd_files(world)
    assert "argocd/apps/aws.yaml" not in files and files["argocd/extra.txt"] == "mine\n"


def test_destroy_removes_managed_files_in_one_commit(world: World) -> None:
    world.github.commit_files(OWNER, REPO, "main", {"argocd/extra.txt": "mine\n"}, "unmanaged file")
    assert result(world)[0].status == "done"
    sess = world.session()
    sess.context.outputs = {"argocd-dir": world.state()["steps"]["argocd-dir"]["outputs"]}
    step = ArgocdDir()
    plan = step.plan_destroy(sess.context)
    assert {w.path for w in writes(plan)} == FILES
    world.reset_logs()
    step.destroy(sess.context, plan)
    assert commits(world) == 1
    assert argocd_files(world) == {"argocd/extra.txt": "mine\n"}
    assert step.plan_destroy(sess.context).empty


def test_token_without_contents_write_fails_naming_the_permission(world: World) -> None:
    world.github.add_token(
        "github_pat_readonly", "viewer", permissions={"contents": "read", "metadata": "read"}
    )
    world.env["GITHUB_TOKEN"] = "github_pat_readonly"
    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "Contents: write" in (failed.message or "")
    assert "github_pat_readonly" not in (failed.message or "")


def test_rate_limit_is_waited_out(world: World) -> None:
    world.github.faults.add(Fault("ratelimit", method="GET", path=r"/git/trees/", times=1, retry_after=0))
    done, _ = result(world)
    assert done.status == "done", done.message


def test_emulator_answers_match_githubs_openapi(world: World, github_openapi: GitHubOpenAPI) -> None:
    assert result(world)[0].status == "done"
    for ex in world.github.exchanges:
        if ex.template is not None:
            github_openapi.validate_exchange(ex)
    assert {(e.method, e.template) for e in world.github.exchanges} >= {
        ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}"),
        ("POST", "/repos/{owner}/{repo}/git/trees"),
        ("POST", "/repos/{owner}/{repo}/git/commits"),
        ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}"),
    }


def test_empty_infra_repository_gets_its_first_commit_through_the_contents_api(world: World) -> None:
    """On an empty repository the Git Data API answers 409 "Git Repository is empty." (REFERENCE §11)."""
    del world.github.repos[(OWNER.lower(), REPO.lower())]
    world.github.create_repo(OWNER, REPO, empty=True)
    planned = plan_of(world)
    assert {w.path for w in writes(planned)} == FILES and planned.notes  # "the commit creates it"

    done, _ = result(world)
    assert done.status == "done", done.message
    assert set(argocd_files(world)) == FILES
    assert world.github.log.count("POST", r"/git/trees$") >= 1  # tried Git Data first: 409
    assert world.github.log.count("PUT", r"/contents/") == 1  # one file through the Contents API
    repo = world.github.repos[(OWNER.lower(), REPO.lower())]
    assert len(repo.history(repo.refs["heads/main"])) == 2  # that file, then the rest in one commit

    world.reset_logs()
    again, _ = result(world)
    assert again.status == "up-to-date" and world.github.log.writes == []


def test_archived_infra_repository_fails_once_saying_so(world: World) -> None:
    world.github.archive_repo(OWNER, REPO)
    failed, summary = result(world)
    assert summary.exit_code() == 1 and failed.status == "failed"
    assert "archived" in (failed.message or "") and "unarchive it" in (failed.message or "")
    assert world.github.log.writes == []


@pytest.mark.parametrize(
    "start", ["fresh", "hand-edit-forced", "addon-removed", "values-only", "cloud-moved"]
)
def test_apply_commits_exactly_the_planned_files(world: World, start: str) -> None:
    """Whatever the starting state, apply makes one commit on the planned head, and it differs from
    that head in exactly the planned files, with exactly the planned contents (deletions included)."""
    if start != "fresh":
        assert result(world)[0].status == "done"
    if start == "hand-edit-forced":
        edited = argocd_files(world)["argocd/values/base.yaml"] + "handTuned: true\n"
        world.github.commit_files(OWNER, REPO, "main", {"argocd/values/base.yaml": edited}, "by hand")
    elif start == "addon-removed":
        world.customer(kit={"addons": ["cert-manager"]})
    elif start == "values-only":
        world.customer(kit={"values": {"ingress": {"class": "nginx"}}})
    elif start == "cloud-moved":
        world.customer(kit={"cloud": "gcp"})  # aws files removed, gcp files created
    ctx = world.context()
    ctx.force = start == "hand-edit-forced"
    step = ArgocdDir()
    plan = step.plan(ctx)
    assert not plan.empty
    assert any(w.by_hand for w in writes(plan)) == (start == "hand-edit-forced")
    world.reset_logs()
    step.apply(ctx, plan)
    made = committed(world.github, sandbox_customer.INFRA_REPO, plan.observed_as(Head).commit)
    assert made == {w.path: w.content for w in writes(plan)}
    assert step.plan(ctx).empty
