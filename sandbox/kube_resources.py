"""The resource types the Kubernetes emulator serves, and its discovery documents.

Clients never hard-code URLs: the official ``kubernetes.dynamic`` client and
Ansible's ``kubernetes.core`` discover them from ``/api``, ``/apis`` and
``/apis/<group>/<version>``. So the table below is the single source of truth
for both routing and discovery, and a CustomResourceDefinition simply adds rows
to it (which is what makes Argo CD's Application discoverable once its CRD is
applied, as on a real cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives and how the server treats it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    generation: bool = False
    """Whether metadata.generation is maintained (types with a spec)."""
    returns_object_on_delete: bool = False
    """Custom resources and a few built-ins answer DELETE with the object, the rest with a Status."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def discovery_entries(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": VERBS,
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _t(api_version: str, kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group, version, kind, plural, namespaced, **kw)


BUILTIN: tuple[ResourceType, ...] = (
    _t("v1", "Namespace", "namespaces", False, short_names=("ns",), status_subresource=True),
    _t("v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _t("v1", "Secret", "secrets"),
    _t(
        "v1",
        "Service",
        "services",
        short_names=("svc",),
        status_subresource=True,
        returns_object_on_delete=True,
    ),
    _t("v1", "ServiceAccount", "serviceaccounts", short_names=("sa",)),
    _t("v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",)),
    _t("v1", "Pod", "pods", short_names=("po",), status_subresource=True, returns_object_on_delete=True),
    _t("v1", "Event", "events", short_names=("ev",)),
    _t(
        "apps/v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        status_subresource=True,
        generation=True,
    ),
    _t(
        "apps/v1",
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        status_subresource=True,
        generation=True,
    ),
    _t("apps/v1", "DaemonSet", "daemonsets", short_names=("ds",), status_subresource=True, generation=True),
    _t("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _t("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _t("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _t("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _t("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",), generation=True),
    _t(
        "networking.k8s.io/v1",
        "Ingress",
        "ingresses",
        short_names=("ing",),
        status_subresource=True,
        generation=True,
    ),
    _t(
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        short_names=("pdb",),
        status_subresource=True,
    ),
    _t(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short_names=("crd", "crds"),
        status_subresource=True,
        generation=True,
    ),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", ())),
                status_subresource="status" in (version.get("subresources") or {}),
                generation=True,
                returns_object_on_delete=True,
            )
        )
    return out


def api_versions(host: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def group_list(types: list[ResourceType]) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_doc(types, g) for g in _groups(types)],
    }


def group_doc(types: list[ResourceType], group: str) -> dict[str, Any]:
    versions = []
    for t in types:
        entry = {"groupVersion": t.api_version, "version": t.version}
        if t.group == group and entry not in versions:
            versions.append(entry)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any]:
    resources = [e for t in types if t.group == group and t.version == version for e in t.discovery_entries()]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _groups(types: list[ResourceType]) -> list[str]:
    seen: list[str] = []
    for t in types:
        if t.group and t.group not in seen:
            seen.append(t.group)
    return seen
