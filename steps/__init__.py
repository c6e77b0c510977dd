"""The steps, in the order a person reads them; the engine orders them by ``requires``.

A step declares the modes it belongs to (``Step.modes``); ``bootstrap.step.for_config``
builds one customer's list, so cluster-register exists only for a customer with a hub.

``STEPS`` imports every step module (with the adapters they use) on first access, not when
the package is imported: ``status``, ``forget`` and the help texts need only each step's id
and modes, which ``steps.catalog`` holds without importing any step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrap.step import Step

    STEPS: tuple[type[Step], ...]


def __getattr__(name: str) -> object:
    if name != "STEPS":
        raise AttributeError(f"module 'steps' has no attribute {name!r}")
    from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
    from steps.argocd_dir import ArgocdDir
    from steps.argocd_install import ArgocdInstall
    from steps.argocd_users import ArgocdUsers
    from steps.cluster_register import ClusterRegister
    from steps.deploy_key import DeployKey
    from steps.github_oauth import GithubOauth
    from steps.slack_channel import SlackChannel

    steps = (
        ArgocdDir,
        DeployKey,
        ArgocdUsers,
        GithubOauth,
        SlackChannel,
        AlertmanagerOpsgenie,
        ArgocdInstall,
        ClusterRegister,
    )
    globals()["STEPS"] = steps
    return steps
