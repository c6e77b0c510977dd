"""The hub-mode contract: what a customer cluster's Secret in the hub says about it.

In hub mode one management Argo CD manages every customer cluster. Each cluster is
a cluster Secret in the hub (``argocd.argoproj.io/secret-type: cluster``) whose
*labels* carry what the cluster is; the hub's ApplicationSets select on them
(cluster generator + label selector) and read them back in their templates
(``.metadata.labels``). So the labels are an interface between two steps:
``cluster-register`` writes them and ``argocd-dir`` renders selectors over them.
Both import them from here, so a renamed label cannot break one side silently.

Label keys follow Kubernetes' syntax (an optional DNS-subdomain prefix, ``/``, a
name of at most 63 characters); values are at most 63 characters of
``[A-Za-z0-9._-]``, which every value below satisfies by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

PREFIX = "bootstrap.gitops.dev"
SECRET_TYPE = "argocd.argoproj.io/secret-type"
"""Argo CD finds its clusters by this label (value ``cluster``; docs: Declarative Setup, Clusters)."""

CUSTOMER = f"{PREFIX}/customer"
PROJECT = f"{PREFIX}/project"
CLOUD = f"{PREFIX}/cloud"
KIT = f"{PREFIX}/kit"
"""The kit the cluster runs (``kit_name``): one hub may serve clusters of several kits, and each
kit's ApplicationSets must select only its own clusters."""
KIT_VERSION = f"{PREFIX}/kit-version"
KUBERNETES_VERSION = f"{PREFIX}/kubernetes-version"
"""``<major>.<minor>`` as the cluster itself reports it (``GET /version``), never typed by hand."""
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "gitops-bootstrap"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def kit_name(kit_repo: str) -> str:
    """The kit's name as a DNS label, from the kit repo's name (``SRE/Platform_Kit`` → ``platform-kit``)."""
    return _NOT_DNS.sub("-", kit_repo.rsplit("/", 1)[-1].lower()).strip("-")[:50] or "kit"


def kit_label_domain(kit_repo: str) -> str:
    """``addons.<kit>``: the label prefix of a kit's addon switches, from the kit repo's name.

    The kit's name is lower-cased and reduced to a DNS label so that any repo name
    (``SRE/Platform_Kit``) gives a valid prefix (``addons.platform-kit``).
    """
    return f"addons.{kit_name(kit_repo)}"


def addon_label(kit_repo: str, addon: str) -> str:
    """``addons.<kit>/<addon>``: ``"true"`` when the cluster runs the addon, ``"false"`` otherwise."""
    return f"{kit_label_domain(kit_repo)}/{addon}"


def cluster_secret_name(cluster: str) -> str:
    """The deterministic name of a cluster's Secret in the hub, so a crashed run's Secret is adopted."""
    return f"cluster-{cluster}"


def cluster_labels(config: CustomerConfig, catalog: Iterable[str], kubernetes_version: str) -> dict[str, str]:
    """Every label of the customer cluster's Secret in the hub, for the kit version's ``catalog``.

    One ``addons.<kit>/<addon>`` per catalog addon, ``"false"`` included: a selector
    can then tell "off" from "this cluster predates the addon", and flipping one label
    is all it takes to enable an addon on one cluster.
    """
    enabled = set(config.kit.addons)
    labels = {
        SECRET_TYPE: "cluster",
        MANAGED_BY: MANAGER,
        CUSTOMER: config.customer.name,
        PROJECT: config.customer.name,
        CLOUD: config.kit.cloud,
        KIT: kit_name(config.kit.repo),
        KIT_VERSION: config.kit.version,
        KUBERNETES_VERSION: kubernetes_version,
    }
    for addon in sorted(catalog):
        labels[addon_label(config.kit.repo, addon)] = "true" if addon in enabled else "false"
    return labels


def minor_version(major: str, minor: str) -> str:
    """``1.31`` from ``/version``'s ``major``/``minor`` (providers append ``+``: ``"31+"`` on EKS/GKE)."""
    return f"{major.strip().rstrip('+')}.{minor.strip().rstrip('+')}"
