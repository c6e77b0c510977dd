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
* Argo CD can read every repo the output names: a ``repository`` Secret with the
  deploy key from Vault for the infra repo (SSH), a ``repo-creds`` Secret with
  ``kit.credentials`` for the kit (HTTPS); values masked in every diff. verify()
  fails when any Application's Git repoURL has no matching credential
  (operator-manual/declarative-setup.md: repository by URL, repo-creds by prefix).
  On GitHub Enterprise Server, ``github.ssh_known_hosts`` joins
  ``argocd-ssh-known-hosts-cm``, or the SSH fetch fails host-key checking;
* the root Application and the AppProject are exactly what Git's ``root.yaml`` and
  ``project.yaml`` (committed by argocd-dir) hold: one definition, read from Git
  and applied as is; Argo CD syncs only ``apps/``, so it never writes them back;
* notifications: ``argocd-notifications-cm`` sends sync failures and degraded
  health of every Application to the customer's Slack channel with the bot token
  (``argocd-notifications-secret``);
* destroy deletes the root Application first and waits until every Application
  of the customer's project is gone (their ``resources-finalizer`` needs the
  running controller to cascade, user-guide/app_deletion.md), and only then
  removes the controller and the CRDs; a timeout names what is still there;
* ``argocd-initial-admin-secret`` is deleted once the admin password of
  argocd-users is in place;
* plan() only reads, so a run with nothing to do starts no playbook; each change it lists
  carries a typed operation (``ApplyManifest``, ``ApplyRepoSecret``, ``Delete``, …) and
  apply performs exactly those, in the plan's order, without looking again: what is applied
  is what was shown (secrets are resolved by apply, never held in a plan).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap import side_by_side
from bootstrap.clients import argocd, github_keys, kubernetes, manifests
from bootstrap.errors import PermanentError, RetryableError
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
KNOWN_HOSTS_CM = "argocd-ssh-known-hosts-cm"
ROOT_RECORD = "root.yaml"
PROJECT_RECORD = "project.yaml"
SLACK_VAR = "slack_token"
KIT_TOKEN_VAR = "kit_token"
_DESTROY_POLL = 0.5
SHARED = frozenset({("ConfigMap", argocd.CM), ("ConfigMap", argocd.RBAC), ("Secret", argocd.SECRET)})
"""Objects of the manifest that also hold other steps' keys: destroy leaves them to those steps."""


@dataclass(frozen=True)
class Ref:
    """One object by its coordinates, as the delete playbook takes it (no namespace: cluster-scoped)."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    def as_dict(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        return ref | ({"namespace": self.namespace} if self.namespace is not None else {})

    @property
    def text(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


# -- the operations a plan lists (Change.payload): apply performs these and nothing else ------
@dataclass(frozen=True)
class ApplyManifest:
    """Server-side apply every object of the pinned manifest (the annotated Namespace first), then
    wait for its workloads: an install is done only when they are ready. ``missing`` and
    ``outdated`` are what the plan saw (kind/name); applying the rest changes nothing."""

    objects: tuple[dict[str, Any], ...] = field(repr=False)
    missing: tuple[str, ...]
    outdated: tuple[str, ...]


@dataclass(frozen=True)
class ApplyNotifications:
    """Apply the manifest's notification objects (argocd-notifications-cm/-secret) with the customer's
    channel and bot token (resolved at apply time; the Secret holds a placeholder)."""

    objects: tuple[dict[str, Any], ...] = field(repr=False)


@dataclass(frozen=True)
class ApplyRepoSecret:
    """Apply the infra repo's ``repository`` Secret; the deploy key is read from Vault at apply time."""

    namespace: str


@dataclass(frozen=True)
class ApplyHubRepoSecret:
    """Hub mode: make sure the hub repo's shared key exists (Vault, then GitHub), then apply its Secret."""

    namespace: str


@dataclass(frozen=True)
class ApplyKitCreds:
    """Apply the kit's ``repo-creds`` Secret; ``kit.credentials.token`` is resolved at apply time."""

    namespace: str


@dataclass(frozen=True)
class ApplyRecord:
    """Apply a record argocd-dir committed (AppProject, root Application) exactly as the plan read it
    from Git; ``doc`` None means Git had none yet, which apply refuses (run argocd-dir first)."""

    repo: str
    branch: str
    path: str
    doc: dict[str, Any] | None


@dataclass(frozen=True)
class WaitForWorkloads:
    """Wait until every workload of the install is ready (nothing to apply; some were not yet)."""

    workloads: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Delete:
    """Delete one object (the initial admin Secret; on destroy, each object the install created)."""

    ref: Ref


@dataclass(frozen=True)
class StripKeys:
    """destroy: drop the keys the install's field manager owns in a shared object (apply it empty)."""

    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class _Observed:
    """What plan() saw, kept in ``Plan.observed``: the changes (in the order apply performs them)."""

    manifest: manifests.Manifest = field(repr=False)
    objects: list[dict[str, Any]] = field(repr=False)
    """The manifest's objects, namespaced, preceded by the annotated Namespace."""
    install: Change | None
    waiting: Change | None
    repo: Change | None
    kit_creds: Change | None
    notifications: Change | None
    project: Change | None
    app: Change | None
    initial_admin: Change | None
    notes: tuple[str, ...]

    @property
    def changes(self) -> tuple[Change, ...]:
        """Applied objects first, then the wait for the workloads, then the initial admin's deletion."""
        return tuple(
            c
            for c in (
                self.install,
                self.repo,
                self.kit_creds,
                self.notifications,
                self.project,
                self.app,
                self.waiting,
                self.initial_admin,
            )
            if c
        )


class ArgocdInstall(Step):
    id = StepId("argocd-install")
    title = "Install Argo CD and the root Application"
    requires = (StepId("argocd-dir"), StepId("deploy-key"), StepId("argocd-users"), StepId("github-oauth"))
    reads = (
        "customer.name",
        "kit",
        "github.api_url",
        "github.infra_repo",
        "github.branch",
        "github.path",
        "github.ssh_known_hosts",
        "slack.channel",
        "slack.api_url",
        "slack.token",
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
        if config.hub is not None:
            return hub_checks(config)
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
        if ctx.config.hub is not None:
            return _hub_plan(ctx)
        seen = _observe(ctx)
        return Plan(seen.changes, notes=seen.notes, outputs=_outputs(ctx, seen.manifest), observed=seen)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """Perform the plan's operations, in its order, from what the plan saw: no second look."""
        if ctx.config.hub is not None:
            return _hub_apply(ctx, plan)
        seen = plan.observed_as(_Observed)
        ops = [c.payload for c in plan.changes]
        ns = ctx.config.argocd.namespace
        batch, secret_vars = _batch(ctx, ops)
        if batch:
            ctx.intend(
                f"apply Argo CD {ctx.config.argocd.version} ({len(batch)} objects) to {ns} as {MANAGER}"
            )
            ctx.progress(f"applying {len(batch)} objects to namespace {ns} (ansible, server-side)")
            ctx.services.ansible.apply(
                batch, MANAGER, secret_vars, ctx.services.kubeconfig, ctx.config.cluster.context
            )
        workloads: list[tuple[str, str]] = []
        for op in ops:
            if isinstance(op, ApplyManifest):
                workloads += _workloads(list(op.objects))
            elif isinstance(op, WaitForWorkloads):
                workloads += op.workloads
        if workloads:
            ctx.services.kube.wait_available(
                ns, list(dict.fromkeys(workloads)), float(ctx.config.argocd.wait_timeout), ctx.progress
            )
        for op in ops:
            if isinstance(op, Delete):
                ctx.intend(f"delete {op.ref.text}")
                ctx.services.ansible.delete(
                    [op.ref.as_dict()], ctx.services.kubeconfig, ctx.config.cluster.context
                )
        return _outputs(ctx, seen.manifest)

    def verify(self, ctx: Context) -> None:
        if ctx.config.hub is not None:
            return _hub_verify(ctx)
        seen = _observe(ctx)
        ns = ctx.config.argocd.namespace
        # A zero timeout checks once and names whatever is not Available/Ready.
        ctx.services.kube.wait_available(ns, _workloads(seen.objects), 0.0, lambda _msg: None)
        for change in (seen.install, seen.repo, seen.kit_creds, seen.notifications, seen.project, seen.app):
            if change is not None:
                raise PermanentError(
                    f"{change.target} is not as expected after the install: {change.summary}"
                )
        missing = uncredentialed(ctx)
        if missing:
            raise PermanentError(
                "Argo CD has no credentials for "
                + "; ".join(f"{url} (Application {', '.join(apps)})" for url, apps in missing.items())
                + ": a repository Secret must name the URL, or a repo-creds Secret a prefix of it; "
                "for the kit set kit.credentials in customer.yaml"
            )

    def plan_destroy(self, ctx: Context) -> Plan:
        if ctx.config.hub is not None:
            return Plan(
                tuple(Change(Action.DELETE, _hub_ref_text(r), payload=Delete(r)) for r in _hub_present(ctx))
            )
        ns = ctx.config.argocd.namespace
        return Plan(
            tuple(Change(Action.DELETE, ref.text, payload=Delete(ref)) for ref in _present_for_destroy(ctx))
            + tuple(
                Change(
                    Action.UPDATE,
                    f"{kind} {ns}/{name}",
                    "remove the install's keys; other steps' stay",
                    payload=StripKeys(kind, name, ns),
                )
                for kind, name in _shared_with_our_keys(ctx)
            )
        )

    def destroy(self, ctx: Context, plan: Plan) -> None:
        """Remove what plan_destroy found, in its order: the root first, the controller last."""
        if ctx.config.hub is not None:
            return _hub_destroy(ctx, plan)
        ops = [c.payload for c in plan.changes]
        if any(not isinstance(op, Delete | StripKeys) for op in ops):
            raise TypeError(f"not a destroy plan of argocd-install: {ops!r}")
        deletes = [op.ref.as_dict() for op in ops if isinstance(op, Delete)]
        root = [r for r in deletes if r["kind"] == "Application"]
        rest = [r for r in deletes if r["kind"] != "Application"]
        kube, cluster = ctx.services.kube, ctx.config.cluster.context
        if root:
            ctx.intend(f"delete the root Application {root[0]['name']} (Argo CD deletes what it manages)")
            ctx.services.ansible.delete(root, ctx.services.kubeconfig, cluster)
        # The controller cascades the deletion (resources-finalizer) and then drops the finalizers;
        # removing it, or the CRDs, first would leave every Application Terminating forever.
        deadline = time.monotonic() + float(ctx.config.argocd.wait_timeout)
        while True:
            left = _applications_of(ctx, kube)
            if not left:
                break
            if time.monotonic() >= deadline:
                raise RetryableError(
                    f"Applications still being deleted after {ctx.config.argocd.wait_timeout}s: "
                    f"{', '.join(left)}; Argo CD's controller removes them (and their resources) once "
                    "it has deleted what they manage. Run destroy again to wait longer; to orphan "
                    "their resources instead, remove the finalizer resources-finalizer.argocd.argoproj.io "
                    "from them by hand"
                )
            ctx.progress(f"waiting for Argo CD to delete {len(left)} Application(s): {', '.join(left)}")
            time.sleep(_DESTROY_POLL)
        if rest:
            ctx.intend(f"delete the project, the repo Secrets and {len(rest)} Argo CD objects")
            ctx.services.ansible.delete(rest, ctx.services.kubeconfig, cluster)
        shared = [op for op in ops if isinstance(op, StripKeys)]
        if shared:
            # Applying an object with no data as our manager makes the API server drop every key we
            # own there (server-side apply); keys other steps own stay until their own destroy.
            empty = [
                argocd.secret(op.name, op.namespace, {})
                if op.kind == "Secret"
                else argocd.config_map(op.name, op.namespace, {})
                for op in shared
            ]
            ctx.intend(f"remove the install's keys from {', '.join(op.name for op in shared)}")
            ctx.services.ansible.apply(empty, MANAGER, {}, ctx.services.kubeconfig, cluster)


def _batch(ctx: Context, ops: list[object]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The plan's apply operations as the objects of one server-side apply, and the secrets they
    reference (resolved now, never part of a payload).

    One playbook run, not one per operation: each costs seconds (a module start, API discovery).
    Within it the playbook orders by need (Namespaces and CRDs first, Secrets last); every object
    is the plan's. An operation apply does not know is a plan of another shape: a bug, not a guess.
    """
    batch: list[dict[str, Any]] = []
    secret_vars: dict[str, str] = {}
    for op in ops:
        match op:
            case ApplyManifest() | ApplyNotifications():
                batch += op.objects
            case ApplyRepoSecret():
                batch.append(_repo_secret(ctx, "deploy_key", op.namespace))
                secret_vars["deploy_key"] = _private_key(ctx)
            case ApplyHubRepoSecret():
                secret_vars[HUB_KEY_VAR] = _ensure_hub_key(ctx)
                batch.append(_hub_repo_secret(ctx, HUB_KEY_VAR))
            case ApplyKitCreds():
                batch.append(_kit_creds_secret(ctx, KIT_TOKEN_VAR, op.namespace))
                secret_vars[KIT_TOKEN_VAR] = _kit_token(ctx)
            case ApplyRecord(doc=None):
                raise PermanentError(
                    f"{op.repo} branch {op.branch} has no {op.path}; run the argocd-dir step first"
                )
            case ApplyRecord(doc=dict() as doc):
                batch.append(argocd.literal_tree(doc))
            case WaitForWorkloads() | Delete():
                pass
            case _:
                raise TypeError(f"argocd-install cannot apply {op!r}")
    if any(o["kind"] == "Secret" and o["metadata"]["name"] == argocd.NOTIFICATIONS_SECRET for o in batch):
        secret_vars[SLACK_VAR] = ctx.secrets.resolve(ctx.config.slack.token, "slack.token")
    return batch, secret_vars


def _shared_with_our_keys(ctx: Context) -> list[tuple[str, str]]:
    """The shared Argo CD objects (argocd-cm, …) in which the install's field manager still owns data."""
    ns = ctx.config.argocd.namespace
    found = []
    for kind, name in sorted(SHARED):
        obj = ctx.services.kube.get("v1", kind, ns, name)
        entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
        if any(e.get("manager") == MANAGER and (e.get("fieldsV1") or {}).get("f:data") for e in entries):
            found.append((kind, name))
    return found


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
    # Git's records and the live Application and AppProject are read while the manifest's
    # objects are: independent reads, each a round trip, that were the longest part of a no-op.
    reads: list[Callable[[], Any]] = [
        lambda: _records(ctx),
        lambda: _record_objects(ctx, kube),
        lambda: kube.get("v1", "Namespace", None, ns),
        lambda: _live(kube, objects[1:]),
    ]
    records, seen, namespace, lives = side_by_side.run(reads, name="argocd-install-read")
    annotations = ((namespace or {}).get("metadata") or {}).get("annotations") or {}
    missing: list[str] = []
    outdated: dict[str, str] = {}
    """kind/name → why (what the diff shows)."""
    for obj in objects[1:]:
        meta = obj["metadata"]
        ref = f"{obj['kind']}/{meta['name']}"
        live = lives.get((obj["apiVersion"], obj["kind"], meta["name"]))
        if live is None:
            missing.append(ref)
        elif obj["kind"] in WORKLOADS and _images(obj) != _images(live):
            outdated[ref] = ", ".join(_images(live))
        elif (
            meta["name"] in _CUSTOMISED and (live.get("data") or {}).keys() != (obj.get("data") or {}).keys()
        ):
            outdated[ref] = "keys"
        elif meta["name"] == KNOWN_HOSTS_CM and live.get("data") != obj.get("data"):
            outdated[ref] = "host keys"
    if missing or outdated or annotations.get(DIGEST_ANNOTATION) != manifest.sha256:
        previous = annotations.get(VERSION_ANNOTATION)
        what = f"{previous} -> {cfg.version}" if previous and previous != cfg.version else cfg.version
        detail = [f"missing: {', '.join(missing)}"] if missing else []
        if outdated:
            detail.append(f"outdated: {', '.join(f'{r} ({why})' for r, why in outdated.items())}")
        if not missing and not outdated:
            detail.append(f"manifest sha256 {manifest.sha256}")
        install = Change(
            Action.UPDATE if namespace is not None and len(missing) < len(objects) - 1 else Action.CREATE,
            f"Argo CD {what} in {ns}",
            f"server-side apply {len(objects) - 1} objects from {manifest.url}",
            "\n".join(detail),
            payload=ApplyManifest(tuple(objects), tuple(missing), tuple(outdated)),
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
                Action.UPDATE,
                f"Argo CD workloads in {ns}",
                f"wait until ready: {', '.join(pending)}",
                payload=WaitForWorkloads(tuple(_workloads(objects))),
            )

    repo = _secret_change(
        _secret(kube, lives, ns, _repo_secret_name(ctx)),
        f"Secret {ns}/{_repo_secret_name(ctx)}",
        f"repository credentials for {_repo_url(ctx)} (deploy key from Vault)",
        # Before deploy-key has run (a first `bootstrap plan`) there is no key to compare: it will be new.
        {"type": "git", "url": _repo_url(ctx), "sshPrivateKey": _stored_private_key(ctx) or ""},
        argocd.REPOSITORY,
        ApplyRepoSecret(ns),
    )
    kit_creds: Change | None = None
    creds = ctx.config.kit.credentials
    if creds is None:
        notes.append(
            f"kit.credentials is not set: Argo CD can read {_kit_url(ctx)} only if it is public "
            "(verify fails until a credential matches it)"
        )
    else:
        kit_creds = _secret_change(
            _secret(kube, lives, ns, _kit_creds_name(ctx)),
            f"Secret {ns}/{_kit_creds_name(ctx)}",
            f"repo-creds for {_kit_url(ctx)} (kit.credentials)",
            {"type": "git", "url": _kit_url(ctx), "username": creds.username, "password": _kit_token(ctx)},
            argocd.REPO_CREDS,
            ApplyKitCreds(ns),
        )

    notifications: Change | None = None
    if install is None:
        desired_cm = argocd.notifications(ctx.config.slack.channel, ctx.config.slack.api_url)
        live_cm = argocd.config_data(lives.get(("v1", "ConfigMap", argocd.NOTIFICATIONS_CM)))
        token = ctx.secrets.resolve(ctx.config.slack.token, "slack.token")
        live_secret = argocd.secret_data(lives.get(("v1", "Secret", argocd.NOTIFICATIONS_SECRET)))
        text = argocd.diff(live_cm, desired_cm, set(), masked=False)
        text = "\n".join(
            filter(
                None, [text, argocd.diff(live_secret, {argocd.SLACK_TOKEN_KEY: token}, set(), masked=True)]
            )
        )
        if text:
            notifications = Change(
                Action.UPDATE,
                f"ConfigMap {ns}/{argocd.NOTIFICATIONS_CM}",
                f"notify #{ctx.config.slack.channel} of failed syncs and degraded health",
                text,
                payload=ApplyNotifications(
                    tuple(o for o in objects if o["metadata"]["name"] in _NOTIFICATION_OBJECTS)
                ),
            )

    project = _record_change(ctx, kube, records.get(PROJECT_RECORD), PROJECT_RECORD, seen)
    app = _record_change(ctx, kube, records.get(ROOT_RECORD), ROOT_RECORD, seen)

    initial_admin: Change | None = None
    if _secret(kube, lives, ns, INITIAL_ADMIN) is not None:
        if "admin.password" in argocd.secret_data(_secret(kube, lives, ns, argocd.SECRET)):
            initial_admin = Change(
                Action.DELETE,
                f"Secret {ns}/{INITIAL_ADMIN}",
                "the admin password from argocd-users is in place",
                payload=Delete(Ref("v1", "Secret", ns, INITIAL_ADMIN)),
            )
        else:
            notes.append(
                f"{ns}/{INITIAL_ADMIN} is kept: argocd-secret has no admin.password yet (run argocd-users)"
            )
    return _Observed(
        manifest,
        objects,
        install,
        waiting,
        repo,
        kit_creds,
        notifications,
        project,
        app,
        initial_admin,
        tuple(notes),
    )


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
    docs = manifests.documents(manifest, ctx.workdir / "cache", "argocd.install_url")
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
        _customise(ctx, doc)
        out.append(doc)
    return out


_NOTIFICATION_OBJECTS = frozenset({argocd.NOTIFICATIONS_CM, argocd.NOTIFICATIONS_SECRET})
_CUSTOMISED = _NOTIFICATION_OBJECTS


def _customise(ctx: Context, doc: dict[str, Any]) -> None:
    """The few manifest objects that carry this customer's settings (applied with the manifest)."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind == "ConfigMap" and name == KNOWN_HOSTS_CM:
        gh = ctx.config.github
        if not gh.is_github_com and not gh.ssh_known_hosts:
            raise PermanentError(
                f"github.ssh_known_hosts: Argo CD checks the SSH host key of {gh.git_host} and knows only "
                f"public hosts; add its keys (the output of `ssh-keyscan {gh.git_host}`) to customer.yaml"
            )
        if gh.ssh_known_hosts:
            data = doc.setdefault("data", {})
            known = str(data.get("ssh_known_hosts", ""))
            data["ssh_known_hosts"] = (
                known.rstrip("\n") + "\n" + "".join(f"{line}\n" for line in gh.ssh_known_hosts)
            )
    elif kind == "ConfigMap" and name == argocd.NOTIFICATIONS_CM:
        data = argocd.notifications(ctx.config.slack.channel, ctx.config.slack.api_url)
        doc["data"] = {k: argocd.literal(v) for k, v in data.items()}
    elif kind == "Secret" and name == argocd.NOTIFICATIONS_SECRET:
        doc["data"] = {argocd.SLACK_TOKEN_KEY: argocd.secret_placeholder(SLACK_VAR)}


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
    in a handful of kinds) instead of one get per object. A cluster-wide list (of CRDs, say)
    can be far bigger than what we need, so several cluster-scoped objects of a kind are
    listed by the labels they all carry (upstream labels each app.kubernetes.io/part-of=argocd):
    the answer holds those objects and no others. A kind whose objects share no label is read
    one get per object. An object whose labels someone removed reads as missing, and the
    install applies it again (labels included).
    """
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for obj in objects:
        groups.setdefault((obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace")), []).append(obj)
    reads: list[kubernetes.Read] = []
    listed: list[tuple[str, str, set[str] | None]] = []
    """Per read: (apiVersion, kind, the names kept from its answer; None = every item)."""
    for (api_version, kind, namespace), group in groups.items():
        names = [o["metadata"]["name"] for o in group]
        selector = None if namespace is not None else _common_labels(group)
        if len(names) > 1 and (namespace is not None or selector):
            # A namespaced list keeps every item: other objects of that kind in the namespace (the
            # repo Secrets, the initial admin Secret) are then read from it, not fetched again.
            reads.append(kubernetes.Read(api_version, kind, namespace, label_selector=selector))
            listed.append((api_version, kind, None if namespace is not None else set(names)))
            continue
        for name in names:
            reads.append(kubernetes.Read(api_version, kind, namespace, name))
            listed.append((api_version, kind, {name}))
    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    for read, (api_version, kind, wanted), items in zip(reads, listed, kube.read_all(reads), strict=True):
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            if isinstance(name, str) and (wanted is None or name in wanted):
                live[(api_version, kind, name)] = item
        if read.name is None and read.namespace is not None:
            live[(api_version, kind, _LISTED)] = {}
    return live


_LISTED = "\0listed"
"""Marks, in ``_live``'s answer, a kind whose namespace was listed whole (no object has this name)."""


def _secret(kube: Any, lives: dict[tuple[str, str, str], dict[str, Any]], ns: str, name: str) -> Any:
    """A Secret of the Argo CD namespace: from the observed list when there was one, else one get."""
    if ("v1", "Secret", _LISTED) in lives:
        return lives.get(("v1", "Secret", name))
    return kube.get("v1", "Secret", ns, name)


def _common_labels(objects: list[dict[str, Any]]) -> str | None:
    """A label selector every one of ``objects`` matches (the labels they share), or None."""
    shared: set[tuple[str, str]] | None = None
    for obj in objects:
        labels = set((obj["metadata"].get("labels") or {}).items())
        shared = labels if shared is None else shared & labels
    return ",".join(f"{k}={v}" for k, v in sorted(shared)) if shared else None


def _repo_secret_name(ctx: Context) -> str:
    return f"repo-{ctx.config.customer.name}-infra"


def _kit_creds_name(ctx: Context) -> str:
    return f"creds-{ctx.config.customer.name}-kit"


def _repo_url(ctx: Context) -> str:
    gh = ctx.config.github
    return gh.ssh_url(gh.infra_repo)


def _kit_url(ctx: Context) -> str:
    return ctx.config.github.https_url(ctx.config.kit.repo)


def _kit_token(ctx: Context) -> str:
    creds = ctx.config.kit.credentials
    assert creds is not None  # callers check
    return ctx.secrets.resolve(creds.token, "kit.credentials.token")


def _deploy_key_path(ctx: Context) -> str | None:
    """Where deploy-key stored the private key, as it recorded it (None before it has run)."""
    path = ctx.output_of("deploy-key", "vault_path")
    return str(path) if path else None


def _stored_private_key(ctx: Context) -> str | None:
    path = _deploy_key_path(ctx)
    data = ctx.services.vault.read(path) if path is not None else None
    return ctx.secrets.generated(data["private_key"]) if data and data.get("private_key") else None


def _private_key(ctx: Context) -> str:
    key = _stored_private_key(ctx)
    if key is None:
        path = _deploy_key_path(ctx)
        where = (
            f"Vault {ctx.config.vault.mount}/{path} has no private_key"
            if path is not None
            else "the checkpoint has no vault_path recorded by deploy-key"
        )
        raise PermanentError(
            f"{where}; run the deploy-key step first (`bootstrap run … --only deploy-key`)"
        )
    return key


_SECRET_KEYS = frozenset({"sshPrivateKey", "password"})


def _secret_change(
    live: dict[str, Any] | None,
    target: str,
    summary: str,
    desired: dict[str, str],
    secret_type: str,
    payload: object,
) -> Change | None:
    """The change that makes a repository / repo-creds Secret hold ``desired`` (secret keys masked)."""
    current = argocd.secret_data(live)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    text = "\n".join(
        f"{'+' if k not in current else '~'} {k}: "
        + (argocd.MASK if k in _SECRET_KEYS else (f"{current[k]} -> " if k in current else "") + v)
        for k, v in desired.items()
        if current.get(k) != v
    )
    if labels.get(argocd.SECRET_TYPE_LABEL) != secret_type:
        text = "\n".join(filter(None, [text, f"~ label {argocd.SECRET_TYPE_LABEL}: {secret_type}"]))
    if not text:
        return None
    return Change(Action.CREATE if live is None else Action.UPDATE, target, summary, text, payload=payload)


def _repo_secret(ctx: Context, key_var: str, ns: str | None = None) -> dict[str, Any]:
    data = {
        "type": argocd.b64("git"),
        "url": argocd.b64(_repo_url(ctx)),
        "sshPrivateKey": argocd.secret_placeholder(key_var),
    }
    labels = {argocd.SECRET_TYPE_LABEL: argocd.REPOSITORY}
    return argocd.secret(_repo_secret_name(ctx), ns or ctx.config.argocd.namespace, data, labels)


def _kit_creds_secret(ctx: Context, token_var: str, ns: str | None = None) -> dict[str, Any]:
    creds = ctx.config.kit.credentials
    assert creds is not None
    data = {
        "type": argocd.b64("git"),
        "url": argocd.b64(_kit_url(ctx)),
        "username": argocd.b64(creds.username),
        "password": argocd.secret_placeholder(token_var),
    }
    labels = {argocd.SECRET_TYPE_LABEL: argocd.REPO_CREDS}
    return argocd.secret(_kit_creds_name(ctx), ns or ctx.config.argocd.namespace, data, labels)


def _records(ctx: Context) -> dict[str, dict[str, Any]]:
    """Git's root.yaml and project.yaml (committed by argocd-dir): what the cluster must hold."""
    gh = ctx.config.github
    github = ctx.services.github
    head = github.branch_head(gh.infra_repo, gh.branch)
    if not head:
        return {}
    paths = {name: f"{gh.path.strip('/')}/{name}" for name in (PROJECT_RECORD, ROOT_RECORD)}
    reads = [functools.partial(github.read_file, gh.infra_repo, head, path) for path in paths.values()]
    texts = dict(zip(paths, side_by_side.run(reads, name="argocd-install-git"), strict=True))
    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        text = texts[name]
        doc = _first_doc(text, f"{gh.infra_repo}:{path}") if text is not None else None
        if doc is None:
            continue
        doc.setdefault("metadata", {})["namespace"] = ctx.config.argocd.namespace
        out[name] = doc
    return out


_Seen = dict[tuple[str, str, str], dict[str, Any] | None]
"""(apiVersion, kind, name) → the live object (None: absent), read ahead."""


def _record_objects(ctx: Context, kube: Any) -> _Seen:
    """The live AppProject and root Application under the names argocd-dir gives them."""
    ns, name = ctx.config.argocd.namespace, ctx.config.customer.name
    keys = [(APP_API, "AppProject", name), (APP_API, "Application", f"{name}-root")]
    found = kube.read_all([kubernetes.Read(api, kind, ns, n) for api, kind, n in keys])
    return {key: items[0] if items else None for key, items in zip(keys, found, strict=True)}


def _first_doc(text: str, where: str) -> dict[str, Any] | None:
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise PermanentError(f"{where} is not valid YAML ({exc}); run argocd-dir again") from None
    return docs[0] if docs else None


def differs(want: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether the live object lacks what ``want`` says (its spec, labels, annotations, finalizers)."""
    if live is None:
        return True
    meta, live_meta = want.get("metadata") or {}, live.get("metadata") or {}
    for key in ("labels", "annotations"):
        if any((live_meta.get(key) or {}).get(k) != v for k, v in (meta.get(key) or {}).items()):
            return True
    if not set(meta.get("finalizers") or []) <= set(live_meta.get("finalizers") or []):
        return True
    return bool(want.get("spec") != live.get("spec"))


def _record_change(
    ctx: Context, kube: Any, want: dict[str, Any] | None, record: str, seen: _Seen | None = None
) -> Change | None:
    """What applying Git's ``record`` would change; ``seen`` holds objects already read (else a get)."""
    ns = ctx.config.argocd.namespace

    def live_of(api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        if seen is not None and (api_version, kind, name) in seen:
            return seen[(api_version, kind, name)]
        got: dict[str, Any] | None = kube.get(api_version, kind, ns, name)
        return got

    gh = ctx.config.github
    path = f"{gh.path.strip('/')}/{record}"
    kind = "AppProject" if record == PROJECT_RECORD else "Application"
    payload = ApplyRecord(gh.infra_repo, gh.branch, path, want)
    if want is None:
        name = ctx.config.customer.name if record == PROJECT_RECORD else f"{ctx.config.customer.name}-root"
        live = live_of(APP_API, kind, name)
        if live is not None:
            return None  # nothing in Git to compare with yet; argocd-dir's own plan shows the commit
        return Change(
            Action.CREATE,
            f"{kind} {ns}/{name}",
            f"apply {path} from {gh.infra_repo} (argocd-dir commits it)",
            payload=payload,
        )
    name = want["metadata"]["name"]
    live = live_of(want.get("apiVersion", APP_API), want.get("kind", kind), name)
    if not differs(want, live):
        return None
    before = yaml.safe_dump((live or {}).get("spec"), sort_keys=True).splitlines() if live is not None else []
    after = yaml.safe_dump(want.get("spec"), sort_keys=True).splitlines()
    return Change(
        Action.CREATE if live is None else Action.UPDATE,
        f"{want.get('kind', kind)} {ns}/{name}",
        f"apply {path} from {gh.infra_repo} {gh.branch} as it is",
        "\n".join(difflib.unified_diff(before, after, "live", "git", lineterm="")),
        payload=payload,
    )


def uncredentialed(ctx: Context) -> dict[str, list[str]]:
    """Git repoURLs of the output (Git's root, apps/ and the live Applications) without credentials."""
    ns = ctx.config.argocd.namespace
    kube = ctx.services.kube
    gh = ctx.config.github
    apps = [d for d in _records(ctx).values() if d.get("kind") == "Application"]
    head = ctx.services.github.branch_head(gh.infra_repo, gh.branch)
    if head:
        for text in ctx.services.github.read_tree(gh.infra_repo, head, f"{gh.path.strip('/')}/apps").values():
            apps += [
                d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "Application"
            ]
    apps += kube.list(APP_API, "Application", ns)
    secrets = [
        s
        for kind in (argocd.REPOSITORY, argocd.REPO_CREDS)
        for s in kube.list("v1", "Secret", ns, label_selector=f"{argocd.SECRET_TYPE_LABEL}={kind}")
    ]
    missing: dict[str, list[str]] = {}
    for app in apps:
        for url in argocd.git_sources(app):
            if argocd.credential_for(url, secrets) is None:
                names = missing.setdefault(url, [])
                name = str((app.get("metadata") or {}).get("name"))
                if name not in names:
                    names.append(name)
    return missing


def _applications_of(ctx: Context, kube: Any) -> list[str]:
    """Applications of the customer's project (and the root) still in the cluster."""
    ns = ctx.config.argocd.namespace
    project, root = ctx.config.customer.name, f"{ctx.config.customer.name}-root"
    return sorted(
        str(a["metadata"]["name"])
        for a in kube.list(APP_API, "Application", ns)
        if (a.get("spec") or {}).get("project") == project or a["metadata"]["name"] == root
    )


def _present_for_destroy(ctx: Context) -> list[Ref]:
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
    name = ctx.config.customer.name
    candidates = [
        Ref(APP_API, "Application", ns, f"{name}-root"),
        Ref(APP_API, "AppProject", ns, name),
        Ref("v1", "Secret", ns, _repo_secret_name(ctx)),
        Ref("v1", "Secret", ns, _kit_creds_name(ctx)),
    ]
    candidates += [
        Ref(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        for obj in reversed(_objects(ctx, manifest)[1:])
        if (obj["kind"], obj["metadata"]["name"]) not in SHARED
    ]
    return [r for r in candidates if kube.get(r.api_version, r.kind, r.namespace, r.name) is not None]


def _outputs(ctx: Context, manifest: manifests.Manifest) -> Outputs:
    return {
        "version": ctx.config.argocd.version,
        "manifest_sha256": manifest.sha256,
        "root_app": f"{ctx.config.argocd.namespace}/{ctx.config.customer.name}-root",
        "project": f"{ctx.config.argocd.namespace}/{ctx.config.customer.name}",
    }


# -- hub mode ------------------------------------------------------------------------------
# In hub mode Argo CD already runs in the hub: nothing is installed in the customer cluster.
# What the customer needs in the hub is its AppProject and the hub's root Application (both
# records argocd-dir commits to the hub repo, applied as they are, like root.yaml/project.yaml
# in standalone mode) and the credentials for the repos its Applications read. The hub's own
# objects (its install, argocd-cm, notifications) belong to whoever runs the hub.
HUB_ROOT_RECORD = "root.yaml"


def hub_checks(config: CustomerConfig) -> tuple[Need, ...]:
    hub = config.hub
    assert hub is not None
    return (
        Need("vault", config.vault_path("deploy-key"), ("read",)),
        Need("vault", hub_key_path(config), ("read", "write")),
        Need("github", hub.gitops.repo, ("administration:write",)),
        Need(
            "hub",
            hub.namespace,
            tuple(
                f"{v} {r}"
                for r in ("secrets", "applications.argoproj.io", "appprojects.argoproj.io")
                for v in (*APPLY, "delete")
            ),
        ),
    )


def _hub_ns(ctx: Context) -> str:
    assert ctx.config.hub is not None
    return ctx.config.hub.namespace


def _hub_record_paths(ctx: Context) -> dict[str, str]:
    """record → path in the hub repo: the hub's root (shared) and this customer's AppProject."""
    assert ctx.config.hub is not None
    prefix = ctx.config.hub.gitops.path.strip("/")
    return {
        HUB_ROOT_RECORD: f"{prefix}/{HUB_ROOT_RECORD}",
        PROJECT_RECORD: f"{prefix}/projects/{ctx.config.customer.name}.yaml",
    }


def _hub_records(ctx: Context) -> dict[str, dict[str, Any]]:
    """The hub repo's root.yaml and projects/<customer>.yaml (committed by argocd-dir in hub mode)."""
    assert ctx.config.hub is not None
    gitops = ctx.config.hub.gitops
    github = ctx.services.github
    head = github.branch_head(gitops.repo, gitops.branch)
    out: dict[str, dict[str, Any]] = {}
    for record, path in _hub_record_paths(ctx).items():
        text = github.read_file(gitops.repo, head, path) if head else None
        doc = _first_doc(text, f"{gitops.repo}:{path}") if text is not None else None
        if doc is None:
            continue
        doc.setdefault("metadata", {})["namespace"] = _hub_ns(ctx)
        out[record] = doc
    return out


def _hub_observe(ctx: Context) -> dict[str, Change]:
    """What the hub lacks, keyed ``repo``/``kit``/``project``/``root`` (absent key: up to date)."""
    assert ctx.config.hub is not None
    ns = _hub_ns(ctx)
    kube = ctx.services.hub_kube
    found: dict[str, Change | None] = {
        "repo": _secret_change(
            kube.get("v1", "Secret", ns, _repo_secret_name(ctx)),
            f"Secret {ns}/{_repo_secret_name(ctx)} in the hub",
            f"repository credentials for {_repo_url(ctx)} (deploy key from Vault)",
            {"type": "git", "url": _repo_url(ctx), "sshPrivateKey": _stored_private_key(ctx) or ""},
            argocd.REPOSITORY,
            ApplyRepoSecret(ns),
        ),
        "hubrepo": _hub_repo_change(ctx),
    }
    creds = ctx.config.kit.credentials
    if creds is not None:
        found["kit"] = _secret_change(
            kube.get("v1", "Secret", ns, _kit_creds_name(ctx)),
            f"Secret {ns}/{_kit_creds_name(ctx)} in the hub",
            f"repo-creds for {_kit_url(ctx)} (kit.credentials)",
            {"type": "git", "url": _kit_url(ctx), "username": creds.username, "password": _kit_token(ctx)},
            argocd.REPO_CREDS,
            ApplyKitCreds(ns),
        )
    records = _hub_records(ctx)
    paths = _hub_record_paths(ctx)
    gitops = ctx.config.hub.gitops
    repo = gitops.repo
    for key, record, kind in (
        ("project", PROJECT_RECORD, "AppProject"),
        ("root", HUB_ROOT_RECORD, "Application"),
    ):
        want = records.get(record)
        payload = ApplyRecord(repo, gitops.branch, paths[record], want)
        if want is None:
            found[key] = Change(
                Action.CREATE,
                f"{kind} in {ns} (hub)",
                f"apply {repo}:{paths[record]} (argocd-dir commits it)",
                payload=payload,
            )
            continue
        name = want["metadata"]["name"]
        live = kube.get(want.get("apiVersion", APP_API), want.get("kind", kind), ns, name)
        if differs(want, live):
            found[key] = Change(
                Action.CREATE if live is None else Action.UPDATE,
                f"{want.get('kind', kind)} {ns}/{name} in the hub",
                f"apply {repo}:{paths[record]} as it is",
                payload=payload,
            )
    return {k: c for k, c in found.items() if c is not None}


def _hub_plan(ctx: Context) -> Plan:
    notes: tuple[str, ...] = ()
    if ctx.config.kit.credentials is None:
        notes = (
            f"kit.credentials is not set: the hub's Argo CD can read {_kit_url(ctx)} only if it is public",
        )
    return Plan(tuple(_hub_observe(ctx).values()), notes=notes, outputs=_hub_outputs(ctx))


def _hub_apply(ctx: Context, plan: Plan) -> Outputs:
    """The hub plan's operations as one apply to the hub (the hub repo's key ensured first)."""
    assert ctx.config.hub is not None
    ns = _hub_ns(ctx)
    batch, secret_vars = _batch(ctx, [c.payload for c in plan.changes])
    if batch:
        ctx.intend(f"apply the customer's project, the hub root and repo credentials to the hub's {ns}")
        ctx.services.ansible.apply(
            batch, MANAGER, secret_vars, ctx.services.hub_kubeconfig, ctx.config.hub.context
        )
    return _hub_outputs(ctx)


def _hub_verify(ctx: Context) -> None:
    for change in _hub_observe(ctx).values():
        raise PermanentError(f"{change.target} is not as expected: {change.summary}")


def _hub_refs(ctx: Context) -> list[Ref]:
    """What destroy removes from the hub: the customer's own objects, never the shared root."""
    ns = _hub_ns(ctx)
    return [
        Ref(APP_API, "AppProject", ns, ctx.config.customer.name),
        Ref("v1", "Secret", ns, _repo_secret_name(ctx)),
        Ref("v1", "Secret", ns, _kit_creds_name(ctx)),
    ]


def _hub_present(ctx: Context) -> list[Ref]:
    kube = ctx.services.hub_kube
    return [r for r in _hub_refs(ctx) if kube.get(r.api_version, r.kind, r.namespace, r.name) is not None]


def _hub_ref_text(ref: Ref) -> str:
    return f"{ref.text} in the hub"


def _hub_destroy(ctx: Context, plan: Plan) -> None:
    assert ctx.config.hub is not None
    present = [c.payload_as(Delete).ref for c in plan.changes]
    if present:
        ctx.intend(f"delete {', '.join(_hub_ref_text(r) for r in present)}")
        ctx.services.ansible.delete(
            [r.as_dict() for r in present], ctx.services.hub_kubeconfig, ctx.config.hub.context
        )


def _hub_outputs(ctx: Context) -> Outputs:
    ns = _hub_ns(ctx)
    return {"project": f"{ns}/{ctx.config.customer.name}", "mode": "hub"}


# -- the hub's read credential for its own repo ------------------------------------------------
# The hub's root Application and every ApplicationSet read the hub repo over SSH, so the hub
# needs one ``repository`` Secret for it. It is the hub's, not a customer's: one read-only
# deploy key, registered on the hub repo under a deterministic title, its private half in Vault
# under a path no customer owns (``<prefix>/_hub/<hub repo>/deploy-key``). The first customer
# creates it; every other adopts it (Vault check-and-set decides who generates, a key GitHub
# already has on the repo is adopted), and no customer's destroy removes it.
HUB_KEY_TITLE = "argocd-hub"
HUB_KEY_VAR = "hub_deploy_key"


def hub_key_path(config: CustomerConfig) -> str:
    assert config.hub is not None
    return "/".join((config.vault.prefix, "_hub", config.hub.gitops.repo, "deploy-key"))


def hub_repo_secret_name(repo: str) -> str:
    """``repo-hub-<owner>-<name>`` as a DNS name: one per hub repo, whoever writes it."""
    slug = "".join(c if c.isalnum() else "-" for c in repo.lower()).strip("-")
    return f"repo-hub-{slug}"[:63].rstrip("-")


def _hub_repo(ctx: Context) -> str:
    assert ctx.config.hub is not None
    return ctx.config.hub.gitops.repo


def _hub_stored_key(ctx: Context) -> tuple[str, str] | None:
    """(private, public) of the hub repo's key in Vault, or None."""
    data = ctx.services.vault.read(hub_key_path(ctx.config))
    if not data or not data.get("private_key") or not data.get("public_key"):
        return None
    return ctx.secrets.generated(data["private_key"]), str(data["public_key"])


def _hub_registered(ctx: Context, public: str) -> bool:
    fp = github_keys.fingerprint(public)
    keys = ctx.services.github.list_deploy_keys(_hub_repo(ctx))
    return any(k.fingerprint == fp and k.read_only for k in keys)


def _hub_repo_change(ctx: Context) -> Change | None:
    ns, repo = _hub_ns(ctx), _hub_repo(ctx)
    name = hub_repo_secret_name(repo)
    stored = _hub_stored_key(ctx)
    target = f"Secret {ns}/{name} in the hub"
    op = ApplyHubRepoSecret(ns)
    if stored is None:
        why = f"new read-only deploy key {HUB_KEY_TITLE!r} on {repo} (shared by the hub's customers)"
        return Change(Action.CREATE, target, why, f"+ Vault {hub_key_path(ctx.config)}", payload=op)
    if not _hub_registered(ctx, stored[1]):
        return Change(
            Action.UPDATE,
            target,
            f"register Vault's key on {repo} as {HUB_KEY_TITLE!r} (read-only)",
            payload=op,
        )
    return _secret_change(
        ctx.services.hub_kube.get("v1", "Secret", ns, name),
        target,
        f"repository credentials for the hub repo {ctx.config.github.ssh_url(repo)} (shared)",
        {"type": "git", "url": ctx.config.github.ssh_url(repo), "sshPrivateKey": stored[0]},
        argocd.REPOSITORY,
        op,
    )


def _ensure_hub_key(ctx: Context) -> str:
    """The hub repo's private key: Vault's, else a new one stored first; then registered on the repo."""
    from bootstrap.clients.vault import CasMismatch

    repo, path = _hub_repo(ctx), hub_key_path(ctx.config)
    stored = _hub_stored_key(ctx)
    if stored is None:
        private, public = github_keys.generate()
        ctx.secrets.generated(private)
        ctx.intend(f"store the hub repo's new deploy key at Vault {path}")
        with contextlib.suppress(CasMismatch):  # another customer of this hub stored one first: adopt it
            ctx.services.vault.write(path, {"private_key": private, "public_key": public}, cas=0)
        stored = _hub_stored_key(ctx)
        if stored is None:
            raise RetryableError(f"Vault {path} was written but reads back empty; run again")
    private, public = stored
    github = ctx.services.github
    fp = github_keys.fingerprint(public)
    keys = github.list_deploy_keys(repo)
    for stale in (k for k in keys if k.title == HUB_KEY_TITLE and k.fingerprint != fp):
        ctx.intend(f"delete deploy key {stale.id} {HUB_KEY_TITLE!r} of {repo}: not the key in Vault {path}")
        github.delete_deploy_key(repo, stale.id)
    if not any(k.fingerprint == fp and k.read_only for k in keys):
        ctx.intend(f"register the hub repo's deploy key {fp} on {repo} as {HUB_KEY_TITLE!r}")
        try:
            github.add_deploy_key(repo, HUB_KEY_TITLE, public, read_only=True)
        except github_keys.KeyInUse as exc:
            if exc.existing is None or not exc.existing.read_only:
                raise  # on another repo or user, or writable here: not for us to take over
    return private


def _hub_repo_secret(ctx: Context, key_var: str) -> dict[str, Any]:
    repo = _hub_repo(ctx)
    data = {
        "type": argocd.b64("git"),
        "url": argocd.b64(ctx.config.github.ssh_url(repo)),
        "sshPrivateKey": argocd.secret_placeholder(key_var),
    }
    labels = {argocd.SECRET_TYPE_LABEL: argocd.REPOSITORY}
    return argocd.secret(hub_repo_secret_name(repo), _hub_ns(ctx), data, labels)
