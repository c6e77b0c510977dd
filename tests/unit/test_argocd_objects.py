"""Argo CD objects as bootstrap writes them: credentials matching, notifications, Ansible-safe strings."""

from __future__ import annotations

import yaml

from bootstrap.clients import argocd


def secret(name: str, kind: str, url: str) -> dict[str, object]:
    return argocd.secret(name, "argocd", {"url": argocd.b64(url)}, {argocd.SECRET_TYPE_LABEL: kind})


def test_repository_by_url_repo_creds_by_longest_prefix() -> None:
    secrets = [
        secret("org", "repo-creds", "https://github.com/acme-sre"),
        secret("kit", "repo-creds", "https://github.com/acme-sre/kit-core.git"),
        secret("infra", "repository", "git@github.com:kuvaq/infra.git"),
    ]
    assert argocd.credential_for("https://github.com/acme-sre/kit-core.git", secrets) == "kit"
    assert argocd.credential_for("https://github.com/acme-sre/other.git", secrets) == "org"
    assert argocd.credential_for("git@github.com:kuvaq/infra", secrets) == "infra"  # .git does not matter
    assert argocd.credential_for("git@github.com:kuvaq/other.git", secrets) is None


def test_chart_sources_need_no_git_credentials() -> None:
    app = {
        "spec": {
            "sources": [{"repoURL": "https://charts.jetstack.io", "chart": "cert-manager"}, {"repoURL": "x"}]
        }
    }
    assert argocd.git_sources(app) == ["x"]


def test_notifications_subscribe_the_channel_to_failures_only() -> None:
    data = argocd.notifications("alerts-kuvaq", None)
    assert yaml.safe_load(data["subscriptions"]) == [
        {"recipients": ["slack:alerts-kuvaq"], "triggers": ["on-sync-failed", "on-health-degraded"]}
    ]
    assert yaml.safe_load(data["service.slack"]) == {"token": "$slack-token"}
    for trigger in ("on-sync-failed", "on-health-degraded"):
        [rule] = yaml.safe_load(data[f"trigger.{trigger}"])
        assert f"template.{rule['send'][0]}" in data


def test_strings_with_templates_reach_ansible_as_literals() -> None:
    obj = {"a": ["{{.app.metadata.name}}", "plain"], "b": {"c": "x {% if %}"}}
    assert argocd.literal_tree(obj) == {
        "a": ["{% raw %}{{.app.metadata.name}}{% endraw %}", "plain"],
        "b": {"c": "{% raw %}x {% if %}{% endraw %}"},
    }
