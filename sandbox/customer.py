"""The customer file for a set of local backends.

One function builds it for both the sandbox (``bootstrap sandbox up``) and the
tests, so that what the tests prove is what a newcomer runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sandbox import argocd_manifest
from sandbox import hub as sandbox_hub

GITHUB_TOKEN = "ghp_sandboxAdminToken0000000000000000000"
SLACK_TOKEN = "xoxb-sandbox-0000000000-bot"
OPSGENIE_KEY = "og-sandbox-config-key-00000000"
JSM_EMAIL = "sre-bot@kuvaq.example"
JSM_TOKEN = "ATATT3xSandboxJsmApiToken000000000000"
KIT_REPO = "acme-sre/kit-core"
INFRA_REPO = "kuvaq/infra"
TEAM = "kuvaq-sre"
SLACK_USERS = ("U0000SRE1", "U0000SRE2")
KIT_TOKEN = "github_pat_sandboxKitReadOnly000000000000"
GIT_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
"""The SSH host key of the GitHub emulator's host as Argo CD should trust it.

The emulator is, to the tool, a GitHub Enterprise Server (its API is not api.github.com),
so the customer file must carry the host's key (github.ssh_known_hosts), as on a real GHES.
"""


@dataclass(frozen=True)
class Endpoints:
    github: str
    slack: str
    opsgenie: str
    vault: str
    kubeconfig: str
    argocd_manifest: str
    """URL of the Argo CD install manifest the sandbox serves (file:// or http://)."""
    jsm: str = ""
    """The JSM Ops emulator (it serves both api.atlassian.com and the site's tenant_info)."""
    hub_kubeconfig: str = ""
    """The hub's kubeconfig (``sandbox up --hub``): the customer file then names the hub (hub mode)."""


def env(
    vault_token: str,
    github_token: str = GITHUB_TOKEN,
    slack_token: str = SLACK_TOKEN,
    opsgenie_key: str = OPSGENIE_KEY,
    kit_token: str = KIT_TOKEN,
    jsm_token: str = JSM_TOKEN,
) -> dict[str, str]:
    """The environment the customer file's ``env:`` references expect."""
    return {
        "GITHUB_TOKEN": github_token,
        "KIT_TOKEN": kit_token,
        "SLACK_BOT_TOKEN": slack_token,
        "OPSGENIE_API_KEY": opsgenie_key,
        "JSM_API_TOKEN": jsm_token,
        "VAULT_TOKEN": vault_token,
    }


def document(ep: Endpoints, name: str = "kuvaq", vault_prefix: str = "bootstrap") -> dict[str, Any]:
    """A complete customer file (as data) pointing every service at ``ep``."""
    doc = _document(ep, name, vault_prefix)
    if ep.hub_kubeconfig:
        doc["hub"] = sandbox_hub.section(ep.hub_kubeconfig)
    return doc


def _document(ep: Endpoints, name: str, vault_prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": "bootstrap.gitops.dev/v1",
        "customer": {"name": name, "domain": f"{name}.example.com", "display_name": name.title()},
        "kit": {
            "repo": KIT_REPO,
            "version": "v1.4",
            "cloud": "aws",
            "addons": ["cert-manager", "external-dns"],
            "credentials": {"token": "env:KIT_TOKEN"},
        },
        "github": {
            "api_url": ep.github,
            "token": "env:GITHUB_TOKEN",
            "org": INFRA_REPO.split("/")[0] if name == "kuvaq" else name,
            "infra_repo": INFRA_REPO if name == "kuvaq" else f"{name}/infra",
            "branch": "main",
            "path": "argocd",
            "ssh_known_hosts": [f"{_host(ep.github)} {GIT_HOST_KEY}"],
        },
        "cluster": {"kubeconfig": ep.kubeconfig, "context": "sandbox"},
        "argocd": {
            "version": argocd_manifest.VERSION,
            "install_url": ep.argocd_manifest,
            "sha256": argocd_manifest.SHA256,
            "wait_timeout": 60,
            "users": [{"name": "deployer", "capabilities": ["apiKey"], "role": "role:admin"}],
            "sso": {
                "mode": "manual",
                "client_id": "Iv1.sandbox0000000001",
                "client_secret": "env:GITHUB_OAUTH_CLIENT_SECRET",
                "teams": ["sre"],
                "admin_team": "sre",
            },
        },
        "slack": {
            "token": "env:SLACK_BOT_TOKEN",
            "api_url": ep.slack.rstrip("/") + "/api/",
            "channel": f"alerts-{name}",
            "topic": f"Alerts for {name}",
            "purpose": "Alertmanager notifications (managed by gitops-bootstrap)",
            "invite": list(SLACK_USERS),
        },
        "alerting": {
            "provider": "opsgenie",
            "region": "eu",
            "api_url": ep.opsgenie,
            "api_key": "env:OPSGENIE_API_KEY",
            "team": TEAM,
            "priority": "P2",
            "responders": [{"type": "team", "name": TEAM}],
            "tags": [name],
            # Flip provider to jsm to switch this customer over (see README, "Alerting").
            **(
                {
                    "jsm": {
                        "site": ep.jsm,
                        "email": JSM_EMAIL,
                        "api_token": "env:JSM_API_TOKEN",
                        "api_url": ep.jsm,
                    }
                }
                if ep.jsm
                else {}
            ),
        },
        "vault": {
            "url": ep.vault,
            "auth": {"method": "token", "token": "env:VAULT_TOKEN"},
            "mount": "secret",
            "prefix": vault_prefix,
        },
    }


def _host(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"
