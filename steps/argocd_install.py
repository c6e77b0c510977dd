"""argocd-install: Argo CD itself, its access to the infra repo, and the root Application.

Guarantees:

* the manifests are exactly the pinned ones (``argocd.sha256`` when given),
  downloaded once and cached under ``<workdir>/cache/``; they are applied
  server-side (required from Argo CD 3.3: the ApplicationSet CRD is too big for
  client-side apply) through a playbook as ``bootstrap-argocd-install``, in
  namespace ``argocd.namespace``; the namespace carries the version and the
  manifest digest, so a changed pin is seen without comparing every object;
* the step is done only when every Deployment is Available and every
  StatefulSet Ready; a timeout is a RetryableError naming what is not ready;
* the repository Secret carries the deploy key from Vault (values masked in
  every diff) and the root Application points Argo CD at the infra repo, from
  where it syncs everything else;
* ``argocd-initial-admin-secret`` is deleted once the admin password of
  argocd-users is in place;
* plan() only reads, so a run with nothing to do starts no playbook.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.clients import argocd, kubernetes, manifests
from bootstrap.errors import PermanentError
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

MANAGER = argocd.field_manager("argocd-install")
VERSION_ANNOTATION = "bootstrap.gitops.dev/argocd-version"
DIGEST_ANNOTATION = "bootstrap.gitops.dev/argocd-manifest-sha256"
INITIAL_ADMIN = "argocd-initial-admin-secret"
APP_API = "argoproj.io/v1alpha1"
WORKLOADS = ("Deployment", "StatefulSet")
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
        "IngressClass",
        "PersistentVolume",
        "APIService",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SHARED = frozenset({("ConfigMap", argocd.CM), ("ConfigMap", argocd.RBAC), ("Secret", argocd.SECRET)})
"""Objects of the manifest that also hold other steps' keys: destroy leaves them to those steps."""


@dataclass(frozen=True)
class _Observed:
    manifest: manifests.Manifest
    objects: list[dict[str, Any]]
    """The manifest's objects, namespaced, preceded by the annotated Namespace."""
    install: Change | None
    waiting: Change | None
    repo: Change | None
    app: Change | None
    initial_admin: Change | None
    notes: tuple[str, ...]

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for c in (self.install, self.waiting, self.repo, self.app, self.initial_admin) if c)


class ArgocdInstall(Step):
    id = StepId("argocd-install")
    title = "Install Argo CD and the root Application"
    requires = (StepId("argocd-dir"), StepId("deploy-key"), StepId("argocd-users"), StepId("github-oauth"))
    reads = (
        "customer.name",
        "github.infra_repo",
        "github.branch",
        "github.path",
        "argocd.namespace",
        "argocd.version",
        "argocd.install_url",
        "argocd.sha256",
        "argocd.ha",
        "argocd.wait_timeout",
        "vault.mount",
        "vault.prefix",
    )

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        ns = config.argocd.namespace
        return (
            Need("manifest", install_url(config), (config.argocd.sha256,) if config.argocd.sha256 else ()),
            Need("vault", config.vault_path("deploy-key"), ("read",)),
            Need.cluster(
                "",
                APPLY,
                "namespaces",
                "customresourcedefinitions.apiextensions.k8s.io",
                "clusterroles.rbac.authorization.k8s.io",
                "clusterrolebindings.rbac.authorization.k8s.io",
            ),
            Need.cluster(
                ns,
                (*APPLY, "list"),
                "serviceaccounts",
                "configmaps",
                "secrets",
                "services",
                "roles.rbac.authorization.k8s.io",
                "rolebindings.rbac.authorization.k8s.io",
                "deployments.apps",
                "statefulsets.apps",
                "networkpolicies.networking.k8s.io",
                "applications.argoproj.io",
            ),
            Need.cluster(ns, ("delete",), "secrets"),  # the initial admin Secret
        )

    def plan(self, ctx: Context) -> Plan:
        seen = _observe(ctx)
        return Plan(seen.changes, notes=seen.notes, outputs=_outputs(ctx, seen.manifest))

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        seen = _observe(ctx)
        ns = ctx.config.argocd.namespace
        batch: list[dict[str, Any]] = []
        secret_vars: dict[str, str] = {}
        if seen.install is not None:
            batch += seen.objects
        if seen.repo is not None:
            batch.append(_repo_secret(ctx, "deploy_key"))
            secret_vars["deploy_key"] = _private_key(ctx)
        if seen.app is not None:
            batch.append(_root_app(ctx))
        if batch:
            ctx.intend(
                f"apply Argo CD {ctx.config.argocd.version} ({len(batch)} objects) to {ns} as {MANAGER}"
            )
            ctx.progress(f"applying {len(batch)} objects to namespace {ns} (ansible, server-side)")
            ctx.services.ansible.apply(
                batch, MANAGER, secret_vars, ctx.services.kubeconfig, ctx.config.cluster.context
            )
        ctx.services.kube.wait_available(
            ns, _workloads(seen.objects), float(ctx.config.argocd.wait_timeout), ctx.progress
        )
        if seen.initial_admin is not None:
            ctx.intend(f"delete Secret {ns}/{INITIAL_ADMIN}")
            ctx.services.ansible.delete(
                [{"apiVersion": "v1", "kind": "Secret", "namespace": ns, "name": INITIAL_ADMIN}],
                ctx.services.kubeconfig,
                ctx.config.cluster.context,
            )
        return _outputs(ctx, seen.manifest)

    def verify(self, ctx: Context) -> None:
        seen = _observe(ctx)
        ns = ctx.config.argocd.namespace
        # A zero timeout checks once and names whatever is not Available/Ready.
        ctx.services.kube.wait_available(ns, _workloads(seen.objects), 0.0, lambda _msg: None)
        for change in (seen.install, seen.repo, seen.app):
            if change is not None:
                raise PermanentError(
                    f"{change.target} is not as expected after the install: {change.summary}"
                )

    def plan_destroy(self, ctx: Context) -> Plan:
        present = _present_for_destroy(ctx)
        where = [f"{o['namespace']}/{o['name']}" if "namespace" in o else o["name"] for o in present]
        return Plan(
            tuple(Change(Action.DELETE, f"{o['kind']} {w}") for o, w in zip(present, where, strict=True))
        )

    def destroy(self, ctx: Context, plan: Plan) -> None:
        present = _present_for_destroy(ctx)
        if present:
            ctx.intend(f"delete the root Application, the repo Secret and {len(present)} Argo CD objects")
            ctx.services.ansible.delete(present, ctx.services.kubeconfig, ctx.config.cluster.context)


def _observe(ctx: Context) -> _Observed:
    cfg = ctx.config.argocd
    ns = cfg.namespace
    kube = ctx.services.kube
    manifest = manifests.fetch(
        _install_url(ctx), cfg.sha256, ctx.workdir / "cache", "argocd.install_url", "argocd.sha256"
    )
    objects = _objects(ctx, manifest)
    notes: list[str] = []

    install: Change | None = None
    namespace = kube.get("v1", "Namespace", None, ns)
    annotations = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
    missing, outdated = [], []
    lives = _live(kube, objects[1:])
    for obj in objects[1:]:
        meta = obj["metadata"]
        live = lives.get((obj["apiVersion"], obj["kind"], meta["name"]))
        if live is None:
            missing.append(f"{obj['kind']}/{meta['name']}")
        elif obj["kind"] in WORKLOADS and _images(obj) != _images(live):
            outdated.append(f"{obj['kind']}/{meta['name']} ({', '.join(_images(live))})")
    if missing or outdated or annotations.get(DIGEST_ANNOTATION) != manifest.sha256:
        previous = annotations.get(VERSION_ANNOTATION)
        what = f"{previous} -> {cfg.version}" if previous and previous != cfg.version else cfg.version
        detail = [f"missing: {', '.join(missing)}"] if missing else []
        detail += [f"outdated: {', '.join(outdated)}"] if outdated else []
        if not missing and not outdated:
            detail.append(f"manifest sha256 {manifest.sha256}")
        install = Change(
            Action.UPDATE if namespace is not None and len(missing) < len(objects) - 1 else Action.CREATE,
            f"Argo CD {what} in {ns}",
            f"server-side apply {len(objects) - 1} objects from {manifest.url}",
            "\n".join(detail),
        )

    waiting: Change | None = None
    if install is None:
        pending = [
            f"{o['kind']}/{o['metadata']['name']}"
            for o in objects
            if o["kind"] in WORKLOADS and not _ready(o, lives)
        ]
        if pending:
            waiting = Change(
                Action.UPDATE, f"Argo CD workloads in {ns}", f"wait until ready: {', '.join(pending)}"
            )

    repo: Change | None = None
    name = _repo_secret_name(ctx)
    # Before deploy-key has run (a first `bootstrap plan`) there is no key to compare: it will be new.
    private_key = _stored_private_key(ctx)
    live_repo = kube.get("v1", "Secret", ns, name)
    current = argocd.secret_data(live_repo)
    desired = {"type": "git", "url": _repo_url(ctx), "sshPrivateKey": private_key or ""}
    labels = ((live_repo or {}).get("metadata") or {}).get("labels") or {}
    text = "\n".join(
        f"{'+' if k not in current else '~'} {k}: "
        + (argocd.MASK if k == "sshPrivateKey" else (f"{current[k]} -> " if k in current else "") + v)
        for k, v in desired.items()
        if current.get(k) != v
    )
    if labels.get("argocd.argoproj.io/secret-type") != "repository":
        text = "\n".join(filter(None, [text, "~ label argocd.argoproj.io/secret-type: repository"]))
    if text:
        repo = Change(
            Action.CREATE if live_repo is None else Action.UPDATE,
            f"Secret {ns}/{name}",
            f"repository credentials for {_repo_url(ctx)} (deploy key from Vault)",
            text,
        )

    app: Change | None = None
    want = _root_app(ctx)
    live_app = kube.get(APP_API, "Application", ns, want["metadata"]["name"])
    have = {k: (live_app or {}).get("spec", {}).get(k) for k in want["spec"]}
    if live_app is None or have != want["spec"]:
        before = yaml.safe_dump(have, sort_keys=True).splitlines() if live_app is not None else []
        after = yaml.safe_dump(want["spec"], sort_keys=True).splitlines()
        app = Change(
            Action.CREATE if live_app is None else Action.UPDATE,
            f"Application {ns}/{want['metadata']['name']}",
            f"root app-of-apps: {_repo_url(ctx)} {ctx.config.github.branch}:{ctx.config.github.path}",
            "\n".join(difflib.unified_diff(before, after, "live", "wanted", lineterm="")),
        )

    initial_admin: Change | None = None
    if kube.get("v1", "Secret", ns, INITIAL_ADMIN) is not None:
        if "admin.password" in argocd.secret_data(kube.get("v1", "Secret", ns, argocd.SECRET)):
            initial_admin = Change(
                Action.DELETE,
                f"Secret {ns}/{INITIAL_ADMIN}",
                "the admin password from argocd-users is in place",
            )
        else:
            notes.append(
                f"{ns}/{INITIAL_ADMIN} is kept: argocd-secret has no admin.password yet (run argocd-users)"
            )
    return _Observed(manifest, objects, install, waiting, repo, app, initial_admin, tuple(notes))


def _install_url(ctx: Context) -> str:
    return install_url(ctx.config)


def install_url(config: CustomerConfig) -> str:
    cfg = config.argocd
    if cfg.install_url:
        return cfg.install_url
    variant = "manifests/ha/install.yaml" if cfg.ha else "manifests/install.yaml"
    return f"https://raw.githubusercontent.com/argoproj/argo-cd/{cfg.version}/{variant}"


def _objects(ctx: Context, manifest: manifests.Manifest) -> list[dict[str, Any]]:
    ns = ctx.config.argocd.namespace
    try:
        # libyaml when present: the pure-Python parser spends seconds of CPU on every run (no-op
        # included) on the ~2 MB upstream manifest; a fleet run pays that once per customer.
        docs = [d for d in yaml.load_all(manifest.text, Loader=_LOADER) if d]
    except yaml.YAMLError as exc:
        raise PermanentError(f"argocd.install_url: {manifest.url} is not valid YAML: {exc}") from None
    if not all(isinstance(d, dict) and d.get("kind") and d.get("metadata", {}).get("name") for d in docs):
        raise PermanentError(
            f"argocd.install_url: {manifest.url} holds something that is not a Kubernetes object"
        )
    head = argocd.namespace(ns)
    head["metadata"]["annotations"] = {
        VERSION_ANNOTATION: ctx.config.argocd.version,
        DIGEST_ANNOTATION: manifest.sha256,
    }
    out = [head]
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = ns
        # Upstream binds its ServiceAccounts as namespace "argocd"; follow argocd.namespace.
        binding = doc["kind"] in ("RoleBinding", "ClusterRoleBinding")
        subjects = (doc.get("subjects") or []) if binding else []
        for subject in subjects:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = ns
        out.append(doc)
    return out


def _workloads(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in WORKLOADS]


def _images(obj: dict[str, Any]) -> list[str]:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c.get("image", "") for key in ("initContainers", "containers") for c in pod.get(key) or []]


def _ready(obj: dict[str, Any], lives: dict[tuple[str, str, str], dict[str, Any]]) -> bool:
    live = lives.get((obj["apiVersion"], obj["kind"], obj["metadata"]["name"]))
    return kubernetes.readiness(obj["kind"], live)[0]


def _live(kube: Any, objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The live copies of ``objects`` by (apiVersion, kind, name), absent ones left out.

    One list per namespaced kind with several objects (an Argo CD manifest has ~60 objects
    in a handful of kinds) instead of one get per object; cluster-scoped kinds are read one
    by one, since a cluster-wide list (of CRDs, say) can be far bigger than what we need.
    """
    groups: dict[tuple[str, str, str | None], list[str]] = {}
    for obj in objects:
        meta = obj["metadata"]
        groups.setdefault((obj["apiVersion"], obj["kind"], meta.get("namespace")), []).append(meta["name"])
    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (api_version, kind, namespace), names in groups.items():
        if namespace is not None and len(names) > 1:
            wanted = set(names)
            for item in kube.list(api_version, kind, namespace):
                name = (item.get("metadata") or {}).get("name")
                if name in wanted:
                    live[(api_version, kind, name)] = item
            continue
        for name in names:
            got = kube.get(api_version, kind, namespace, name)
            if got is not None:
                live[(api_version, kind, name)] = got
    return live


def _repo_secret_name(ctx: Context) -> str:
    return f"repo-{ctx.config.customer.name}-infra"


def _repo_url(ctx: Context) -> str:
    return f"git@github.com:{ctx.config.github.infra_repo}.git"


def _stored_private_key(ctx: Context) -> str | None:
    data = ctx.services.vault.read(ctx.config.vault_path("deploy-key"))
    return ctx.secrets.generated(data["private_key"]) if data and data.get("private_key") else None


def _private_key(ctx: Context) -> str:
    key = _stored_private_key(ctx)
    if key is None:
        path = ctx.config.vault_path("deploy-key")
        raise PermanentError(
            f"Vault {ctx.config.vault.mount}/{path} has no private_key; run the deploy-key step first "
            "(`bootstrap run … --only deploy-key`)"
        )
    return key


def _repo_secret(ctx: Context, key_var: str) -> dict[str, Any]:
    data = {
        "type": argocd.b64("git"),
        "url": argocd.b64(_repo_url(ctx)),
        "sshPrivateKey": argocd.secret_placeholder(key_var),
    }
    labels = {"argocd.argoproj.io/secret-type": "repository"}
    return argocd.secret(_repo_secret_name(ctx), ctx.config.argocd.namespace, data, labels)


def _root_app(ctx: Context) -> dict[str, Any]:
    gh = ctx.config.github
    return {
        "apiVersion": APP_API,
        "kind": "Application",
        "metadata": {"name": f"{ctx.config.customer.name}-root", "namespace": ctx.config.argocd.namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": _repo_url(ctx), "targetRevision": gh.branch, "path": gh.path},
            "destination": {
                "server": "https://kubernetes.default.svc",
                "namespace": ctx.config.argocd.namespace,
            },
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def _present_for_destroy(ctx: Context) -> list[dict[str, str]]:
    """What destroy removes, in order: root Application, repo Secret, the manifest's objects backwards."""
    ns = ctx.config.argocd.namespace
    kube = ctx.services.kube
    manifest = manifests.fetch(
        _install_url(ctx),
        ctx.config.argocd.sha256,
        ctx.workdir / "cache",
        "argocd.install_url",
        "argocd.sha256",
    )
    candidates = [
        {
            "apiVersion": APP_API,
            "kind": "Application",
            "namespace": ns,
            "name": _root_app(ctx)["metadata"]["name"],
        },
        {"apiVersion": "v1", "kind": "Secret", "namespace": ns, "name": _repo_secret_name(ctx)},
    ]
    for obj in reversed(_objects(ctx, manifest)[1:]):
        if (obj["kind"], obj["metadata"]["name"]) in SHARED:
            continue
        ref = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"]}
        if "namespace" in obj["metadata"]:
            ref["namespace"] = obj["metadata"]["namespace"]
        candidates.append(ref)
    return [
        c
        for c in candidates
        if kube.get(c["apiVersion"], c["kind"], c.get("namespace"), c["name"]) is not None
    ]


def _outputs(ctx: Context, manifest: manifests.Manifest) -> Outputs:
    return {
        "version": ctx.config.argocd.version,
        "manifest_sha256": manifest.sha256,
        "root_app": f"{ctx.config.argocd.namespace}/{ctx.config.customer.name}-root",
    }
