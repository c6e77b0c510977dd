"""The minimal GitHub world the steps and the sandbox start from.

One place defines it so that step tests, the realism tests and
``bootstrap sandbox up`` agree on names: an admin token, the customer's infra
repository and a kit repository whose release branches follow the kit contract
(../shared/KIT.md): the sections ``base/``, ``aws/``, ``gcp/`` and ``addons/``
are small Helm charts (``Chart.yaml``, ``values.yaml`` listing components with
chart, version and default values, a template that renders one Argo CD
Application per component; for ``addons/`` only those with
``appEnabled.<name>: true``). The addon catalog of a version is what
``addons/values.yaml`` lists.
"""

from __future__ import annotations

from typing import Any

import yaml

from sandbox.github import GitHubEmulator

ADMIN_TOKEN = "ghp_test_admin"
ADMIN_LOGIN = "acme-admin"
INFRA_REPO = "acme/infra"
KIT_REPO = "acme-sre/kit-core"
SECTIONS = ("base", "aws", "gcp", "addons")


def _component(repo: str, chart: str, version: str, namespace: str, **values: Any) -> dict[str, Any]:
    return {"repoURL": repo, "chart": chart, "version": version, "namespace": namespace, "values": values}


_BASE = {
    "kube-prometheus-stack": _component(
        "https://prometheus-community.github.io/helm-charts",
        "kube-prometheus-stack",
        "88.5.3",
        "monitoring",
        alertmanager={"enabled": True},
        grafana={"enabled": True},
    ),
    "sealed-secrets": _component(
        "https://bitnami-labs.github.io/sealed-secrets", "sealed-secrets", "2.17.1", "kube-system"
    ),
}
_CLOUD = {
    "aws": {
        "aws-load-balancer-controller": _component(
            "https://aws.github.io/eks-charts", "aws-load-balancer-controller", "1.13.4", "kube-system"
        )
    },
    "gcp": {
        "gke-metrics-adapter": _component(
            "https://charts.example-kit.dev", "gke-metrics-adapter", "0.3.0", "kube-system"
        )
    },
}
_ADDONS = {
    "cert-manager": _component("https://charts.jetstack.io", "cert-manager", "v1.16.2", "cert-manager"),
    "external-dns": _component(
        "https://kubernetes-sigs.github.io/external-dns", "external-dns", "1.15.0", "external-dns"
    ),
    "ingress-nginx": _component(
        "https://kubernetes.github.io/ingress-nginx", "ingress-nginx", "4.11.3", "ingress-nginx"
    ),
    "loki": _component("https://grafana.github.io/helm-charts", "loki", "6.21.0", "loki"),
    "velero": _component("https://vmware-tanzu.github.io/helm-charts", "velero", "8.1.0", "velero"),
}
KIT_ADDONS: dict[str, tuple[str, ...]] = {
    "v1.4": ("cert-manager", "external-dns", "ingress-nginx", "loki"),
    "v1.5": ("cert-manager", "external-dns", "ingress-nginx", "loki", "velero"),
}

# One Application per component, in the customer's project and namespace; the customer's values
# (argocd/values/<section>.yaml) reach every component as Helm values. Helm template syntax.
_TEMPLATE = """\
{{- range $name, $c := .Values.components }}
{{- if %(condition)s }}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {{ printf "%%s-%%s" $.Values.customer $name | quote }}
  namespace: {{ $.Values.argocd.namespace | quote }}
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: {{ $.Values.argocd.project | quote }}
  source:
    repoURL: {{ $c.repoURL | quote }}
    chart: {{ $c.chart | quote }}
    targetRevision: {{ $c.version | quote }}
    helm:
      valuesObject:
        {{- toYaml (mergeOverwrite (dict "global" (dict "domain" $.Values.domain)) $c.values) | nindent 8 }}
  destination:
    server: {{ $.Values.argocd.destination.server | quote }}
    namespace: {{ $c.namespace | quote }}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    retry: {limit: 5}
    syncOptions: [CreateNamespace=true]
{{- end }}
{{- end }}
"""


def section_files(section: str, version: str) -> dict[str, str]:
    """One kit section as a Helm chart: Chart.yaml, values.yaml, templates/applications.yaml."""
    if section == "base":
        components = _BASE
    elif section == "addons":
        components = {a: _ADDONS[a] for a in KIT_ADDONS[version]}
    else:
        components = _CLOUD[section]
    values: dict[str, Any] = {
        # Set by the customer's argocd/values/<section>.yaml (the values contract, README).
        "customer": "",
        "domain": "",
        "githubOrg": "",
        "argocd": {"namespace": "argocd", "project": "default", "destination": {"server": ""}},
    }
    if section == "addons":
        values["appEnabled"] = {}
    values["components"] = components
    chart = {
        "apiVersion": "v2",
        "name": f"kit-{section}",
        "description": f"kit {version}: the {section} section, one Argo CD Application per component",
        "type": "application",
        "version": version.removeprefix("v") + ".0",
    }
    condition = "index ($.Values.appEnabled | default dict) $name" if section == "addons" else "true"
    return {
        f"{section}/Chart.yaml": yaml.safe_dump(chart, sort_keys=False),
        f"{section}/values.yaml": yaml.safe_dump(values, sort_keys=False),
        f"{section}/templates/applications.yaml": _TEMPLATE % {"condition": condition},
    }


def kit_files(version: str) -> dict[str, str]:
    """The files of one kit release branch."""
    files: dict[str, str] = {}
    for section in SECTIONS:
        files |= section_files(section, version)
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
