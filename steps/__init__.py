"""The steps, in the order a person reads them; the engine orders them by ``requires``.

A step declares the modes it belongs to (``Step.modes``); ``bootstrap.step.for_config``
builds one customer's list, so cluster-register exists only for a customer with a hub.
"""

from __future__ import annotations

from bootstrap.step import Step
from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
from steps.argocd_dir import ArgocdDir
from steps.argocd_install import ArgocdInstall
from steps.argocd_users import ArgocdUsers
from steps.cluster_register import ClusterRegister
from steps.deploy_key import DeployKey
from steps.github_oauth import GithubOauth
from steps.slack_channel import SlackChannel

STEPS: tuple[type[Step], ...] = (
    ArgocdDir,
    DeployKey,
    ArgocdUsers,
    GithubOauth,
    SlackChannel,
    AlertmanagerOpsgenie,
    ArgocdInstall,
    ClusterRegister,
)
