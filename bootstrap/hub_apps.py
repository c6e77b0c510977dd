"""What the hub's GitOps repo holds in hub mode: ApplicationSets over labelled cluster Secrets.

Layout under ``hub.gitops.path`` (``P``), split by who owns what:

- shared by every cluster of the hub (rendered identically by each customer, so a
  second customer's render finds them in place and commits nothing for them):
  ``P/root.yaml`` (the hub's root Application, a record applied by the install, not
  synced), ``P/README.md`` and ``P/appsets/<kit>/*.yaml``: one ApplicationSet per kit
  section, ``base``, ``<cloud>`` and, for the ``addons`` section, one per catalog addon
  (``addon-<name>.yaml``);
- the customer's own: ``P/projects/<project>.yaml`` (its AppProject) and
  ``P/clusters/<cluster>/values/<section>.yaml`` (its values, the same content rules as
  standalone mode's ``values/``). The 51st cluster adds only these and its Secret.

Why one ApplicationSet per addon: the kit's ``addons/`` chart renders the addons whose
``appEnabled.<name>`` is true. The label ``addons.<kit>/<name>: "true"`` must be the one
switch (KIT.md, "Hub mode"), so each addon's ApplicationSet selects exactly the clusters
whose label is ``"true"`` (``matchExpressions`` ``In ["true"]``) and passes
``appEnabled.<name>=true`` to the chart as a Helm parameter, and the cluster's values
carry no ``appEnabled`` at all. Flipping one label adds or removes exactly one
Application of exactly one cluster, and nothing in Git changes.

Why the generated Applications point at the hub: a kit section chart renders Argo CD
Applications (the kit contract), and Application objects live next to the Argo CD
that runs them, i.e. in the hub's namespace. The cluster the components land in
comes from the generator: ``{{.server}}`` (the Secret's ``server``) reaches the
chart as the Helm parameter ``argocd.destination.server``, which the kit's
component Applications use as their destination.

Every template string is a Go template evaluated per cluster by the ApplicationSet
controller with ``missingkey=error`` (docs/operator-manual/applicationset/GoTemplate.md).
That option does not cover ``index`` on a map (Go's ``index`` returns the zero value
for a missing key), and a label key (``bootstrap.gitops.dev/kit-version``) can only be
read with ``index``; so each label read is guarded with Sprig's ``hasKey`` and
``fail``: a cluster Secret without the label makes the controller report an error
for that cluster instead of stamping out an Application with an empty revision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from bootstrap import hub

API = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SECTION_LABEL = "kit.gitops.dev/section"
CLUSTER_LABEL = f"{hub.PREFIX}/cluster"
ADDONS = "addons"
SYNC_POLICY: dict[str, Any] = {
    "automated": {"prune": True, "selfHeal": True},
    # Auto-sync does not retry a failed sync of the same revision without it (REFERENCE.md §11).
    "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
}
HEADER = "# Managed by gitops-bootstrap (hub mode); see {readme}. {what}\n"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def label(key: str) -> str:
    """A Go template reading the label ``key`` of the cluster Secret, failing loudly when it is missing."""
    return (
        f'{{{{ if not (hasKey .metadata.labels "{key}") }}}}'
        f'{{{{ fail (printf "cluster %s: its Secret has no label {key}" .name) }}}}{{{{ end }}}}'
        f'{{{{ index .metadata.labels "{key}" }}}}'
    )


def values_path(path: str, cluster: str, section: str) -> str:
    """Where a cluster's values for a kit section live in the hub repo (``cluster`` may be a template)."""
    return f"{path}/clusters/{cluster}/values/{section}.yaml"


def selector(kit_repo: str, *, cloud: str | None = None, addon: str | None = None) -> dict[str, Any]:
    """The label selector of one kit section's ApplicationSet (Kubernetes label-selector semantics)."""
    labels = {hub.SECRET_TYPE: "cluster", hub.MANAGED_BY: hub.MANAGER, hub.KIT: hub.kit_name(kit_repo)}
    if cloud is not None:
        labels[hub.CLOUD] = cloud
    out: dict[str, Any] = {"matchLabels": labels}
    if addon is not None:
        out["matchExpressions"] = [
            {"key": hub.addon_label(kit_repo, addon), "operator": "In", "values": ["true"]}
        ]
    return out


def application_set(
    *,
    kit_repo: str,
    kit_url: str,
    hub_url: str,
    hub_branch: str,
    hub_path: str,
    namespace: str,
    section: str,
    cloud: str | None = None,
    addon: str | None = None,
) -> dict[str, Any]:
    """The ApplicationSet of one kit section (or, for ``addons``, of one addon)."""
    kit = hub.kit_name(kit_repo)
    suffix = f"addon-{addon}" if addon is not None else section
    app = f"{{{{ .name }}}}-{suffix}"
    parameters = [
        {"name": "argocd.destination.server", "value": "{{ .server }}"},
        {"name": "argocd.project", "value": label(hub.PROJECT)},
    ]
    if addon is not None:
        parameters.append({"name": f"appEnabled.{addon}", "value": "true"})
    return {
        "apiVersion": API,
        "kind": "ApplicationSet",
        "metadata": {
            "name": f"{kit}-{suffix}",
            "namespace": namespace,
            "labels": {hub.MANAGED_BY: hub.MANAGER, SECTION_LABEL: section},
        },
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"clusters": {"selector": selector(kit_repo, cloud=cloud, addon=addon)}}],
            "template": {
                "metadata": {
                    "name": app,
                    "labels": {
                        hub.MANAGED_BY: hub.MANAGER,
                        SECTION_LABEL: section,
                        CLUSTER_LABEL: "{{ .name }}",
                    },
                    "finalizers": [FINALIZER],
                },
                "spec": {
                    "project": label(hub.PROJECT),
                    "sources": [
                        {
                            "repoURL": kit_url,
                            "targetRevision": label(hub.KIT_VERSION),
                            "path": section,
                            "helm": {
                                "releaseName": app,
                                "valueFiles": ["$values/" + values_path(hub_path, "{{ .name }}", section)],
                                "parameters": parameters,
                            },
                        },
                        {"repoURL": hub_url, "targetRevision": hub_branch, "ref": "values"},
                    ],
                    "destination": {"server": IN_CLUSTER, "namespace": namespace},
                    "syncPolicy": SYNC_POLICY,
                },
            },
        },
    }


def root_application(*, hub_url: str, hub_branch: str, hub_path: str, namespace: str) -> dict[str, Any]:
    """The hub's root: syncs every ApplicationSet (recursively: one directory per kit) and AppProject.

    ``root.yaml`` itself lies outside both synced directories, so the root never manages
    (or prunes) itself (argoproj/argo-cd#8846); the values under ``clusters/`` are not
    synced either, they are only read through ``$values``.
    """
    return {
        "apiVersion": API,
        "kind": "Application",
        "metadata": {
            "name": root_name(hub_path),
            "namespace": namespace,
            "labels": {hub.MANAGED_BY: hub.MANAGER},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "project": "default",
            "sources": [
                {
                    "repoURL": hub_url,
                    "targetRevision": hub_branch,
                    "path": f"{hub_path}/appsets",
                    "directory": {"recurse": True},
                },
                {
                    "repoURL": hub_url,
                    "targetRevision": hub_branch,
                    "path": f"{hub_path}/projects",
                    "directory": {"recurse": False},
                },
            ],
            "destination": {"server": IN_CLUSTER, "namespace": namespace},
            "syncPolicy": SYNC_POLICY,
        },
    }


def app_project(
    *,
    name: str,
    description: str,
    namespace: str,
    cluster: str,
    server: str | None,
    source_repos: Iterable[str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The customer's AppProject in the hub.

    Destinations: the hub's own Argo CD namespace (the section Applications create the
    kit's component Applications there) and the customer's cluster, by name and, when
    customer.yaml gives it, by server (whether a name-only destination admits an
    Application that names its cluster by server is unverified, hence both).
    """
    destinations: list[dict[str, str]] = [{"server": IN_CLUSTER, "namespace": namespace}]
    destinations.append({"name": cluster, "namespace": "*"})
    if server:
        destinations.append({"server": server, "namespace": "*"})
    return {
        "apiVersion": API,
        "kind": "AppProject",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {hub.MANAGED_BY: hub.MANAGER},
            **({"annotations": dict(annotations)} if annotations else {}),
        },
        "spec": {
            "description": description,
            "sourceRepos": list(source_repos),
            "destinations": destinations,
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }


def root_name(hub_path: str) -> str:
    return (_NOT_DNS.sub("-", hub_path.lower()).strip("-") or "hub") + "-root"


def dump(header: str, doc: Mapping[str, Any]) -> str:
    """YAML in the order built, with Go templates kept on one line (never folded) for readers."""
    text = yaml.safe_dump(
        dict(doc), sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )
    return header + text


README = """\
# The hub's GitOps directory (managed by gitops-bootstrap, hub mode)

One Argo CD (the hub) manages every customer cluster registered in it as a labelled cluster Secret.

- `root.yaml`: the hub's root Application; applied by `bootstrap`, it syncs `appsets/` and `projects/`.
- `appsets/<kit>/`: one ApplicationSet per kit section (`base`, the cloud, one per addon). Each selects
  clusters by their Secret's labels and deploys the kit at the revision of the `kit-version` label.
- `projects/<customer>.yaml`: each customer's AppProject.
- `clusters/<cluster>/values/<section>.yaml`: each cluster's values (read through `$values`).

Enable an addon on a cluster by setting its label `addons.<kit>/<addon>` to `"true"` (`bootstrap run`
does so from `kit.addons`); upgrade a cluster's kit by changing `kit.version`. Do not edit these files by
hand: change customer.yaml and run `bootstrap run` again.
"""


SUBSCRIBE = "notifications.argoproj.io/subscribe"


def slack_subscriptions(channel: str, triggers: Iterable[str]) -> dict[str, str]:
    """The AppProject annotations that send the project's notifications to the customer's channel.

    Argo CD subscribes every Application of a project when the AppProject carries
    ``notifications.argoproj.io/subscribe.<trigger>.<service>: <recipients>``
    (docs/user-guide/subscriptions.md). The ``slack`` service and the triggers themselves are
    the hub's (its ``argocd-notifications-cm``, its operator's to configure); only the
    subscription is the customer's. Project subscriptions apply to Applications in the
    Argo CD namespace (argoproj/argo-cd#18108), which is where the hub's Applications live.
    """
    return {f"{SUBSCRIBE}.{trigger}.slack": channel for trigger in triggers}
