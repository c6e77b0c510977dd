"""The minimal GitHub world the steps and the sandbox start from.

One place defines it so that step tests, the realism tests and
``bootstrap sandbox up`` agree on names: an admin token, the customer's infra
repository and a kit repository whose release branches carry a catalog of
addons (the argocd-dir step checks ``appEnabled`` against it).
"""

from __future__ import annotations

from sandbox.github import GitHubEmulator

ADMIN_TOKEN = "ghp_test_admin"
ADMIN_LOGIN = "acme-admin"
INFRA_REPO = "acme/infra"
KIT_REPO = "acme-sre/kit-core"
KIT_ADDONS: dict[str, tuple[str, ...]] = {
    "v1.4": ("cert-manager", "external-dns", "ingress-nginx", "loki"),
    "v1.5": ("cert-manager", "external-dns", "ingress-nginx", "loki", "velero"),
}


def kit_files(version: str) -> dict[str, str]:
    """The files of one kit release branch."""
    addons = KIT_ADDONS[version]
    catalog = f"version: {version}\naddons:\n" + "".join(
        f"  - name: {a}\n    path: addons/{a}\n" for a in addons
    )
    files = {"catalog.yaml": catalog}
    header = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    for part in ("base", "aws", "gcp"):
        files[f"{part}/kustomization.yaml"] = f"{header}# kit {version}: {part}\nresources: []\n"
    for addon in addons:
        files[f"addons/{addon}/kustomization.yaml"] = f"{header}# kit {version}: {addon}\nresources: []\n"
    return files


def seed_kit(emu: GitHubEmulator) -> None:
    """The kit repository with release branches v1.4 and v1.5 (v1.5 adds velero)."""
    owner, name = KIT_REPO.split("/")
    emu.create_repo(owner, name, {"README.md": "# kit-core\n\nRelease branches: v1.4, v1.5.\n"})
    emu.create_branch(owner, name, "v1.4", kit_files("v1.4"))
    emu.create_branch(owner, name, "v1.5", kit_files("v1.5"), from_branch="v1.4")


def seed_default(emu: GitHubEmulator) -> None:
    """Admin token, the customer's infra repository (branch main) and the kit."""
    emu.add_token(ADMIN_TOKEN, ADMIN_LOGIN, scopes=("repo", "read:org"))
    owner, name = INFRA_REPO.split("/")
    emu.create_repo(owner, name, {"README.md": "# infra\n"})
    seed_kit(emu)
