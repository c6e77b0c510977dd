"""Lazily built service clients for one customer.

Each client is created on first use, so a run that only touches Slack never
imports PyGithub, and ``bootstrap validate`` imports no SDK at all. Secrets
are resolved here (through ``Secrets``, hence registered for redaction) and
handed to the adapters in ``bootstrap.clients``; steps never see tokens.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.config import AppRoleAuth, CustomerConfig
from bootstrap.errors import ConfigError

if TYPE_CHECKING:
    from bootstrap.clients.ansible import AnsibleRunner
    from bootstrap.clients.github import GitHubClient
    from bootstrap.clients.jsm import JsmClient
    from bootstrap.clients.kubernetes import KubeClient
    from bootstrap.clients.opsgenie import OpsGenieClient
    from bootstrap.clients.slack import SlackClient
    from bootstrap.clients.vault import VaultClient
    from bootstrap.secrets import Secrets


class Services:
    def __init__(self, config: CustomerConfig, secrets: Secrets, base_dir: Path) -> None:
        self.config = config
        self.secrets = secrets
        self.base_dir = base_dir
        self.cancelled = threading.Event()
        """Set on Ctrl-C: waits give up, running playbooks are stopped, no new one starts."""

    def cancel(self) -> None:
        """Stop what is in flight (the run is being interrupted); the engine records the outcome."""
        self.cancelled.set()
        if "ansible" in self.__dict__:  # only if a playbook runner was ever built
            self.ansible.cancel()

    @cached_property
    def github(self) -> GitHubClient:
        from bootstrap.clients.github import GitHubClient

        gh = self.config.github
        return GitHubClient(gh.api_url, self.secrets.resolve(gh.token, "github.token"))

    @cached_property
    def slack(self) -> SlackClient:
        from bootstrap.clients.slack import SlackClient

        sl = self.config.slack
        return SlackClient(self.secrets.resolve(sl.token, "slack.token"), base_url=sl.api_url)

    @cached_property
    def opsgenie(self) -> OpsGenieClient:
        from bootstrap.clients import opsgenie

        al = self.config.alerting
        if al.api_key is None:
            raise ConfigError(
                "alerting.api_key: an OpsGenie API key is needed here (provider opsgenie, or to finish a "
                "switch-over from OpsGenie: removing its integration and heartbeat)"
            )
        url = al.api_url or opsgenie.api_url_for("opsgenie", al.region)
        return opsgenie.OpsGenieClient(url, self.secrets.resolve(al.api_key, "alerting.api_key"))

    @cached_property
    def jsm(self) -> JsmClient:
        from bootstrap.clients.jsm import JsmClient

        access = self.config.alerting.jsm
        if access is None:
            raise ConfigError("alerting.jsm: {site, email, api_token} is needed for provider jsm")
        token = self.secrets.resolve(access.api_token, "alerting.jsm.api_token")
        return JsmClient(access.site, access.email, token, api_url=access.api_url)

    @cached_property
    def vault(self) -> VaultClient:
        from bootstrap.clients.vault import VaultClient

        v = self.config.vault
        if isinstance(v.auth, AppRoleAuth):
            secret_id = self.secrets.resolve(v.auth.secret_id, "vault.auth.secret_id")
            return VaultClient(v.url, role_id=v.auth.role_id, secret_id=secret_id, mount=v.mount)
        return VaultClient(v.url, token=self.secrets.resolve(v.auth.token, "vault.auth.token"), mount=v.mount)

    @cached_property
    def kube(self) -> KubeClient:
        from bootstrap.clients.kubernetes import KubeClient

        return KubeClient(self.kubeconfig, self.config.cluster.context)

    @cached_property
    def hub_kube(self) -> KubeClient:
        """The hub's API server (hub mode): where the cluster Secret and the customer's Argo CD objects go.

        Built only from ``hub.kubeconfig``/``hub.context``, never from the customer's: a step that
        asks for it in standalone mode gets a ConfigError rather than the customer cluster.
        """
        from bootstrap.clients.kubernetes import KubeClient

        if self.config.hub is None:
            raise ConfigError(
                "hub: this customer has no hub (standalone mode); add a hub: section to use one"
            )
        return KubeClient(self.hub_kubeconfig, self.config.hub.context)

    @cached_property
    def ansible(self) -> AnsibleRunner:
        from bootstrap.clients.ansible import AnsibleRunner

        return AnsibleRunner(cancelled=self.cancelled)

    @property
    def kubeconfig(self) -> str | None:
        return self._path(self.config.cluster.kubeconfig)

    @property
    def hub_kubeconfig(self) -> str | None:
        """The hub's kubeconfig (relative paths from customer.yaml's directory); None = KUBECONFIG."""
        return self._path(self.config.hub.kubeconfig if self.config.hub is not None else None)

    def _path(self, path: str | None) -> str | None:
        if path is None:
            return None
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else self.base_dir / p)


PRELOAD = (
    "bootstrap.clients.github",
    "bootstrap.clients.github_manifest",
    "bootstrap.clients.slack",
    "bootstrap.clients.opsgenie",
    "bootstrap.clients.vault",
    "bootstrap.clients.kubernetes",
    "bootstrap.clients.ansible",
    "urllib3",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.dynamic",
    "ansible_runner",
    "ansible.parsing.vault",
    # Imported lazily by steps (hashing passwords, generating keys, rendering templates).
    "bcrypt",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.serialization",
    "jinja2.sandbox",
    "yaml",
    # Imported by the file checkpoint store when it takes its lock (a fleet locks in threads).
    "filelock",
)
"""Every module a step may import lazily, SDKs first."""


def preload() -> None:
    """Import now what the steps import lazily, before any thread starts.

    Two threads importing the same package at once can see it half-initialised
    (``cannot import name 'parse_dict_header' from partially initialized module
    'requests.utils'``): the import system breaks such import-lock cycles by
    handing one thread the unfinished module. Importing everything up front,
    on one thread, removes the race; it costs about a second of CPU, which a
    run that talks to these services pays anyway.
    """
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
