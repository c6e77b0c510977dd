"""The Argo CD rule checker can fail: each rule is shown a broken output and names what is wrong.

No servers: the output is built from the built-in template's shapes by hand, so the
checker itself is held to the documented rules before it judges the project's output.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from bootstrap.clients import argocd
from tests.fixtures import argocd_rules as rules

INFRA = "git@github.com:kuvaq/infra.git"
KIT = "https://github.com/acme-sre/kit-core.git"
SERVER = "https://kubernetes.default.svc"
RETRY = {"automated": {"prune": True, "selfHeal": True}, "retry": {"limit": 5}}


def app(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": rules.API,
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "kuvaq",
            "destination": {"server": SERVER, "namespace": "argocd"},
            "syncPolicy": copy.deepcopy(RETRY),
            **spec,
        },
    }


def section(name: str) -> dict[str, Any]:
    return app(
        f"kuvaq-{name}",
        sources=[
            {
                "repoURL": KIT,
                "targetRevision": "v1.4",
                "path": name,
                "helm": {"valueFiles": [f"$values/argocd/values/{name}.yaml"]},
            },
            {"repoURL": INFRA, "targetRevision": "main", "ref": "values"},
        ],
    )


def secret(name: str, kind: str, url: str) -> dict[str, Any]:
    return argocd.secret(name, "argocd", {"url": argocd.b64(url)}, {argocd.SECRET_TYPE_LABEL: kind})


def good() -> rules.Output:
    root = app("kuvaq-root", source={"repoURL": INFRA, "targetRevision": "main", "path": "argocd/apps"})
    project = {
        "apiVersion": rules.API,
        "kind": "AppProject",
        "metadata": {"name": "kuvaq", "namespace": "argocd"},
        "spec": {"sourceRepos": [INFRA, KIT], "destinations": [{"server": SERVER, "namespace": "*"}]},
    }
    git = {
        "argocd/root.yaml": yaml.safe_dump(root),
        "argocd/project.yaml": yaml.safe_dump(project),
        "argocd/apps/base.yaml": yaml.safe_dump(section("base")),
        "argocd/values/base.yaml": "domain: kuvaq.example.com\n",
        "argocd/README.md": "# not a manifest\n",
    }
    cluster = [
        copy.deepcopy(root),
        secret("repo-kuvaq-infra", "repository", INFRA),
        secret("creds-kuvaq-kit", "repo-creds", KIT),
    ]
    return rules.Output(git, cluster, INFRA, kit_components={"base": ["kube-prometheus-stack"]})


def test_a_good_output_passes() -> None:
    assert rules.violations(good()) == []


def test_root_that_syncs_its_own_directory() -> None:
    out = good()
    root = yaml.safe_load(out.git["argocd/root.yaml"])
    root["spec"]["source"]["path"] = "argocd"
    out.git["argocd/root.yaml"] = yaml.safe_dump(root)
    found = rules.violations(out, [rules.root_does_not_sync_itself])
    assert found == [
        "root-self: the root's source path syncs argocd/root.yaml, its own definition",
        "root-self: argocd/project.yaml (an AppProject bootstrap applies) is also synced by the root",
    ]


def test_recursive_root_reaches_a_subdirectory() -> None:
    root = app("r", source={"repoURL": INFRA, "path": "argocd", "directory": {"recurse": True}})
    files = {"argocd/apps/a.yaml": "", "argocd/x/b.yml": "", "argocd/README.md": "", "other/c.yaml": ""}
    assert rules.synced_files(root, files) == ["argocd/apps/a.yaml", "argocd/x/b.yml"]
    root["spec"]["source"]["directory"]["recurse"] = False
    assert rules.synced_files(root, files) == []


def test_live_root_that_differs_from_git() -> None:
    out = good()
    out.cluster[0]["spec"]["source"]["path"] = "argocd"
    assert rules.violations(out, [rules.cluster_root_equals_git]) == [
        "root-equal: the live kuvaq-root spec differs from argocd/root.yaml"
    ]


def test_repo_without_credentials_and_prefix_templates() -> None:
    out = good()
    out.cluster = [o for o in out.cluster if o["metadata"]["name"] != "creds-kuvaq-kit"]
    assert rules.violations(out, [rules.every_repo_has_credentials]) == [
        f"credentials: {KIT} of Application kuvaq-base (argocd/apps/base.yaml) has none"
    ]
    # A repo-creds template serves every URL it prefixes; a repository Secret only its own URL.
    out.cluster.append(secret("org", "repo-creds", "https://github.com/acme-sre"))
    assert rules.violations(out, [rules.every_repo_has_credentials]) == []
    out.cluster[-1] = secret("other", "repository", "https://github.com/acme-sre/other.git")
    assert rules.violations(out, [rules.every_repo_has_credentials]) != []


def test_missing_namespace_retry_and_project() -> None:
    out = good()
    bad = section("base")
    del bad["spec"]["destination"]["namespace"]
    bad["spec"]["syncPolicy"] = {"automated": {}}  # enabled, with defaults
    bad["spec"]["project"] = "default"
    out.git["argocd/apps/base.yaml"] = yaml.safe_dump(bad)
    found = rules.violations(out, [rules.every_application_has_a_namespace_retry_and_the_project])
    assert found == [
        "namespace: Application kuvaq-base (argocd/apps/base.yaml) has no destination.namespace",
        "retry: Application kuvaq-base (argocd/apps/base.yaml) auto-syncs without syncPolicy.retry",
        "project: Application kuvaq-base (argocd/apps/base.yaml) is in project 'default'",
    ]


def test_values_file_missing_from_git_or_ref_missing() -> None:
    out = good()
    del out.git["argocd/values/base.yaml"]
    assert rules.violations(out, [rules.values_files_exist]) == [
        "values: $values/argocd/values/base.yaml in kuvaq-base (argocd/apps/base.yaml): "
        "argocd/values/base.yaml is not in Git"
    ]
    bad = section("base")
    bad["spec"]["sources"][1]["ref"] = "infra"
    out.git["argocd/apps/base.yaml"] = yaml.safe_dump(bad)
    assert "no source has ref values" in rules.violations(out, [rules.values_files_exist])[0]


def test_two_objects_claiming_one_name() -> None:
    out = good()
    out.kit_components["base"].append("base")  # the kit would render kuvaq-base, as apps/base.yaml does
    assert rules.violations(out, [rules.no_two_objects_claim_one_name]) == [
        "names: Application argocd/kuvaq-base is defined by both argocd/apps/base.yaml and kit base/"
    ]


def test_project_that_does_not_allow_the_kit() -> None:
    out = good()
    project = yaml.safe_load(out.git["argocd/project.yaml"])
    project["spec"]["sourceRepos"] = [INFRA]
    out.git["argocd/project.yaml"] = yaml.safe_dump(project)
    assert rules.violations(out, [rules.projects_allow_what_applications_use]) == [
        f"project: {KIT} of kuvaq-base is not in sourceRepos"
    ]


def test_real_crd_schema_rejects_what_the_api_server_would() -> None:
    bad = section("base")
    bad["spec"]["sources"] = {"repoURL": KIT}  # an object where the schema wants a list
    bad["spec"]["syncPolicy"]["retry"]["limit"] = "five"
    errors = rules.schema_errors(bad)
    assert any("spec.sources" in e and "is not of type 'array'" in e for e in errors), errors
    assert any("spec.syncPolicy.retry.limit" in e for e in errors), errors
    assert rules.schema_errors(section("base")) == []
    project = yaml.safe_load(good().git["argocd/project.yaml"])
    assert rules.schema_errors(project) == []
    project["spec"]["destinations"] = "everywhere"
    assert rules.schema_errors(project) != []
