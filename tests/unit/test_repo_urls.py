"""One place builds every repo URL (config.GitHub), for github.com and GitHub Enterprise Server alike."""

from __future__ import annotations

import pytest
import yaml

from bootstrap import config
from bootstrap.errors import ConfigError
from sandbox import customer as sandbox_customer

EP = sandbox_customer.Endpoints(
    "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", "http://127.0.0.1:4", "kc", ""
)


def github(api_url: str) -> config.GitHub:
    return config.GitHub.model_validate(
        {"api_url": api_url, "token": "env:T", "org": "kuvaq", "infra_repo": "kuvaq/infra"}
    )


@pytest.mark.parametrize(
    ("api_url", "ssh", "https", "dotcom"),
    [
        (
            "https://api.github.com",
            "git@github.com:kuvaq/infra.git",
            "https://github.com/kuvaq/infra.git",
            True,
        ),
        (
            "https://ghe.example.com/api/v3",
            "git@ghe.example.com:kuvaq/infra.git",
            "https://ghe.example.com/kuvaq/infra.git",
            False,
        ),
        (
            "http://127.0.0.1:8123",
            "git@127.0.0.1:kuvaq/infra.git",
            "https://127.0.0.1:8123/kuvaq/infra.git",
            False,
        ),
    ],
)
def test_repo_urls(api_url: str, ssh: str, https: str, dotcom: bool) -> None:
    gh = github(api_url)
    assert gh.ssh_url("kuvaq/infra") == ssh
    assert gh.https_url("kuvaq/infra") == https
    assert gh.is_github_com is dotcom


def test_the_charts_own_alertmanager_secret_name_is_refused() -> None:
    doc = sandbox_customer.document(EP)
    doc["alerting"]["alertmanager"] = {"secret_name": "alertmanager-kube-prometheus-stack-alertmanager"}
    with pytest.raises(ConfigError, match="the name kube-prometheus-stack gives its own Secret"):
        config.parse_text(yaml.safe_dump(doc))
    doc["alerting"]["alertmanager"] = {}
    assert (
        config.parse_text(yaml.safe_dump(doc)).alerting.alertmanager.secret_name
        == "alertmanager-gitops-bootstrap"
    )
