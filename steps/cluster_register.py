"""cluster-register (hub mode): the customer cluster as a labelled cluster Secret in the hub's Argo CD.

Guarantees:

* in the customer cluster, a ServiceAccount ``kube-system/bootstrap-argocd-manager``
  bound to a ClusterRole of the same name with what Argo CD's application
  controller needs to manage a cluster (every verb on every resource and
  non-resource URL: what ``argocd cluster add`` grants its ``argocd-manager``,
  Argo CD docs getting_started.md "Register A Cluster To Deploy Apps To"), and a
  long-lived token Secret ``bootstrap-argocd-manager-token-<n>`` of type
  ``kubernetes.io/service-account-token``: the control plane's token controller
  fills in ``token`` and ``ca.crt`` (kubernetes.io/docs/tasks/configure-pod-container/
  configure-service-account/#manually-create-an-api-token-for-a-serviceaccount);
* the token lives in Vault (``<prefix>/<customer>/cluster-token``, the token
  Secret's name in the custom metadata) and in the hub's cluster Secret, nowhere
  else: plans and diffs mask it, outputs and the checkpoint carry names only;
* in the hub (``hub.namespace``), the Secret ``cluster-<name>`` in Argo CD's
  declarative format (operator-manual/declarative-setup.md, "Clusters"): label
  ``argocd.argoproj.io/secret-type: cluster``, ``name``, ``server`` (``hub.server``
  or the customer kubeconfig's server) and ``config`` = ``{bearerToken,
  tlsClientConfig: {caData}}``; its other labels are bootstrap/hub.py's, with the
  Kubernetes minor read from the customer cluster's ``/version`` and one addon
  switch per addon of the kit version's catalog. It is server-side applied as
  ``bootstrap-cluster-register``: a label dropped from customer.yaml is removed, and
  labels other tools put there stay;
* the truth flows one way: the live token Secret → Vault → the hub. Killed between
  any two writes, a re-run adopts what is there by name (a filled token Secret
  without Vault record is stored, a Vault token the hub lacks is rolled out);
* ``rotate cluster-token`` creates token Secret ``<n+1>`` and records its token in
  Vault (staged); the run that follows rolls it out to the hub Secret (whose
  annotation names the token Secret in use); ``retire`` then deletes every other
  token Secret of ours, which revokes the old token (a token of a deleted Secret
  is no longer accepted);
* destroy unregisters: the hub Secret first (Argo CD stops using the cluster),
  then the token Secrets, binding, role and ServiceAccount, then Vault.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootstrap import hub
from bootstrap.clients import argocd
from bootstrap.clients import kit as kit_catalog
from bootstrap.errors import ConfigError, PermanentError
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Stage, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.vault import VersionedSecret
    from bootstrap.config import CustomerConfig

MANAGER = argocd.field_manager("cluster-register")
NAMESPACE = "kube-system"
"""Where the ServiceAccount and its token live: present on every cluster, as ``argocd cluster add`` uses."""
ACCOUNT = "bootstrap-argocd-manager"
TOKEN_PREFIX = f"{ACCOUNT}-token-"
TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_ANNOTATION = "kubernetes.io/service-account.name"
COMPONENT = f"{hub.PREFIX}/component"
TOKEN_COMPONENT = "cluster-token"
TOKEN_IN_USE = f"{hub.PREFIX}/token-secret"
"""Annotation of the hub Secret: which token Secret's token it carries (a name, never the token)."""
CONFIG_VAR = "cluster_config"
TOKEN_WAIT = 60.0
RBAC_API = "rbac.authorization.k8s.io/v1"
RULES = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["*"], "verbs": ["*"]},
]
_GENERATION = re.compile(rf"^{re.escape(TOKEN_PREFIX)}(\d+)$")


def token_secret_name(generation: int) -> str:
    return f"{TOKEN_PREFIX}{generation}"


def vault_path(config: CustomerConfig) -> str:
    return config.vault_path("cluster-token")


def _hub(config: CustomerConfig) -> Any:
    if config.hub is None:  # the step list of a standalone customer does not hold this step
        raise ConfigError("hub: cluster-register runs in hub mode only; add a hub: section to customer.yaml")
    return config.hub


@dataclass(frozen=True)
class _Seen:
    """What plan observed, in the order the truth flows (cluster → Vault → hub); apply works from it.

    The token is known only when the token Secret was there and filled; otherwise apply
    learns it from the Secret it creates (or waits for). Never printed.
    """

    token_name: str
    token: str = field(repr=False)
    """The live token Secret's token ("" when absent or not yet filled)."""
    ca: str = field(repr=False)
    server: str
    kubernetes_version: str


@dataclass(frozen=True)
class ApplyAccount:
    """The ServiceAccount, its ClusterRole and ClusterRoleBinding, applied server-side."""


@dataclass(frozen=True)
class CreateToken:
    """The token Secret ``name``; the control plane's token controller fills it."""

    name: str


@dataclass(frozen=True)
class StoreToken:
    """The token of Secret ``name`` into Vault, check-and-set at the version plan read (``cas``)."""

    name: str
    cas: int


@dataclass(frozen=True)
class Register:
    """The hub's cluster Secret: ``server``, ``labels`` and the token of Secret ``token_name``."""

    server: str
    labels: tuple[tuple[str, str], ...]
    token_name: str


@dataclass(frozen=True)
class Delete:
    """Delete one object, from the hub (``hub``) or from the customer cluster."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    hub: bool = False

    def ref(self) -> dict[str, str]:
        ns = {"namespace": self.namespace} if self.namespace else {}
        return {"apiVersion": self.api_version, "kind": self.kind, **ns, "name": self.name}


@dataclass(frozen=True)
class DeleteVault:
    path: str


class ClusterRegister(Step):
    id = StepId("cluster-register")
    title = "Register the cluster in the hub's Argo CD"
    modes = frozenset({"hub"})
    reads = ("customer.name", "kit", "cluster", "hub", "vault.mount", "vault.prefix")
    rotations = ("cluster-token",)

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        ns = _hub(config).namespace
        return (
            Need("kit", config.kit.repo),
            Need("vault", vault_path(config), ("read", "write")),
            Need.cluster(
                "",
                (*APPLY, "delete"),
                "clusterroles.rbac.authorization.k8s.io",
                "clusterrolebindings.rbac.authorization.k8s.io",
            ),
            Need.cluster(NAMESPACE, (*APPLY, "list", "delete"), "serviceaccounts", "secrets"),
            Need("hub", ns, tuple(f"{v} secrets" for v in (*APPLY, "list", "delete"))),
        )

    # -- run -------------------------------------------------------------------------
    def plan(self, ctx: Context) -> Plan:
        seen, changes = _observe(ctx)
        return Plan(changes, outputs=_outputs(ctx, seen), observed=seen)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """The planned writes, in order (customer cluster → Vault → hub), from what plan observed."""
        seen = plan.observed_as(_Seen)
        ops = [c.payload for c in plan.changes]
        objects = _rbac_objects() if any(isinstance(op, ApplyAccount) for op in ops) else []
        objects += [_token_secret(op.name) for op in ops if isinstance(op, CreateToken)]
        if objects:
            names = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects)
            ctx.intend(f"apply {names} to the customer cluster")
            _apply_customer(ctx, objects)
        token, ca = seen.token, seen.ca
        if not token and any(isinstance(op, StoreToken | Register) for op in ops):
            # Unknown when planned: the Secret was created just now or not yet filled.
            ctx.progress(f"waiting for the token controller to fill {NAMESPACE}/{seen.token_name}")
            data = ctx.services.kube.wait_secret_keys(
                NAMESPACE,
                seen.token_name,
                ("token", "ca.crt"),
                TOKEN_WAIT,
                "the cluster's token controller fills it; is the ServiceAccount there?",
            )
            token, ca = ctx.secrets.generated(data["token"]), data["ca.crt"]
        for op in ops:
            match op:
                case StoreToken(name=name, cas=cas):
                    ctx.intend(f"store the cluster token of {name} in Vault {vault_path(ctx.config)}")
                    ctx.services.vault.write(
                        vault_path(ctx.config), {"token": token, "ca_data": _b64(ca)}, cas, {"secret": name}
                    )
                case Register():
                    _register(ctx, op, token, _b64(ca))
        return dict(plan.outputs)

    def verify(self, ctx: Context) -> None:
        _, changes = _observe(ctx)
        for change in changes:
            raise PermanentError(f"{change.target} is not as registered: {change.summary}")

    # -- destroy ---------------------------------------------------------------------
    def plan_destroy(self, ctx: Context) -> Plan:
        """Unregister first (Argo CD stops using the cluster), then the cluster's objects, Vault last."""
        cfg = _hub(ctx.config)
        changes = []
        name = _hub_secret_name(ctx)
        if ctx.services.hub_kube.get("v1", "Secret", cfg.namespace, name) is not None:
            op = Delete("v1", "Secret", cfg.namespace, name, hub=True)
            changes.append(
                Change(Action.DELETE, f"Secret {cfg.namespace}/{name} in the hub", "unregister", payload=op)
            )
        for token in _token_secrets(ctx):
            op = Delete("v1", "Secret", NAMESPACE, token)
            changes.append(Change(Action.DELETE, f"Secret {NAMESPACE}/{token}", "unregister", payload=op))
        for ref in _rbac_refs():
            if ctx.services.kube.get(ref["apiVersion"], ref["kind"], ref.get("namespace"), ref["name"]):
                op = Delete(ref["apiVersion"], ref["kind"], ref.get("namespace"), ref["name"])
                changes.append(
                    Change(Action.DELETE, f"{ref['kind']} {ref['name']}", "unregister", payload=op)
                )
        path = vault_path(ctx.config)
        if ctx.services.vault.read_version(path) is not None:
            target = f"Vault {ctx.config.vault.mount}/{path}"
            changes.append(Change(Action.DELETE, target, "unregister", payload=DeleteVault(path)))
        return Plan(tuple(changes))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        cfg = _hub(ctx.config)
        ops = [c.payload for c in plan.changes]
        in_hub = [op for op in ops if isinstance(op, Delete) and op.hub]
        for op in in_hub:
            ctx.intend(f"delete the cluster Secret {op.namespace}/{op.name} from the hub (unregister)")
        if in_hub:
            ctx.services.ansible.delete([op.ref() for op in in_hub], ctx.services.hub_kubeconfig, cfg.context)
        _delete_customer(ctx, [op for op in ops if isinstance(op, Delete) and not op.hub])
        for vault in (op for op in ops if isinstance(op, DeleteVault)):
            ctx.intend(f"delete Vault {vault.path}")
            ctx.services.vault.delete(vault.path)

    # -- rotate ----------------------------------------------------------------------
    def plan_rotate(self, ctx: Context, what: str) -> Plan:
        stored = ctx.services.vault.read_version(vault_path(ctx.config))
        current = _current_name(stored)
        if _in_use(ctx) != current:
            return Plan()  # Vault already holds a token the hub does not carry yet: a staged rotation
        new = _next_token(current)
        stage = Stage(stored.version if stored is not None else 0, current)
        return Plan(
            (
                Change(
                    Action.REPLACE,
                    f"Secret {NAMESPACE}/{new}",
                    f"new cluster token in {new}; {current} is retired once the hub uses the new one",
                    payload=stage,
                ),
            )
        )

    def rotate(self, ctx: Context, plan: Plan) -> Outputs:
        stage = plan.changes[0].payload_as(Stage)
        new = _next_token(stage.old)
        ctx.intend(f"create the token Secret {NAMESPACE}/{new} for the new cluster token")
        _apply_customer(ctx, [_token_secret(new)])
        data = ctx.services.kube.wait_secret_keys(
            NAMESPACE, new, ("token", "ca.crt"), TOKEN_WAIT, "the cluster's token controller fills it"
        )
        token = ctx.secrets.generated(data["token"])
        ctx.intend(f"store the new cluster token of {new} in Vault {vault_path(ctx.config)}")
        ctx.services.vault.write(
            vault_path(ctx.config),
            {"token": token, "ca_data": _b64(data["ca.crt"])},
            stage.cas,
            {"secret": new},
        )
        return {"token_secret": f"{NAMESPACE}/{new}", "vault_path": vault_path(ctx.config)}

    def plan_retire(self, ctx: Context) -> Plan:
        stored = ctx.services.vault.read_version(vault_path(ctx.config))
        if stored is None:
            return Plan()
        current = _current_name(stored)
        if _in_use(ctx) != current:
            return Plan()  # the hub still uses an older token: keep it
        return Plan(
            tuple(
                Change(
                    Action.DELETE,
                    f"Secret {NAMESPACE}/{name}",
                    f"retired cluster token {name}",
                    payload=Delete("v1", "Secret", NAMESPACE, name),
                )
                for name in _token_secrets(ctx)
                if name != current
            )
        )

    def retire(self, ctx: Context, plan: Plan) -> None:
        """Delete the retired token Secrets, which revokes their tokens."""
        _delete_customer(ctx, [c.payload_as(Delete) for c in plan.changes])


# -- observation -------------------------------------------------------------------------
def _observe(ctx: Context) -> tuple[_Seen, tuple[Change, ...]]:
    cfg = _hub(ctx.config)
    kube = ctx.services.kube
    changes = []
    rbac = _rbac_change(kube)
    if rbac is not None:
        changes.append(rbac)
    stored = ctx.services.vault.read_version(vault_path(ctx.config))
    name = _current_name(stored)
    live_token = kube.get("v1", "Secret", NAMESPACE, name)
    missing = live_token is None or live_token.get("type") != TOKEN_TYPE
    if missing:
        changes.append(
            Change(
                Action.CREATE,
                f"Secret {NAMESPACE}/{name}",
                f"long-lived token of ServiceAccount {ACCOUNT} (the token controller fills it)",
                payload=CreateToken(name),
            )
        )
    data = {} if missing else argocd.secret_data(live_token)
    token = ctx.secrets.generated(data["token"]) if data.get("token") else ""
    ca = data.get("ca.crt", "")
    if not token or not _vault_holds(stored, token, ca, name):
        changes.append(
            Change(
                Action.CREATE if stored is None else Action.UPDATE,
                f"Vault {ctx.config.vault.mount}/{vault_path(ctx.config)}",
                f"the token of {name} ({argocd.MASK})",
                payload=StoreToken(name, stored.version if stored is not None else 0),
            )
        )
    major, minor = kube.version()
    version = hub.minor_version(major, minor)
    labels = hub.cluster_labels(ctx.config, _catalog(ctx), version)
    server = str(cfg.server) if cfg.server is not None else kube.server()
    live = ctx.services.hub_kube.get("v1", "Secret", cfg.namespace, _hub_secret_name(ctx))
    # Before the token exists its value is unknown: compare against what Vault or the cluster will hold.
    registration = _registration_change(
        ctx, live, labels, server, token or None, _b64(ca) if ca else None, name
    )
    if registration is not None:
        op = Register(server, tuple(labels.items()), name)
        changes.append(dataclasses.replace(registration, payload=op))
    seen = _Seen(name, token, ca, server, version)
    return seen, tuple(changes)


def _registration_change(
    ctx: Context,
    live: dict[str, Any] | None,
    labels: dict[str, str],
    server: str,
    token: str | None,
    ca_data: str | None,
    token_name: str,
) -> Change | None:
    """The hub Secret's change: labels shown one by one, the token masked; None when it matches."""
    cfg = _hub(ctx.config)
    target = f"Secret {cfg.namespace}/{_hub_secret_name(ctx)} in the hub"
    meta = (live or {}).get("metadata") or {}
    have_labels = meta.get("labels") or {}
    have = argocd.secret_data(live)
    lines = [
        f"~ label {k}: {have_labels[k]} -> {v}" if k in have_labels else f"+ label {k}: {v}"
        for k, v in labels.items()
        if have_labels.get(k) != v
    ]
    owned = _owned_labels(live)
    lines += [f"- label {k}" for k in sorted(owned - labels.keys()) if k in have_labels]
    name = ctx.config.hub_cluster_name or ""
    for key, want in (("name", name), ("server", server)):
        if have.get(key) != want:
            lines.append(f"{'~' if key in have else '+'} {key}: {want}")
    config = _parse_config(have.get("config"))
    if token is None or config.get("bearerToken") != token:
        lines.append(f"{'~' if config else '+'} config.bearerToken: {argocd.MASK}")
    if ca_data is None or (config.get("tlsClientConfig") or {}).get("caData") != ca_data:
        lines.append(f"{'~' if config else '+'} config.tlsClientConfig.caData: (the cluster's CA)")
    if (meta.get("annotations") or {}).get(TOKEN_IN_USE) != token_name:
        lines.append(f"~ annotation {TOKEN_IN_USE}: {token_name}")
    if not lines:
        return None
    action = Action.CREATE if live is None else Action.UPDATE
    what = "register the cluster" if live is None else "update the registration"
    return Change(action, target, f"{what} {name} ({server})", "\n".join(lines))


def _owned_labels(live: dict[str, Any] | None) -> set[str]:
    """Labels our field manager applied (a label we no longer apply is removed by the next apply)."""
    keys: set[str] = set()
    for entry in ((live or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == MANAGER and entry.get("operation") == "Apply":
            labels = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
            keys |= {k[2:] for k in labels if k.startswith("f:")}
    return keys


def _parse_config(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _rbac_change(kube: Any) -> Change | None:
    account = kube.get("v1", "ServiceAccount", NAMESPACE, ACCOUNT)
    role = kube.get(RBAC_API, "ClusterRole", None, ACCOUNT)
    binding = kube.get(RBAC_API, "ClusterRoleBinding", None, ACCOUNT)
    want_role, want_binding = _rbac_objects()[1:]
    problems = []
    if account is None:
        problems.append(f"+ ServiceAccount {NAMESPACE}/{ACCOUNT}")
    if role is None or role.get("rules") != want_role["rules"]:
        problems.append(f"{'+' if role is None else '~'} ClusterRole {ACCOUNT}: every verb on every resource")
    if binding is None or (
        binding.get("roleRef") != want_binding["roleRef"]
        or binding.get("subjects") != want_binding["subjects"]
    ):
        problems.append(f"{'+' if binding is None else '~'} ClusterRoleBinding {ACCOUNT}")
    if not problems:
        return None
    return Change(
        Action.CREATE if account is None and role is None else Action.UPDATE,
        f"ServiceAccount {NAMESPACE}/{ACCOUNT} and its RBAC",
        "the identity the hub's Argo CD manages this cluster as",
        "\n".join(problems),
        payload=ApplyAccount(),
    )


def _vault_holds(stored: VersionedSecret | None, token: str, ca: str, name: str) -> bool:
    return (
        stored is not None
        and stored.data.get("token") == token
        and stored.data.get("ca_data") == _b64(ca)
        and stored.custom_metadata.get("secret") == name
    )


def _current_name(stored: VersionedSecret | None) -> str:
    """The token Secret in use: Vault's record names it; the first one before anything is stored."""
    name = stored.custom_metadata.get("secret") if stored is not None else None
    return name if name and _GENERATION.match(name) else token_secret_name(1)


def _generation(name: str) -> int:
    match = _GENERATION.match(name)
    return int(match.group(1)) if match else 1


def _next_token(name: str) -> str:
    """The token Secret a rotation of ``name`` creates."""
    return token_secret_name(_generation(name) + 1)


def _in_use(ctx: Context) -> str | None:
    cfg = _hub(ctx.config)
    live = ctx.services.hub_kube.get("v1", "Secret", cfg.namespace, _hub_secret_name(ctx))
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    found = annotations.get(TOKEN_IN_USE)
    return str(found) if found else None


def _token_secrets(ctx: Context) -> list[str]:
    """Our token Secrets in the customer cluster, by label."""
    items = ctx.services.kube.list(
        "v1",
        "Secret",
        NAMESPACE,
        label_selector=f"{COMPONENT}={TOKEN_COMPONENT},{hub.MANAGED_BY}={hub.MANAGER}",
    )
    return sorted(str(i["metadata"]["name"]) for i in items)


def _catalog(ctx: Context) -> list[str]:
    kit = ctx.config.kit
    github = ctx.services.github
    head = github.branch_head(kit.repo, kit.version)
    if head is None:
        raise ConfigError(kit_catalog.missing_version(ctx.config, github.branches(kit.repo)))
    return kit_catalog.catalog(kit.repo, kit.version, github.read_file(kit.repo, head, kit_catalog.CATALOG))


# -- writes --------------------------------------------------------------------------------
def _labels() -> dict[str, str]:
    return {hub.MANAGED_BY: hub.MANAGER}


def _rbac_objects() -> list[dict[str, Any]]:
    meta = {"name": ACCOUNT, "labels": _labels()}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "namespace": NAMESPACE}},
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": meta, "rules": RULES},
        {
            "apiVersion": RBAC_API,
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}],
        },
    ]


def _rbac_refs() -> list[dict[str, str]]:
    """Reverse creation order: the binding goes before what it binds."""
    return [
        {"apiVersion": RBAC_API, "kind": "ClusterRoleBinding", "name": ACCOUNT},
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "name": ACCOUNT},
        {"apiVersion": "v1", "kind": "ServiceAccount", "namespace": NAMESPACE, "name": ACCOUNT},
    ]


def _token_secret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TOKEN_TYPE,
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {**_labels(), COMPONENT: TOKEN_COMPONENT},
            "annotations": {SA_ANNOTATION: ACCOUNT},
        },
    }


def _apply_customer(ctx: Context, objects: list[dict[str, Any]]) -> None:
    ctx.services.ansible.apply(objects, MANAGER, {}, ctx.services.kubeconfig, ctx.config.cluster.context)


def _delete_customer(ctx: Context, ops: list[Delete]) -> None:
    if not ops:
        return
    ctx.intend(f"delete {', '.join(f'{op.kind} {op.name}' for op in ops)} from the customer cluster")
    ctx.services.ansible.delete([op.ref() for op in ops], ctx.services.kubeconfig, ctx.config.cluster.context)


def _register(ctx: Context, op: Register, token: str, ca_data: str) -> None:
    cfg = _hub(ctx.config)
    name = ctx.config.hub_cluster_name or ""
    config = json.dumps({"bearerToken": token, "tlsClientConfig": {"caData": ca_data}}, sort_keys=True)
    data = {
        "name": argocd.b64(name),
        "server": argocd.b64(op.server),
        "config": argocd.secret_placeholder(CONFIG_VAR),
    }
    secret = argocd.secret(_hub_secret_name(ctx), cfg.namespace, data, dict(op.labels))
    secret["metadata"]["annotations"] = {TOKEN_IN_USE: op.token_name}
    ctx.intend(
        f"apply the cluster Secret {cfg.namespace}/{_hub_secret_name(ctx)} to the hub ({name}, {op.server})"
    )
    ctx.services.ansible.apply(
        [secret],
        MANAGER,
        {CONFIG_VAR: ctx.secrets.generated(config)},
        ctx.services.hub_kubeconfig,
        cfg.context,
    )


def _hub_secret_name(ctx: Context) -> str:
    return hub.cluster_secret_name(ctx.config.hub_cluster_name or ctx.config.customer.name)


def _b64(value: str) -> str:
    return argocd.b64(value) if value else ""


def _outputs(ctx: Context, seen: _Seen) -> Outputs:
    cfg = _hub(ctx.config)
    return {
        "cluster": ctx.config.hub_cluster_name,
        "server": seen.server,
        "hub_secret": f"{cfg.namespace}/{_hub_secret_name(ctx)}",
        "token_secret": f"{NAMESPACE}/{seen.token_name}",
        "vault_path": vault_path(ctx.config),
        "kubernetes_version": seen.kubernetes_version,
    }
