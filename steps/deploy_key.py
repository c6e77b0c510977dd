"""deploy-key: the read-only SSH key Argo CD reads the infra repo with.

What it guarantees:

- the key's identity is its deterministic title ``argocd-<customer>`` on the
  infra repo, and the truth about which key is *ours* is the private half in
  Vault (KV v2 at ``config.vault_path("deploy-key")``, ``{private_key,
  public_key}`` plus custom metadata ``{key_id, fingerprint}``). Exactly one key
  with our title must exist on GitHub, read-only, with the fingerprint of the
  key in Vault; anything else with our title is a leftover and is deleted;
- the private key is written to Vault *before* GitHub ever sees the public half
  (check-and-set: 0 if absent, else the version observed by plan), and the key
  id is recorded in the metadata last (``pending`` until then). Killed between
  any two writes, the next run converges without orphans or duplicates:

  * stored in Vault, not registered: Vault's key is registered (no new key);
  * registered, metadata still ``pending``: only the metadata is updated;
  * a rotation stored the new key but the old one is still on GitHub: Vault's
    is registered next to it; the old one goes in ``retire`` (see below);

- if Vault holds a key that GitHub lacks (deleted by hand, or the crash above),
  the public half is re-registered from Vault rather than a new key generated:
  it is cheaper, and an Argo CD that already holds the private half keeps
  working. A key on GitHub whose private half is missing from Vault is useless
  to us and is replaced by a new one;
- GitHub's 422 "key is already in use" (the key sits on another repo or a
  user) means a new key is generated and registered, once;
- no private key ever leaves Vault and the process: plans, outputs and the
  checkpoint carry only the fingerprint, key id, title and Vault path, and every
  private key seen is registered with the redaction registry;
- rotation (``bootstrap rotate … deploy-key``, see ``Rotatable``) stores a new
  key in Vault with the old key's id in the metadata as ``retiring_key_id``.
  That key is never treated as a leftover: the normal plan registers Vault's
  new key next to it, and only ``retire`` deletes it — which the engine calls
  once argocd-install has put the new key into the repo Secret and verified it.
  Killed anywhere in between, ``rotate`` or ``run`` again picks up from Vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bootstrap.clients import github_keys
from bootstrap.errors import PermanentError, RetryableError
from bootstrap.step import Action, Change, Context, Need, Outputs, Plan, Retire, Stage, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.github_keys import DeployKey as GitHubKey
    from bootstrap.clients.vault import VersionedSecret
    from bootstrap.config import CustomerConfig

PENDING = "pending"
"""The key id in Vault's metadata between storing the key and registering it on GitHub."""
RETIRING = "retiring_key_id"
"""Vault metadata: the id of the key a rotation replaces, kept on GitHub until the new one is live."""


def title(ctx: Context) -> str:
    return f"argocd-{ctx.config.customer.name}"


def vault_path(ctx: Context) -> str:
    return ctx.config.vault_path("deploy-key")


def generate() -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH PEM, public key ``ssh-ed25519 AAAA…``)."""
    return github_keys.generate()


def public_of(private_pem: str) -> str | None:
    """The OpenSSH public half of a stored private key; None if it is not a usable key."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@dataclass(frozen=True)
class Converge:
    """Reach one registered read-only key matching Vault, from what plan observed.

    ``vault_version`` is the Vault version plan saw: the check-and-set of a new key, or
    the proof (re-read in apply) that Vault did not change since the plan.
    """

    vault_version: int
    generate: bool
    delete: tuple[int, ...]
    """Ids of keys with our title that do not match Vault."""
    register: bool
    key_id: int | None = None
    """Only recording: this registered key's id goes into the Vault metadata."""


@dataclass(frozen=True)
class DeleteKey:
    key_id: int


@dataclass(frozen=True)
class DeleteVault:
    path: str


class DeployKey(Step):
    id = StepId("deploy-key")
    title = "Read-only deploy key for Argo CD"
    reads = (
        "customer.name",
        "github.api_url",
        "github.infra_repo",
        "vault.url",
        "vault.mount",
        "vault.prefix",
    )

    rotations = ("deploy-key",)

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        return (
            Need("github", config.github.infra_repo, ("administration:write",)),
            Need("vault", config.vault_path("deploy-key"), ("read", "write")),
        )

    def plan(self, ctx: Context) -> Plan:
        repo, name = ctx.config.github.infra_repo, title(ctx)
        stored = ctx.services.vault.read_version(vault_path(ctx))
        ours = _ours(ctx, stored)
        public = _stored_public(ctx, stored)
        target = f"{repo} deploy key {name}"
        version = stored.version if stored else 0
        if public is None:
            why = (
                f"; delete {len(ours)} key(s) titled {name} whose private half is not in Vault"
                if ours
                else ""
            )
            notes = (f"Vault {vault_path(ctx)} holds no usable private key",) if stored is not None else ()
            change = Change(
                Action.REPLACE if ours else Action.CREATE,
                target,
                f"generate an ed25519 key, store it in Vault, register it read-only{why}",
                _diff(name, ours, "(new key)"),
                payload=Converge(version, generate=True, delete=tuple(k.id for k in ours), register=True),
            )
            return Plan((change,), notes)
        fp = github_keys.fingerprint(public)
        match = next((k for k in ours if k.fingerprint == fp and k.read_only), None)
        stale = [k for k in ours if k is not match]
        if match is None:
            action = Action.REPLACE if stale else Action.CREATE
            why = f"; delete {len(stale)} stale key(s) with that title" if stale else ""
            return Plan(
                (
                    Change(
                        action,
                        target,
                        f"register the key stored in Vault ({fp}) read-only{why}",
                        _diff(name, stale, fp),
                        payload=Converge(
                            version, generate=False, delete=tuple(k.id for k in stale), register=True
                        ),
                    ),
                )
            )
        changes = []
        notes = ()
        if _retiring(stored) is not None:
            notes = (f"rotation: the old key {_retiring(stored)} stays until the new one is live everywhere",)
        if stale:
            changes.append(
                Change(
                    Action.DELETE,
                    target,
                    f"delete {len(stale)} leftover key(s) titled {name} that do not match Vault",
                    _diff(name, stale, None),
                    payload=Converge(
                        version, generate=False, delete=tuple(k.id for k in stale), register=False
                    ),
                )
            )
        meta = stored.custom_metadata if stored else {}
        if meta.get("key_id") != str(match.id) or meta.get("fingerprint") != fp:
            changes.append(
                Change(
                    Action.UPDATE,
                    f"vault {vault_path(ctx)}",
                    f"record key id {match.id} in the Vault metadata (was {meta.get('key_id') or 'unset'})",
                    payload=Converge(version, generate=False, delete=(), register=False, key_id=match.id),
                )
            )
        return Plan(tuple(changes), notes, outputs=_outputs(ctx, match.id, fp))

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        repo, name, path = ctx.config.github.infra_repo, title(ctx), vault_path(ctx)
        github, vault = ctx.services.github, ctx.services.vault
        ops = [c.payload_as(Converge) for c in plan.changes]
        version = ops[0].vault_version
        if any(op.generate for op in ops):
            public, version = self._store_new(ctx, version)
        else:
            stored = vault.read_version(path)
            from_vault = _stored_public(ctx, stored)
            if stored is None or from_vault is None or stored.version != version:
                raise RetryableError(f"Vault {path} changed since the plan; re-planning")
            public = from_vault
        for key_id in [i for op in ops for i in op.delete]:
            ctx.intend(f"delete deploy key {key_id} titled {name} from {repo} (does not match Vault)")
            github.delete_deploy_key(repo, key_id)
        recorded = next((op.key_id for op in ops if op.key_id is not None), None)
        if any(op.register for op in ops):
            key_id, public = self._register(ctx, public, version)
        elif recorded is not None:
            key_id = recorded
        else:
            return dict(plan.outputs)
        fp = github_keys.fingerprint(public)
        ctx.intend(f"record deploy key id {key_id} ({fp}) in the Vault metadata of {path}")
        retiring = _retiring(vault.read_version(path))
        vault.set_metadata(
            path, {"key_id": str(key_id), "fingerprint": fp, **({RETIRING: retiring} if retiring else {})}
        )
        return _outputs(ctx, key_id, fp)

    def _store_new(self, ctx: Context, cas: int) -> tuple[str, int]:
        """Generate a key and store it in Vault first (check-and-set); returns (public, new version)."""
        private, public = generate()
        ctx.secrets.generated(private)
        fp = github_keys.fingerprint(public)
        path = vault_path(ctx)
        ctx.intend(f"store new deploy key {fp} in Vault {path} (check-and-set {cas})")
        version = ctx.services.vault.write(
            path,
            {"private_key": private, "public_key": public},
            cas=cas,
            metadata={"key_id": PENDING, "fingerprint": fp},
        )
        return public, version

    def _register(self, ctx: Context, public: str, version: int) -> tuple[int, str]:
        """Register ``public`` read-only; on "already in use" store a new key and try once more.

        Returns the key id and the public key finally registered.
        """
        repo, name = ctx.config.github.infra_repo, title(ctx)
        for attempt in (1, 2):
            fp = github_keys.fingerprint(public)
            ctx.intend(f"add read-only deploy key {name} ({fp}) to {repo}")
            try:
                return ctx.services.github.add_deploy_key(repo, name, public, read_only=True).id, public
            except github_keys.KeyInUse as exc:
                here = exc.existing
                if here is not None and here.title == name and here.read_only:
                    return here.id, public  # registered by us a moment ago (a lost response): adopt it
                if attempt == 2:
                    raise PermanentError(
                        f"GitHub refused two new deploy keys for {repo} as already in use ({exc}); "
                        "check for a duplicate registration by hand, then run again"
                    ) from exc
                public, version = self._store_new(ctx, version)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def verify(self, ctx: Context) -> None:
        repo, name, path = ctx.config.github.infra_repo, title(ctx), vault_path(ctx)
        public = _stored_public(ctx, ctx.services.vault.read_version(path))
        if public is None:
            raise PermanentError(f"Vault {path} holds no usable private key; run again to replace the key")
        fp = github_keys.fingerprint(public)
        ours = _ours(ctx, ctx.services.vault.read_version(path))
        if [(k.fingerprint, k.read_only) for k in ours] != [(fp, True)]:
            found = ", ".join(
                f"{k.fingerprint} ({'read-only' if k.read_only else 'read-write'})" for k in ours
            )
            raise PermanentError(
                f"{repo} should have exactly one read-only deploy key {name} with fingerprint {fp}; "
                f"found: {found or 'none'}; run again to fix"
            )

    def plan_destroy(self, ctx: Context) -> Plan:
        repo, name, path = ctx.config.github.infra_repo, title(ctx), vault_path(ctx)
        changes = [
            Change(
                Action.DELETE,
                f"{repo} deploy key {name}",
                f"delete key {k.id} ({k.fingerprint})",
                payload=DeleteKey(k.id),
            )
            for k in ctx.services.github.list_deploy_keys(repo)
            if k.title == name
        ]
        if ctx.services.vault.read_version(path) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"vault {path}",
                    "delete the private key and its history",
                    payload=DeleteVault(path),
                )
            )
        return Plan(tuple(changes))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        repo = ctx.config.github.infra_repo
        # GitHub first: revoking access matters more than tidying the vault, and both are found
        # again by their deterministic names if this is interrupted.
        for change in plan.changes:
            if isinstance(change.payload, DeleteKey):
                ctx.intend(f"delete deploy key {change.payload.key_id} from {repo}")
                ctx.services.github.delete_deploy_key(repo, change.payload.key_id)
        for change in plan.changes:
            if isinstance(change.payload, DeleteVault):
                ctx.intend(f"delete Vault {change.payload.path}")
                ctx.services.vault.delete(change.payload.path)

    # -- rotation (Rotatable) ---------------------------------------------------
    def plan_rotate(self, ctx: Context, what: str) -> Plan:
        path = vault_path(ctx)
        stored = ctx.services.vault.read_version(path)
        if _retiring(stored) is not None:
            return Plan()  # staged by a rotate that did not finish: roll that key out, no new one
        key_id = stored.custom_metadata.get("key_id") if stored else None
        if stored is None or not key_id or key_id == PENDING or _stored_public(ctx, stored) is None:
            raise PermanentError(
                f"Vault {path} holds no registered deploy key to rotate; run `bootstrap run` first"
            )
        target = f"{ctx.config.github.infra_repo} deploy key {title(ctx)}"
        summary = (
            f"generate a new ed25519 key into Vault {path}, register it read-only, put it in the repo "
            f"Secret, then delete the old key {key_id}"
        )
        diff = f"- {title(ctx)} {stored.custom_metadata.get('fingerprint')} (id {key_id}) after the rollout\n"
        diff += f"+ {title(ctx)} (new key, read-only); private key → Vault (********)"
        return Plan((Change(Action.REPLACE, target, summary, diff, payload=Stage(stored.version, key_id)),))

    def rotate(self, ctx: Context, plan: Plan) -> Outputs:
        stage = plan.changes[0].payload_as(Stage)
        private, public = generate()
        ctx.secrets.generated(private)
        fp = github_keys.fingerprint(public)
        path = vault_path(ctx)
        ctx.intend(f"store the new deploy key {fp} in Vault {path}; the old key {stage.old} is retiring")
        ctx.services.vault.write(
            path,
            {"private_key": private, "public_key": public},
            cas=stage.cas,
            metadata={"key_id": PENDING, "fingerprint": fp, RETIRING: stage.old},
        )
        return {"fingerprint": fp, RETIRING: stage.old, "vault_path": path}

    def plan_retire(self, ctx: Context) -> Plan:
        stored = ctx.services.vault.read_version(vault_path(ctx))
        old = _retiring(stored)
        key_id = stored.custom_metadata.get("key_id") if stored else None
        if stored is None or old is None or not key_id or key_id in (PENDING, old):
            return Plan()  # nothing staged, or the new key is not registered yet
        repo = ctx.config.github.infra_repo
        present = any(str(k.id) == old for k in ctx.services.github.list_deploy_keys(repo))
        summary = f"delete the old deploy key {old} from {repo}" if present else f"forget retired key {old}"
        return Plan(
            (
                Change(
                    Action.DELETE,
                    f"{repo} deploy key {title(ctx)}",
                    summary,
                    payload=Retire(old, present),
                ),
            )
        )

    def retire(self, ctx: Context, plan: Plan) -> None:
        repo, path = ctx.config.github.infra_repo, vault_path(ctx)
        retiring = plan.changes[0].payload_as(Retire)
        if retiring.present:
            ctx.intend(f"delete the retired deploy key {retiring.old} from {repo}")
            ctx.services.github.delete_deploy_key(repo, int(retiring.old))
        stored = ctx.services.vault.read_version(path)
        meta = {k: v for k, v in (stored.custom_metadata if stored else {}).items() if k != RETIRING}
        ctx.intend(f"clear {RETIRING} {retiring.old} from the Vault metadata of {path}")
        ctx.services.vault.set_metadata(path, meta)


def _retiring(stored: VersionedSecret | None) -> str | None:
    """The id of the key a rotation is replacing, if one is under way."""
    if stored is None:
        return None
    meta = stored.custom_metadata
    if meta.get(RETIRING):
        return meta[RETIRING]
    # Killed between a rotation's two Vault writes: the new key is stored, the metadata still
    # names the registered old key, which must stay until the new one is live.
    key_id, public = meta.get("key_id"), stored.data.get("public_key")
    if key_id and key_id != PENDING and public and meta.get("fingerprint") != github_keys.fingerprint(public):
        return key_id
    return None


def _ours(ctx: Context, stored: VersionedSecret | None) -> list[GitHubKey]:
    """Keys with our title, except the one a rotation is retiring (it stays until retire())."""
    retiring = _retiring(stored)
    return [
        k
        for k in ctx.services.github.list_deploy_keys(ctx.config.github.infra_repo)
        if k.title == title(ctx) and str(k.id) != retiring
    ]


def _stored_public(ctx: Context, stored: VersionedSecret | None) -> str | None:
    """The public half of the private key in Vault (the private key is the truth), if usable."""
    private = stored.data.get("private_key") if stored else None
    if not private:
        return None
    ctx.secrets.generated(private)
    return public_of(private)


def _diff(name: str, removed: list[GitHubKey], added: str | None) -> str:
    lines = [
        f"- {name} {k.fingerprint} (id {k.id}, {'read-only' if k.read_only else 'read-write'})"
        for k in removed
    ]
    if added is not None:
        lines.append(f"+ {name} {added} (read-only); private key → Vault (********)")
    return "\n".join(lines)


def _outputs(ctx: Context, key_id: int, fp: str) -> Outputs:
    return {"key_id": key_id, "fingerprint": fp, "title": title(ctx), "vault_path": vault_path(ctx)}
