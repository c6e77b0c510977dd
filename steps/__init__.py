"""The steps, in the order a person reads them; the engine orders them by ``requires``."""

from __future__ import annotations

from bootstrap.step import Step
from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
from steps.argocd_dir import ArgocdDir
from steps.argocd_install import ArgocdInstall
from steps.argocd_users import ArgocdUsers
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
)
