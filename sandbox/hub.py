"""The sandbox's hub: a second Kubernetes emulator running the management Argo CD.

In hub mode no Argo CD is installed in the customer cluster; one already runs in
the hub. So the hub is seeded with upstream's real install manifest (v3.3.14,
sandbox/argocd_manifest.py) as if it had been applied there: the CRDs with their
OpenAPI schemas (Application, AppProject, ApplicationSet), the ``argocd`` namespace,
the shared ConfigMaps/Secret (``argocd-cm``, ``argocd-rbac-cm``, ``argocd-secret``)
per-customer steps write into, and the workloads (the controller stand-in marks
them Available). The hub's own GitOps repo, where argocd-dir renders the
ApplicationSets, is created on the GitHub emulator.
"""

from __future__ import annotations

from typing import Any

from sandbox import argocd_manifest

NAMESPACE = "argocd"
CONTEXT = "hub"
GITOPS_REPO = "acme-sre/hub"
"""The hub's GitOps repo (``hub.gitops.repo``) on the GitHub emulator."""
_CLUSTER_SCOPED = frozenset({"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"})


def install_argocd(kube: Any, namespace: str = NAMESPACE) -> None:
    """Seed ``kube`` with Argo CD's real manifest in ``namespace`` (CRDs first, so their kinds exist)."""
    objects = argocd_manifest.objects()
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    kube.seed(*crds, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for obj in rest:
        if obj["kind"] not in _CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
    kube.seed(*rest)


def seed_gitops_repo(github: Any) -> None:
    owner, name = GITOPS_REPO.split("/")
    if (owner, name) not in getattr(github, "repos", {}):
        github.create_repo(owner, name, {"README.md": "# hub\n\nThe management Argo CD's GitOps repo.\n"})


def section(kubeconfig: str) -> dict[str, Any]:
    """customer.yaml's ``hub:`` for the sandbox hub."""
    return {
        "kubeconfig": kubeconfig,
        "context": CONTEXT,
        "namespace": NAMESPACE,
        "gitops": {"repo": GITOPS_REPO, "branch": "main", "path": "hub"},
    }
