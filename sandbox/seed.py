"""Seeds the emulators with the world the sandbox customer file expects.

Shared by ``bootstrap sandbox up`` and the tests' ``world`` fixture, so the
demo a newcomer runs and the end-to-end tests start from the same state:
tokens with the permissions the steps need, the kit repository with two
release branches, the customer's infra repository, Slack people, an OpsGenie
team (and the same team plus an admin account on JSM Ops), a hand-made OAuth
app for the manual SSO gate, and an Argo CD manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import argocd_manifest, github_seed
from sandbox import customer as sandbox_customer

BOT_SCOPES = (
    "channels:read",
    "channels:manage",
    "channels:join",
    "channels:history",
    "groups:read",
    "groups:write",
    "groups:history",
    "chat:write",
    "users:read",
    "users:read.email",
)
OAUTH_CLIENT_SECRET = "sandbox-oauth-client-secret-0000000000000"


@dataclass(frozen=True)
class Seeds:
    tokens: dict[str, str]
    """Keyword arguments for ``customer.env`` (github_token, slack_token, opsgenie_key)."""
    argocd_manifest: str
    argocd_sha256: str
    extra_env: dict[str, str] = field(default_factory=dict)


def seed_all(github: Any, slack: Any, opsgenie: Any, workdir: Path, jsm: Any = None) -> Seeds:
    owner, name = sandbox_customer.INFRA_REPO.split("/")
    github.add_token(sandbox_customer.GITHUB_TOKEN, "kuvaq-bootstrap", scopes=("repo", "read:org"))
    if (owner, name) not in getattr(github, "repos", {}):
        github.create_repo(owner, name, {"README.md": f"# {name}\n\nInfrastructure of {owner}.\n"})
    kit_owner, kit_name = sandbox_customer.KIT_REPO.split("/")
    if (kit_owner, kit_name) not in getattr(github, "repos", {}):
        github_seed.seed_kit(github)
    client_id = sandbox_customer.document(_NO_ENDPOINTS)["argocd"]["sso"]["client_id"]
    github.add_oauth_app(client_id, OAUTH_CLIENT_SECRET)

    slack.add_token(sandbox_customer.SLACK_TOKEN, BOT_SCOPES)
    for i, uid in enumerate(sandbox_customer.SLACK_USERS):
        slack.add_user(uid, f"sre{i + 1}", f"sre{i + 1}@kuvaq.example")

    opsgenie.add_api_key(sandbox_customer.OPSGENIE_KEY)
    opsgenie.add_team(sandbox_customer.TEAM)
    if jsm is not None:
        jsm.add_user(sandbox_customer.JSM_EMAIL, sandbox_customer.JSM_TOKEN)
        jsm.add_team(sandbox_customer.TEAM)

    url, digest = argocd_manifest.write(workdir / "manifests")
    return Seeds(
        tokens={},
        argocd_manifest=url,
        argocd_sha256=digest,
        extra_env={"GITHUB_OAUTH_CLIENT_SECRET": OAUTH_CLIENT_SECRET},
    )


def customer_names(count: int) -> list[str]:
    """The fleet customers a sandbox seeds besides kuvaq: c001, c002, …"""
    width = max(3, len(str(count)))
    return [f"c{i:0{width}d}" for i in range(1, count + 1)]


def seed_customers(github: Any, names: list[str]) -> None:
    """Each fleet customer's infra repository ``<name>/infra``.

    The rest is shared and seeded once by ``seed_all``: the kit, the tokens, the
    Slack people every customer invites and the OpsGenie team its integration
    belongs to; channels, integrations and Vault paths are derived from the name.
    """
    for name in names:
        if (name, "infra") not in getattr(github, "repos", {}):
            github.create_repo(name, "infra", {"README.md": f"# infra\n\nInfrastructure of {name}.\n"})


_NO_ENDPOINTS = sandbox_customer.Endpoints("", "", "", "", "", "")
