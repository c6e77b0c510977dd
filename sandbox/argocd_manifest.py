"""A small stand-in for Argo CD's upstream ``install.yaml``.

The sandbox and the tests cannot download the real manifest (no network), and
nothing runs pods anyway. This one has the same *shape* where the install
step looks: the CRDs (so Applications become discoverable), the ConfigMaps and
Secret that the users/SSO steps patch, and every workload the install waits
for, with the names upstream uses (REFERENCE.md §3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

DEPLOYMENTS = (
    "argocd-server",
    "argocd-repo-server",
    "argocd-applicationset-controller",
    "argocd-dex-server",
    "argocd-notifications-controller",
    "argocd-redis",
)
STATEFULSETS = ("argocd-application-controller",)


def _crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.argoproj.io", "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "spec": {
            "group": "argoproj.io",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "subresources": {"status": {}} if kind == "Application" else {},
                }
            ],
        },
    }


def _workload(kind: str, name: str, version: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "argocd"}
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": name, "image": f"quay.io/argoproj/argocd:{version}"}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "labels": labels}, "spec": spec}


def objects(version: str) -> list[dict[str, Any]]:
    part_of = {"app.kubernetes.io/part-of": "argocd"}
    docs: list[dict[str, Any]] = [
        _crd("Application", "applications"),
        _crd("AppProject", "appprojects"),
        _crd("ApplicationSet", "applicationsets"),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "argocd-server", "labels": part_of},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "labels": part_of}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-rbac-cm", "labels": part_of}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "argocd-secret", "labels": part_of},
        },
    ]
    docs += [_workload("Deployment", n, version) for n in DEPLOYMENTS]
    docs += [_workload("StatefulSet", n, version) for n in STATEFULSETS]
    return docs


def render(version: str) -> str:
    return yaml.safe_dump_all(objects(version), sort_keys=False)


def write(directory: Path, version: str = "v3.3.0") -> tuple[str, str]:
    """Write ``install-<version>.yaml``; return its ``file://`` URL and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"argocd-install-{version}.yaml"
    text = render(version)
    path.write_text(text, encoding="utf-8")
    return path.resolve().as_uri(), hashlib.sha256(text.encode()).hexdigest()
