"""argocd-users: the admin and the listed local accounts of Argo CD.

Guarantees:

* only accounts that can log in (admin, and users with the ``login`` capability)
  get a password: Argo CD never lets an ``apiKey``-only account use one, so
  such an account gets none (a password left from before is removed from
  Vault); its credential is an API token its owner generates
  (``argocd account generate-token --account NAME``);
* plaintext passwords live only in Vault (``argocd/users/<name>`` {password},
  written check-and-set before anything else, so a crash never loses one);
  the cluster only ever gets bcrypt hashes (cost 10, Argo CD's minimum);
* no new password on a re-run: a hash in ``argocd-secret`` that verifies
  against the Vault password is kept as is (with its passwordMtime), and a
  password is generated only when Vault has none;
* no bcrypt on a re-run where nothing changed: once a hash is in the cluster,
  a digest of it bound to the Vault version it was made from is kept in that
  path's custom metadata (``HASH_DIGEST``), so the same hash against the same
  password version is recognised by one SHA-256 instead of a bcrypt check
  (~50 ms of CPU per account, which dominates a fleet's no-op). Any other
  hash, or a new password version, falls back to bcrypt;
* accounts go into ``argocd-cm``, roles into ``argocd-rbac-cm``, hashes into
  ``argocd-secret``, all applied server-side as ``bootstrap-argocd-users``, so
  keys of the other steps in those objects are never touched. The keys this
  step owns (its managedFields) are the record of which accounts it manages:
  a user dropped from customer.yaml is removed by re-applying without it;
* plan() only reads (the cluster through the Kubernetes client, Vault), so a
  run with nothing to do starts no playbook;
* ``bootstrap rotate … passwords`` (``Rotatable``) writes a new password for
  every account as a new Vault version, marking it with the version it
  replaces; the normal plan then sees a hash that no longer verifies and applies
  the new one. The old version stays in Vault (the only password that works
  until then) and is destroyed by ``retire`` once the cluster's hash verifies
  against the new one. Killed in between, ``rotate`` or ``run`` applies what
  Vault holds; a staged password is never replaced by yet another.
* hub mode: the accounts go into the hub's shared objects as ``<customer>-<name>``,
  applied by a field manager per customer, with RBAC in ``policy.<customer>.csv``
  scoped to the customer's AppProject (see the hub-mode section at the end);
  the hub's admin is not the customer's and is never touched.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bootstrap.clients import argocd
from bootstrap.errors import PermanentError
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.vault import VersionedSecret  # the module imports hvac: not at start-up
    from bootstrap.config import CustomerConfig

MANAGER = argocd.field_manager("argocd-users")
COST = 10
_ACCOUNT_KEY = re.compile(r"^accounts\.([^.]+)$")


@dataclass(frozen=True)
class _Account:
    name: str
    vault_path: str
    password: str | None = field(repr=False)
    """From Vault; None when this account has none yet. Never in a repr."""
    hash_ok: bool
    """The cluster's hash (and its mtime) is there and verifies against the Vault password."""
    stored: VersionedSecret | None = None
    """The Vault record the password came from (its version and custom metadata)."""

    @property
    def prefix(self) -> str:
        return "admin" if self.name == "admin" else f"accounts.{self.name}"


@dataclass(frozen=True)
class _State:
    namespace_exists: bool
    accounts: tuple[_Account, ...]
    removed: tuple[str, ...]
    passwordless: tuple[str, ...]
    """apiKey-only accounts that still have a password in Vault (from before): it goes."""
    cm: dict[str, str]
    rbac: dict[str, str]
    secret: dict[str, str]
    owned: dict[str, set[str]]
    """Keys this step owns, per object name."""
    existing: frozenset[str]
    """Which of the three objects exist."""


@dataclass(frozen=True)
class NewPassword:
    """rotate: a new password for ``account`` as a new Vault version (check-and-set ``cas``, kept)."""

    account: str
    cas: int


@dataclass(frozen=True)
class DestroyOldVersions:
    """retire: the versions of ``path`` before ``current`` (the cluster's hash verifies the current one)."""

    path: str
    current: int


class ArgocdUsers(Step):
    id = StepId("argocd-users")
    title = "Argo CD admin and local users"
    reads = (
        "customer.name",
        "github.org",
        "argocd.namespace",
        "argocd.admin_enabled",
        "argocd.users",
        "argocd.rbac_default",
        "argocd.sso.admin_team",
        "vault.mount",
        "vault.prefix",
    )

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        if config.hub is not None:
            return _hub_checks(config)
        names = ("admin", *(u.name for u in config.argocd.users))
        return (
            *(Need("vault", config.vault_path("argocd", "users", n), ("read", "write")) for n in names),
            Need.cluster("", APPLY, "namespaces"),
            Need.cluster(config.argocd.namespace, APPLY, "configmaps", "secrets"),
        )

    def plan(self, ctx: Context) -> Plan:
        if ctx.config.hub is not None:
            return _hub_plan(ctx)
        state = _observe(ctx)
        ns = ctx.config.argocd.namespace
        changes: list[Change] = []
        if not state.namespace_exists:
            changes.append(Change(Action.CREATE, f"Namespace {ns}", "create the namespace for Argo CD"))
        for acc in state.accounts:
            if acc.password is None:
                changes.append(
                    Change(
                        Action.CREATE,
                        f"Argo CD account {acc.name}",
                        f"new password into Vault {acc.vault_path}; its hash into {ns}/{argocd.SECRET}",
                    )
                )
            elif not acc.hash_ok:
                changes.append(
                    Change(
                        Action.UPDATE,
                        f"Argo CD account {acc.name}",
                        f"the hash in {ns}/{argocd.SECRET} does not match the Vault password; set it again",
                    )
                )
        for name in state.removed:
            changes.append(
                Change(
                    Action.DELETE,
                    f"Argo CD account {name}",
                    f"no longer in customer.yaml: remove its keys and Vault {_vault_path(ctx, name)}",
                )
            )
        for name in state.passwordless:
            changes.append(
                Change(
                    Action.DELETE,
                    f"Argo CD account {name}",
                    f"apiKey only (cannot log in): remove its password from Vault {_vault_path(ctx, name)}",
                )
            )
        for obj, what, current, desired, masked in (
            (argocd.CM, "accounts", state.cm, _cm(ctx), False),
            (argocd.RBAC, "roles", state.rbac, _rbac(ctx), False),
            (argocd.SECRET, "password hashes", state.secret, _secret_plan(state), True),
        ):
            drop = state.owned[obj] - set(desired)
            text = argocd.diff(current, desired, drop, masked)
            if text:
                action = Action.UPDATE if obj in state.existing else Action.CREATE
                changes.append(
                    Change(
                        action,
                        f"ConfigMap {ns}/{obj}" if not masked else f"Secret {ns}/{obj}",
                        what,
                        text,
                    )
                )
        return Plan(tuple(changes), outputs=_outputs(state), observed=state)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """Apply what the plan observed and showed (its accounts, hashes and removals), not a new look."""
        if ctx.config.hub is not None:
            return _hub_apply(ctx)
        state = plan.observed_as(_State)
        vault = ctx.services.vault
        secret_vars, secret_data, versions = _hashes(ctx, state)
        ns = ctx.config.argocd.namespace
        # The Namespace only when the plan creates it: applying an existing one is no change it listed.
        manifests = [] if state.namespace_exists else [argocd.namespace(ns)]
        manifests += [
            argocd.config_map(argocd.CM, ns, _cm(ctx)),
            argocd.config_map(argocd.RBAC, ns, _rbac(ctx)),
            argocd.secret(argocd.SECRET, ns, secret_data),
        ]
        names = ", ".join(a.name for a in state.accounts)
        ctx.intend(f"apply Argo CD accounts {names} to {ns} as {MANAGER}")
        ctx.progress(f"applying accounts {names} to namespace {ns} (ansible)")
        _ansible_apply(ctx, manifests, secret_vars)
        _record_hashes(ctx, state, secret_vars, versions)
        for name in state.removed:
            ctx.intend(f"delete Vault {_vault_path(ctx, name)} of removed Argo CD account {name}")
            vault.delete(_vault_path(ctx, name))
        for name in state.passwordless:
            ctx.intend(f"delete Vault {_vault_path(ctx, name)}: apiKey-only account {name} has no password")
            vault.delete(_vault_path(ctx, name))
        return _outputs(state)

    def verify(self, ctx: Context) -> None:
        if ctx.config.hub is not None:
            return _hub_verify(ctx)
        state = _observe(ctx)
        ns = ctx.config.argocd.namespace
        bad = [a.name for a in state.accounts if not a.hash_ok]
        if bad:
            raise PermanentError(
                f"password hash of {', '.join(bad)} in {ns}/{argocd.SECRET} does not match Vault; "
                "something else changed it: run again to set it back"
            )
        for obj, current, desired in ((argocd.CM, state.cm, _cm(ctx)), (argocd.RBAC, state.rbac, _rbac(ctx))):
            wrong = sorted(k for k, v in desired.items() if current.get(k) != v)
            if wrong:
                raise PermanentError(f"{ns}/{obj} does not hold the expected {', '.join(wrong)}; run again")
        if state.removed:
            raise PermanentError(f"removed accounts {', '.join(state.removed)} are still in {ns}/{argocd.CM}")

    def plan_destroy(self, ctx: Context) -> Plan:
        if ctx.config.hub is not None:
            return _hub_plan_destroy(ctx)
        state = _observe(ctx)
        ns = ctx.config.argocd.namespace
        changes = [
            Change(Action.DELETE, f"{ns}/{obj}", f"remove keys {', '.join(sorted(keys))}")
            for obj, keys in state.owned.items()
            if keys
        ]
        for name in _all_names(state):
            if ctx.services.vault.read(_vault_path(ctx, name)) is not None:
                changes.append(
                    Change(Action.DELETE, f"Vault {_vault_path(ctx, name)}", "the account's password")
                )
        return Plan(tuple(changes))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        if ctx.config.hub is not None:
            return _hub_destroy(ctx)
        state = _observe(ctx)
        ns = ctx.config.argocd.namespace
        # Applying an object with no data as our manager makes the API server drop every key we own.
        empty = [
            argocd.secret(obj, ns, {}) if obj == argocd.SECRET else argocd.config_map(obj, ns, {})
            for obj, keys in state.owned.items()
            if keys
        ]
        if empty:
            ctx.intend(f"remove the keys of {MANAGER} from {', '.join(o['metadata']['name'] for o in empty)}")
            _ansible_apply(ctx, empty, {})
        for name in _all_names(state):
            ctx.intend(f"delete Vault {_vault_path(ctx, name)}")
            ctx.services.vault.delete(_vault_path(ctx, name))

    # -- rotation (Rotatable) ---------------------------------------------------
    rotations = ("passwords",)

    def plan_rotate(self, ctx: Context, what: str) -> Plan:
        vault = ctx.services.vault
        names = _login_names(ctx)
        stored = {name: vault.read_version(_vault_path(ctx, name)) for name in names}
        # A password staged by a rotate that did not finish is rolled out, never replaced again.
        stored = {n: v for n, v in stored.items() if v is None or REPLACES not in v.custom_metadata}
        missing = [name for name, v in stored.items() if v is None or not v.data.get("password")]
        if missing:
            raise PermanentError(
                f"Vault has no password for {', '.join(missing)} to rotate; run `bootstrap run` first"
            )
        return Plan(
            tuple(
                Change(
                    Action.UPDATE,
                    f"Argo CD account {name}",
                    f"new password into Vault {_vault_path(ctx, name)} (version {v.version + 1}); "
                    f"version {v.version} is kept until {argocd.SECRET} has the new hash",
                    "~ password: ******** -> ********",
                    payload=NewPassword(name, v.version),
                )
                for name, v in stored.items()
                if v is not None
            )
        )

    def rotate(self, ctx: Context, plan: Plan) -> Outputs:
        staged = [c.payload_as(NewPassword) for c in plan.changes]
        for op in staged:
            name, cas = op.account, op.cas
            path = _vault_path(ctx, name)
            ctx.intend(
                f"store a new password for Argo CD account {name} at Vault {path} (version {cas} kept)"
            )
            password = ctx.secrets.generated(secrets.token_urlsafe(32))
            ctx.services.vault.write(path, {"password": password}, cas=cas, metadata={REPLACES: str(cas)})
        return {"rotated": [op.account for op in staged]}

    def plan_retire(self, ctx: Context) -> Plan:
        # Every run asks (a crashed rotate is finished by a plain run): Vault's marks come first,
        # so that with no rotation staged (nearly always) the cluster is not read again.
        marked = {
            path: stored
            for path in (_vault_path(ctx, name) for name in _login_names(ctx))
            if (stored := ctx.services.vault.read_version(path)) is not None
            and REPLACES in stored.custom_metadata
        }
        if not marked:
            return Plan()
        state = _observe(ctx)
        changes = []
        for acc in state.accounts:
            stored = marked.get(acc.vault_path)
            if stored is not None and acc.hash_ok:
                changes.append(
                    Change(
                        Action.DELETE,
                        f"Vault {acc.vault_path} versions before {stored.version}",
                        f"destroy the replaced passwords of {acc.name} (the cluster has the new hash)",
                        payload=DestroyOldVersions(acc.vault_path, stored.version),
                    )
                )
        return Plan(tuple(changes))

    def retire(self, ctx: Context, plan: Plan) -> None:
        for op in (c.payload_as(DestroyOldVersions) for c in plan.changes):
            path, current = op.path, op.current
            ctx.intend(f"destroy the versions of Vault {path} before {current} (replaced passwords)")
            ctx.services.vault.destroy_versions(path, list(range(1, current)))
            # The hash digest stays valid (same version, same hash): only the rotation mark goes.
            stored = ctx.services.vault.read_version(path)
            kept = {k: v for k, v in (stored.custom_metadata if stored else {}).items() if k != REPLACES}
            ctx.services.vault.set_metadata(path, kept)


REPLACES = "replaces_version"
"""Vault metadata of a rotated password: the version it replaces; older ones go once the new hash is live."""


def _observe(ctx: Context) -> _State:
    if ctx.config.hub is not None:
        return _hub_observe(ctx)
    ns = ctx.config.argocd.namespace
    kube = ctx.services.kube
    objs = {
        argocd.CM: kube.get("v1", "ConfigMap", ns, argocd.CM),
        argocd.RBAC: kube.get("v1", "ConfigMap", ns, argocd.RBAC),
    }
    secret_obj = kube.get("v1", "Secret", ns, argocd.SECRET)
    secret_data = argocd.secret_data(secret_obj)
    accounts = [_account(ctx, name, name, secret_data) for name in _login_names(ctx)]
    owned = {obj: argocd.owned_keys(o, MANAGER) for obj, o in objs.items()}
    owned[argocd.SECRET] = argocd.owned_keys(secret_obj, MANAGER)
    wanted = {a.name for a in accounts}
    managed = {m.group(1) for k in owned[argocd.CM] if (m := _ACCOUNT_KEY.match(k))}
    existing = frozenset(n for n, o in (*objs.items(), (argocd.SECRET, secret_obj)) if o is not None)
    return _State(
        # An object found in the namespace proves it exists: no extra read on a re-run.
        namespace_exists=bool(existing) or kube.get("v1", "Namespace", None, ns) is not None,
        accounts=tuple(accounts),
        removed=tuple(sorted(managed - {u.name for u in ctx.config.argocd.users})),
        passwordless=tuple(
            u.name
            for u in ctx.config.argocd.users
            if u.name not in wanted and ctx.services.vault.read(_vault_path(ctx, u.name)) is not None
        ),
        cm=argocd.config_data(objs[argocd.CM]),
        rbac=argocd.config_data(objs[argocd.RBAC]),
        secret=secret_data,
        owned=owned,
        existing=existing,
    )


HASH_DIGEST = "hash_sha256"
"""Vault metadata: SHA-256 of "<version>:<bcrypt hash>" for the hash last applied from that version."""


def _digest(version: int, hashed: str) -> str:
    return hashlib.sha256(f"{version}:{hashed}".encode()).hexdigest()


def _recorded(stored: VersionedSecret | None, hashed: str) -> bool:
    """Whether ``hashed`` is the hash this tool applied from the stored version (no bcrypt needed)."""
    return stored is not None and stored.custom_metadata.get(HASH_DIGEST) == _digest(stored.version, hashed)


def _record_hash(ctx: Context, path: str, version: int, metadata: dict[str, str], hashed: str) -> None:
    """Keep the digest of the applied hash beside the password (merged into the path's metadata)."""
    digest = _digest(version, hashed)
    if metadata.get(HASH_DIGEST) != digest:
        ctx.services.vault.set_metadata(path, {**metadata, HASH_DIGEST: digest})


_Versions = dict[str, tuple[int, dict[str, str]]]
"""Per account: the Vault version its password was read or written as, and that version's metadata."""


def _record_hashes(ctx: Context, state: _State, secret_vars: dict[str, str], versions: _Versions) -> None:
    """After the apply: the digest of each applied hash beside its password (a no-op skips bcrypt)."""
    for i, acc in enumerate(state.accounts):
        version, metadata = versions[acc.name]
        _record_hash(ctx, acc.vault_path, version, metadata, secret_vars[f"argocd_hash_{i}"])


def _hashes(ctx: Context, state: _State) -> tuple[dict[str, str], dict[str, str], _Versions]:
    """argocd-secret's keys for every account (hash placeholders), the hashes as secret vars, and
    the Vault version (with its metadata) each hash was made from, for ``_record_hash``.

    A password Vault lacks is generated and stored check-and-set first, so a crash never
    loses one; a cluster hash that verifies is kept with its mtime (no needless re-hash).
    """
    vault = ctx.services.vault
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret_vars: dict[str, str] = {}
    secret_data: dict[str, str] = {}
    versions = {a.name: (a.stored.version, a.stored.custom_metadata) for a in state.accounts if a.stored}
    for i, acc in enumerate(state.accounts):
        password = acc.password
        if password is None:
            ctx.intend(f"store a generated password for Argo CD account {acc.name} at Vault {acc.vault_path}")
            password = ctx.secrets.generated(secrets.token_urlsafe(32))
            versions[acc.name] = (vault.write(acc.vault_path, {"password": password}, cas=0), {})
        if acc.hash_ok:
            hashed, mtime = (
                state.secret[f"{acc.prefix}.password"],
                state.secret[f"{acc.prefix}.passwordMtime"],
            )
        else:
            import bcrypt  # slow to import and only needed when hashing

            hashed, mtime = bcrypt.hashpw(password.encode(), bcrypt.gensalt(COST)).decode(), now
        secret_vars[f"argocd_hash_{i}"] = hashed
        secret_data[f"{acc.prefix}.password"] = argocd.secret_placeholder(f"argocd_hash_{i}")
        secret_data[f"{acc.prefix}.passwordMtime"] = argocd.b64(mtime)
    return secret_vars, secret_data, versions


def _account(ctx: Context, name: str, account: str, secret_data: dict[str, str]) -> _Account:
    """customer.yaml's ``name`` as Argo CD ``account``: its Vault password and whether the hash fits."""
    path = _vault_path(ctx, name)
    stored = ctx.services.vault.read_version(path)
    given = stored.data.get("password") if stored is not None else None
    password = ctx.secrets.generated(given) if given else None
    acc = _Account(account, path, password, False)
    hashed = secret_data.get(f"{acc.prefix}.password")
    ok = (
        password is not None
        and hashed is not None
        and f"{acc.prefix}.passwordMtime" in secret_data
        and (_recorded(stored, hashed) or _verifies(password, hashed))
    )
    return _Account(account, path, password, ok, stored)


def _login_names(ctx: Context) -> tuple[str, ...]:
    """The accounts that get a password: admin and the users that may log in (no admin in a hub)."""
    if ctx.config.hub is not None:
        return tuple(u.name for u in ctx.config.argocd.users if "login" in u.capabilities)
    return ("admin", *(u.name for u in ctx.config.argocd.users if "login" in u.capabilities))


def _verifies(password: str, hashed: str) -> bool:
    try:
        import bcrypt

        return bool(bcrypt.checkpw(password.encode(), hashed.encode()))
    except ValueError:  # not a bcrypt hash at all (hand-edited): treat as wrong
        return False


def _cm(ctx: Context) -> dict[str, str]:
    data = {"admin.enabled": "true" if ctx.config.argocd.admin_enabled else "false"}
    for user in ctx.config.argocd.users:
        data[f"accounts.{user.name}"] = ", ".join(user.capabilities)
        data[f"accounts.{user.name}.enabled"] = "true"
    return data


def _rbac(ctx: Context) -> dict[str, str]:
    sso = ctx.config.argocd.sso
    lines = [f"g, {u.name}, {u.role}" for u in ctx.config.argocd.users]
    if sso.admin_team:
        lines.append(f"g, {ctx.config.github.org}:{sso.admin_team}, role:admin")
    return {
        "policy.csv": "".join(f"{line}\n" for line in lines),
        "policy.default": ctx.config.argocd.rbac_default,
    }


def _secret_plan(state: _State) -> dict[str, str | None]:
    """The argocd-secret keys we want; None where a new hash will be computed."""
    out: dict[str, str | None] = {}
    for acc in state.accounts:
        for key in (f"{acc.prefix}.password", f"{acc.prefix}.passwordMtime"):
            out[key] = state.secret[key] if acc.hash_ok else None
    return out


def _all_names(state: _State) -> list[str]:
    return sorted({a.name for a in state.accounts} | set(state.removed) | set(state.passwordless))


def _vault_path(ctx: Context, name: str) -> str:
    return ctx.config.vault_path("argocd", "users", name)


def _outputs(state: _State) -> Outputs:
    return {
        "users": [a.name for a in state.accounts],
        "vault_paths": {a.name: a.vault_path for a in state.accounts},
    }


def _ansible_apply(ctx: Context, manifests: list[dict[str, Any]], secret_vars: dict[str, str]) -> None:
    ctx.services.ansible.apply(
        manifests,
        MANAGER,
        secret_vars,
        ctx.services.kubeconfig,
        ctx.config.cluster.context,
    )


# -- hub mode --------------------------------------------------------------------------------
# In hub mode the accounts live in the hub's argocd-cm / argocd-secret / argocd-rbac-cm, which
# every customer of the hub shares. Three things keep customers apart:
# * account names are prefixed with the customer (``<customer>-<name>``), so two customers'
#   ``alice`` never meet;
# * each customer applies as its own field manager (``bootstrap-argocd-users-<customer>``):
#   server-side apply removes only the keys *that* manager applied before and left out now, so
#   a customer's apply (and its destroy, an apply with no keys) never touches another's;
# * its RBAC is one key of its own, ``policy.<customer>.csv``, which Argo CD concatenates after
#   ``policy.csv`` (docs/operator-manual/rbac.md, "Policy CSV Composition"), with roles that
#   reach only the customer's AppProject. The hub's admin, ``policy.csv`` and
#   ``policy.default`` belong to the hub's operator and are never written.
_HUB_ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "role:admin": (
        ("applications", "*"),
        ("applicationsets", "*"),
        ("logs", "get"),
        ("exec", "create"),
    ),
    "role:readonly": (("applications", "get"), ("applicationsets", "get"), ("logs", "get")),
}
"""What a customer.yaml role grants in a hub: the built-in role's rights, on the customer's project only."""


def hub_manager(customer: str) -> str:
    """The field manager of one customer's keys in the hub's shared Argo CD objects."""
    return f"{MANAGER}-{customer}"


def hub_account(customer: str, name: str) -> str:
    """A customer's account as the hub knows it: ``<customer>-<name>``."""
    return f"{customer}-{name}"


def hub_role(customer: str, role: str) -> str:
    """``role:admin`` of customer ``kuvaq`` → ``role:kuvaq-admin`` (scoped to project ``kuvaq``)."""
    return f"role:{customer}-{role.removeprefix('role:')}"


def _hub_ns(ctx: Context) -> str:
    assert ctx.config.hub is not None
    return ctx.config.hub.namespace


def _hub_checks(config: CustomerConfig) -> tuple[Need, ...]:
    assert config.hub is not None
    return (
        *(
            Need("vault", config.vault_path("argocd", "users", u.name), ("read", "write"))
            for u in config.argocd.users
        ),
        Need(
            "hub", config.hub.namespace, tuple(f"{v} {r}" for r in ("configmaps", "secrets") for v in APPLY)
        ),
    )


def _hub_observe(ctx: Context) -> _State:
    ns, kube, customer = _hub_ns(ctx), ctx.services.hub_kube, ctx.config.customer.name
    manager = hub_manager(customer)
    objs = {name: kube.get("v1", kind, ns, name) for name, kind in _HUB_OBJECTS}
    secret_data = argocd.secret_data(objs[argocd.SECRET])
    accounts = [_account(ctx, name, hub_account(customer, name), secret_data) for name in _login_names(ctx)]
    owned = {name: argocd.owned_keys(obj, manager) for name, obj in objs.items()}
    managed = {m.group(1) for k in owned[argocd.CM] if (m := _ACCOUNT_KEY.match(k))}
    wanted = {hub_account(customer, u.name) for u in ctx.config.argocd.users}
    return _State(
        namespace_exists=True,
        accounts=tuple(accounts),
        removed=tuple(sorted(managed - wanted)),
        passwordless=(),
        cm=argocd.config_data(objs[argocd.CM]),
        rbac=argocd.config_data(objs[argocd.RBAC]),
        secret=secret_data,
        owned=owned,
        existing=frozenset(n for n, o in objs.items() if o is not None),
    )


_HUB_OBJECTS = ((argocd.CM, "ConfigMap"), (argocd.RBAC, "ConfigMap"), (argocd.SECRET, "Secret"))


def _hub_cm(ctx: Context) -> dict[str, str]:
    customer = ctx.config.customer.name
    data: dict[str, str] = {}
    for user in ctx.config.argocd.users:
        data[f"accounts.{hub_account(customer, user.name)}"] = ", ".join(user.capabilities)
        data[f"accounts.{hub_account(customer, user.name)}.enabled"] = "true"
    return data


def _hub_rbac(ctx: Context) -> dict[str, str]:
    """``policy.<customer>.csv``: project-scoped roles, and who has them.

    Local users get their role's rights as direct policies, not through ``g`` lines: Argo CD
    advises that a local user given a role shares it with any SSO subject of the same name
    (rbac.md, "Local users/accounts"); the SSO admin team is a group and gets the role.
    """
    cfg = ctx.config
    customer = cfg.customer.name
    for i, user in enumerate(cfg.argocd.users):
        if user.role not in _HUB_ROLES:
            raise PermanentError(
                cfg.located(
                    f"argocd.users[{i}].role",
                    f"argocd.users[{i}].role: {user.role} has no meaning in a hub; "
                    f"use one of {', '.join(sorted(_HUB_ROLES))} (granted on project {customer} only)",
                )
            )

    def grants(subject: str, role: str) -> list[str]:
        lines = [f"p, {subject}, projects, get, {customer}, allow"]
        lines += [f"p, {subject}, {res}, {act}, {customer}/*, allow" for res, act in _HUB_ROLES[role]]
        return lines

    lines = [line for u in cfg.argocd.users for line in grants(hub_account(customer, u.name), u.role)]
    if cfg.argocd.sso.admin_team:
        lines += grants(hub_role(customer, "role:admin"), "role:admin")
        lines.append(f"g, {cfg.github.org}:{cfg.argocd.sso.admin_team}, {hub_role(customer, 'role:admin')}")
    return {f"policy.{customer}.csv": "".join(f"{line}\n" for line in lines)}


def _hub_plan(ctx: Context) -> Plan:
    state = _hub_observe(ctx)
    ns = _hub_ns(ctx)
    changes: list[Change] = []
    for acc in state.accounts:
        if acc.password is None or not acc.hash_ok:
            why = (
                "new password into Vault"
                if acc.password is None
                else "hash does not match the Vault password of"
            )
            changes.append(
                Change(
                    Action.CREATE if acc.password is None else Action.UPDATE,
                    f"Argo CD account {acc.name} in the hub",
                    f"{why} {acc.vault_path}; its hash into {ns}/{argocd.SECRET}",
                )
            )
    for name in state.removed:
        changes.append(
            Change(
                Action.DELETE,
                f"Argo CD account {name} in the hub",
                "no longer in customer.yaml: remove its keys",
            )
        )
    for obj, kind, current, desired, masked in (
        (argocd.CM, "ConfigMap", state.cm, _hub_cm(ctx), False),
        (argocd.RBAC, "ConfigMap", state.rbac, _hub_rbac(ctx), False),
        (argocd.SECRET, "Secret", state.secret, _secret_plan(state), True),
    ):
        text = argocd.diff(current, desired, state.owned[obj] - set(desired), masked)
        if text:
            action = Action.UPDATE if obj in state.existing else Action.CREATE
            changes.append(
                Change(action, f"{kind} {ns}/{obj} in the hub", f"keys of {ctx.config.customer.name}", text)
            )
    return Plan(tuple(changes), outputs=_outputs(state))


def _hub_apply(ctx: Context) -> Outputs:
    assert ctx.config.hub is not None
    state = _hub_observe(ctx)
    ns, customer = _hub_ns(ctx), ctx.config.customer.name
    secret_vars, secret_data, versions = _hashes(ctx, state)
    manifests = [
        argocd.config_map(argocd.CM, ns, _hub_cm(ctx)),
        argocd.config_map(argocd.RBAC, ns, _hub_rbac(ctx)),
        argocd.secret(argocd.SECRET, ns, secret_data),
    ]
    ctx.intend(f"apply the Argo CD accounts of {customer} to the hub's {ns} as {hub_manager(customer)}")
    _hub_ansible_apply(ctx, manifests, secret_vars)
    _record_hashes(ctx, state, secret_vars, versions)
    for name in state.removed:
        path = _vault_path(ctx, name.removeprefix(f"{customer}-"))
        ctx.intend(f"delete Vault {path} of removed Argo CD account {name}")
        ctx.services.vault.delete(path)
    return _outputs(state)


def _hub_verify(ctx: Context) -> None:
    state = _hub_observe(ctx)
    ns = _hub_ns(ctx)
    bad = [a.name for a in state.accounts if not a.hash_ok]
    if bad:
        raise PermanentError(
            f"password hash of {', '.join(bad)} in the hub's {ns}/{argocd.SECRET} does not match Vault"
        )
    for obj, current, desired in (
        (argocd.CM, state.cm, _hub_cm(ctx)),
        (argocd.RBAC, state.rbac, _hub_rbac(ctx)),
    ):
        wrong = sorted(k for k, v in desired.items() if current.get(k) != v)
        if wrong or state.removed:
            raise PermanentError(
                f"the hub's {ns}/{obj} does not hold the expected {', '.join(wrong or state.removed)}"
            )


def _hub_vault_names(ctx: Context, state: _State) -> list[str]:
    """Every customer.yaml name whose password Vault may hold (current and removed accounts)."""
    customer = ctx.config.customer.name
    names = {a.name for a in state.accounts} | set(state.removed)
    return sorted(n.removeprefix(f"{customer}-") for n in names)


def _hub_plan_destroy(ctx: Context) -> Plan:
    state = _hub_observe(ctx)
    ns = _hub_ns(ctx)
    changes = [
        Change(Action.DELETE, f"{ns}/{obj} in the hub", f"remove keys {', '.join(sorted(keys))}")
        for obj, keys in state.owned.items()
        if keys
    ]
    for name in _hub_vault_names(ctx, state):
        if ctx.services.vault.read(_vault_path(ctx, name)) is not None:
            changes.append(Change(Action.DELETE, f"Vault {_vault_path(ctx, name)}", "the account's password"))
    return Plan(tuple(changes))


def _hub_destroy(ctx: Context) -> None:
    state = _hub_observe(ctx)
    ns, customer = _hub_ns(ctx), ctx.config.customer.name
    # An apply with no keys as this customer's manager drops exactly this customer's keys.
    empty = [
        argocd.secret(obj, ns, {}) if kind == "Secret" else argocd.config_map(obj, ns, {})
        for obj, kind in _HUB_OBJECTS
        if state.owned[obj]
    ]
    if empty:
        names = ", ".join(o["metadata"]["name"] for o in empty)
        ctx.intend(f"remove the keys of {hub_manager(customer)} from the hub's {names}")
        _hub_ansible_apply(ctx, empty, {})
    for name in _hub_vault_names(ctx, state):
        ctx.intend(f"delete Vault {_vault_path(ctx, name)}")
        ctx.services.vault.delete(_vault_path(ctx, name))


def _hub_ansible_apply(ctx: Context, manifests: list[dict[str, Any]], secret_vars: dict[str, str]) -> None:
    assert ctx.config.hub is not None
    ctx.services.ansible.apply(
        manifests,
        hub_manager(ctx.config.customer.name),
        secret_vars,
        ctx.services.hub_kubeconfig,
        ctx.config.hub.context,
    )
