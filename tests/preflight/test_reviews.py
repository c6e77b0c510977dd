"""The read-only questions the preflight asks, answered over real HTTP through the real clients."""

from __future__ import annotations

from bootstrap.clients.kubernetes import KubeClient
from tests.fixtures.kube import KubeSandbox


def test_self_subject_access_review_follows_the_rbac_model_and_stores_nothing(kube_emu: KubeSandbox) -> None:
    kube = KubeClient(str(kube_emu.kubeconfig_path), "sandbox")
    kube_emu.forbid("patch", "secrets", "argocd")
    assert kube.can("patch", "secrets", "", "argocd") == (
        False,
        "RBAC: system:serviceaccount:sandbox:bootstrap may not patch secrets in argocd",
    )
    assert kube.can("patch", "secrets", "", "monitoring") == (True, "")
    assert kube.can("create", "customresourcedefinitions", "apiextensions.k8s.io", None)[0] is True
    reviews = [c for c in kube_emu.log.calls if c.path.endswith("/selfsubjectaccessreviews")]
    assert len(reviews) == 3 and all(c.status == 201 for c in reviews)
    assert kube_emu.log.writes == []
    kube.close()
