"""argocd-users against the Kubernetes emulator (through real Ansible) and the real OpenBao.

Each Ansible run costs seconds, so the main test walks one customer through
create → no-op → (drift + a user swapped) with two playbook runs in total.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import bcrypt

from bootstrap.clients import argocd
from bootstrap.clients.kubernetes import KubeClient
from bootstrap.step import Action, Change, Plan
from steps.argocd_users import HASH_DIGEST, MANAGER, ArgocdUsers
from tests.fixtures.world import World
from tests.steps.cluster_run import apply_from, destroy, kube_writes, run, secrets_in, state_text

NS = "argocd"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def passwords(world: World, *names: str) -> dict[str, str]:
    out = {}
    for name in names:
        record = world.vault.client.read(f"{world.vault.prefix}/kuvaq/argocd/users/{name}")
        assert record is not None, name
        out[name] = record["password"]
    return out


def secret(world: World) -> dict[str, str]:
    return argocd.secret_data(world.kube.get("v1", "Secret", NS, argocd.SECRET))


def cm(world: World, name: str) -> dict[str, str]:
    return argocd.config_data(world.kube.get("v1", "ConfigMap", NS, name))


LOGIN_DEPLOYER = {"users": [{"name": "deployer", "capabilities": ["apiKey", "login"], "role": "role:admin"}]}


def test_accounts_idempotent_then_drift_and_user_swap(world: World) -> None:
    world.customer(argocd=LOGIN_DEPLOYER)
    # A crashed earlier run stored deployer's password but never reached the cluster: it is adopted.
    adopted = "password-left-by-a-crashed-run-0123456789"
    world.vault.client.write(
        f"{world.vault.prefix}/kuvaq/argocd/users/deployer", {"password": adopted}, cas=0
    )
    planned = run(world, (ArgocdUsers,), dry_run=True)
    plan = planned.result.plan
    assert plan is not None
    assert [(c.action, c.target) for c in plan.changes] == [
        (Action.CREATE, "Namespace argocd"),
        (Action.CREATE, "Argo CD account admin"),
        (Action.UPDATE, "Argo CD account deployer"),
        (Action.CREATE, "ConfigMap argocd/argocd-cm"),
        (Action.CREATE, "ConfigMap argocd/argocd-rbac-cm"),
        (Action.CREATE, "Secret argocd/argocd-secret"),
    ]
    assert "+ accounts.deployer: apiKey, login" in plan.changes[3].diff
    assert "+ admin.password: ********" in plan.changes[5].diff
    assert (
        world.kube.log.writes == []
        and world.vault.client.read(f"{world.vault.prefix}/kuvaq/argocd/users/admin") is None
    )

    first = run(world, (ArgocdUsers,))
    assert first.result.status == "done", first.result.message
    assert first.result.outputs == {
        "users": ["admin", "deployer"],
        "vault_paths": {n: f"{world.vault.prefix}/kuvaq/argocd/users/{n}" for n in ("admin", "deployer")},
    }
    pw = passwords(world, "admin", "deployer")
    assert pw["deployer"] == adopted
    assert all(len(p.encode()) <= 72 for p in pw.values())
    data = secret(world)
    for key, name in (("admin", "admin"), ("accounts.deployer", "deployer")):
        assert data[f"{key}.password"].startswith("$2b$10$")
        assert bcrypt.checkpw(pw[name].encode(), data[f"{key}.password"].encode())
        assert RFC3339.match(data[f"{key}.passwordMtime"])
    assert cm(world, argocd.CM) == {
        "admin.enabled": "true",
        "accounts.deployer": "apiKey, login",
        "accounts.deployer.enabled": "true",
    }
    assert cm(world, argocd.RBAC) == {
        "policy.csv": "g, deployer, role:admin\ng, kuvaq:sre, role:admin\n",
        "policy.default": "role:readonly",
    }
    # no secret anywhere it could be shown or kept
    assert first.scans > 0 and first.leaks == []
    shown = json.dumps([str(e) for e in planned.reporter.events + first.reporter.events])
    hashes = [data["admin.password"], data["accounts.deployer.password"]]
    assert first.result.plan is not None
    plans = json.dumps([planned.result.plan.to_json(), first.result.plan.to_json()])
    assert secrets_in(shown + plans + state_text(world), [*pw.values(), *hashes]) == []

    # Beside each password, the digest of the hash applied from that version: a re-run with nothing
    # changed recognises the hash by it and needs no bcrypt check.
    for name, key in (("admin", "admin"), ("deployer", "accounts.deployer")):
        record = world.vault.client.read_version(f"{world.vault.prefix}/kuvaq/argocd/users/{name}")
        assert record is not None
        expected = hashlib.sha256(f"{record.version}:{data[f'{key}.password']}".encode()).hexdigest()
        assert record.custom_metadata == {HASH_DIGEST: expected}

    world.reset_logs()
    again = run(world, (ArgocdUsers,))
    assert again.result.status == "up-to-date" and again.result.plan is not None and again.result.plan.empty
    assert world.writes() == 0 and again.scans == 0  # no playbook ran
    assert passwords(world, "admin", "deployer") == pw

    # Someone else's key in argocd-cm, a hand-changed admin hash, deployer dropped and ci added.
    kube = KubeClient(str(world.kube.kubeconfig_path), "sandbox")
    kube.apply(argocd.config_map(argocd.CM, NS, {"url": "https://argocd.kuvaq.example.com"}), "someone-else")
    kube.apply(
        argocd.secret(argocd.SECRET, NS, {"admin.password": argocd.b64("$2b$10$" + "x" * 53)}), "kubectl"
    )
    doc = world.document()
    doc["argocd"]["users"] = [{"name": "ci", "capabilities": ["apiKey", "login"]}]
    world.customer(doc)

    swapped = run(world, (ArgocdUsers,), dry_run=True).result.plan
    assert swapped is not None
    assert [(c.action, c.target) for c in swapped.changes][:3] == [
        (Action.UPDATE, "Argo CD account admin"),
        (Action.CREATE, "Argo CD account ci"),
        (Action.DELETE, "Argo CD account deployer"),
    ]
    cm_diff = next(c.diff for c in swapped.changes if c.target.endswith(argocd.CM))
    assert "- accounts.deployer\n" in cm_diff + "\n" and "url" not in cm_diff

    third = run(world, (ArgocdUsers,))
    assert third.result.status == "done", third.result.message
    assert third.leaks == []
    data = secret(world)
    assert passwords(world, "admin") == {"admin": pw["admin"]}  # re-hashed, not regenerated
    assert bcrypt.checkpw(pw["admin"].encode(), data["admin.password"].encode())
    assert RFC3339.match(data["admin.passwordMtime"])
    assert not any(k.startswith("accounts.deployer") for k in data)
    assert bcrypt.checkpw(passwords(world, "ci")["ci"].encode(), data["accounts.ci.password"].encode())
    assert cm(world, argocd.CM) == {
        "url": "https://argocd.kuvaq.example.com",
        "admin.enabled": "true",
        "accounts.ci": "apiKey, login",
        "accounts.ci.enabled": "true",
    }
    assert cm(world, argocd.RBAC)["policy.csv"] == "g, ci, role:readonly\ng, kuvaq:sre, role:admin\n"
    assert world.vault.client.read(f"{world.vault.prefix}/kuvaq/argocd/users/deployer") is None
    assert argocd.owned_keys(world.kube.get("v1", "ConfigMap", NS, argocd.CM), MANAGER) == {
        "admin.enabled",
        "accounts.ci",
        "accounts.ci.enabled",
    }

    removed = destroy(world, (ArgocdUsers,)).results[-1]
    assert removed.status == "done", removed.message
    assert cm(world, argocd.CM) == {"url": "https://argocd.kuvaq.example.com"}  # someone else's key stays
    assert cm(world, argocd.RBAC) == {} and secret(world) == {}
    assert world.vault.client.list(f"{world.vault.prefix}/kuvaq/argocd/users/") == []
    assert destroy(world, (ArgocdUsers,), dry_run=True).results[-1].plan == Plan()


def test_forbidden_read_names_the_permission(world: World) -> None:
    world.kube.forbid("get", "secrets", NS)
    world.kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    failed = run(world, (ArgocdUsers,))
    assert failed.summary.exit_code() == 1
    assert "needs permission to get secrets in namespace argocd" in (failed.result.message or "")


def test_api_key_only_account_gets_no_password(world: World) -> None:
    """Argo CD never lets an apiKey-only account log in: a password would be one nobody can use."""
    path = f"{world.vault.prefix}/kuvaq/argocd/users/deployer"
    world.vault.client.write(path, {"password": "left-by-an-older-version-0123456789"}, cas=0)
    plan = run(world, (ArgocdUsers,), dry_run=True).result.plan
    assert plan is not None
    assert (Action.DELETE, "Argo CD account deployer") in [(c.action, c.target) for c in plan.changes]
    done = run(world, (ArgocdUsers,))
    assert done.result.status == "done", done.result.message
    assert cm(world, argocd.CM)["accounts.deployer"] == "apiKey"
    assert not any(k.startswith("accounts.deployer") for k in secret(world))
    assert world.vault.client.read(path) is None
    assert done.result.outputs["users"] == ["admin"]
    assert run(world, (ArgocdUsers,)).result.status == "up-to-date"


Write = tuple[str, str, str]
"""One write: ("kube", resource, object name) or ("vault", data|metadata|delete, account name)."""


def _writes(world: World) -> Counter[Write]:
    """The kube emulator's and the Vault proxy's successful writes since the last reset."""
    out: Counter[Write] = Counter()
    for _, resource, name in kube_writes(world):
        out[("kube", resource, name)] += 1
    assert world.vault_proxy is not None
    for call in world.vault_proxy.log.writes:
        parts = call.path.split("?", 1)[0].split("/")  # /v1/<mount>/<data|metadata>/<path…>/<account>
        out[("vault", "delete" if call.method == "DELETE" else parts[3], parts[-1])] += 1
    return out


_RESOURCE = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets"}


def _implied(change: Change) -> list[Write]:
    """What one change of an argocd-users plan writes.

    An object change is one server-side apply of that object (an object already as wanted stores
    nothing, so none is written for the ones the plan left out); an account's new password is a
    Vault write and then the digest of its hash in the path's metadata; a re-hashed account only
    records the new digest; a removed account (or an apiKey-only one's old password) is deleted
    from Vault (KV v2 metadata DELETE: every version).
    """
    if change.target.startswith("Argo CD account "):
        name = change.target.removeprefix("Argo CD account ")
        return {
            Action.CREATE: [("vault", "data", name), ("vault", "metadata", name)],
            Action.UPDATE: [("vault", "metadata", name)],
            Action.DELETE: [("vault", "delete", name)],
        }[change.action]
    kind, where = change.target.split(" ", 1)
    return [("kube", _RESOURCE[kind], where.rsplit("/", 1)[-1])]


def _apply_is_the_plan(world: World, start: str) -> list[tuple[Action, str]]:
    step = ArgocdUsers()
    ctx, plan = apply_from(world, step, start)
    assert _writes(world) == Counter(w for c in plan.changes for w in _implied(c)), start
    assert world.writes() == sum(_writes(world).values()), (start, "writes beyond the cluster and Vault")
    step.verify(ctx)
    assert step.plan(ctx).empty, start
    return [(c.action, c.target) for c in plan.changes]


def test_apply_performs_exactly_the_planned_operations(world: World) -> None:
    """From each starting state, apply's writes (cluster and Vault) are the ones its plan lists.

    The states follow one another in one world (each apply costs a playbook run): fresh, then a
    user removed from customer.yaml, a password gone from Vault, and a hash changed by hand.
    """
    users = [{"name": n, "capabilities": ["apiKey", "login"]} for n in ("deployer", "ci")]
    world.customer(argocd={"users": users})
    assert _apply_is_the_plan(world, "fresh")[:3] == [
        (Action.CREATE, "Namespace argocd"),
        (Action.CREATE, "Argo CD account admin"),
        (Action.CREATE, "Argo CD account deployer"),
    ]

    world.customer(argocd={"users": users[:1]})
    removed = _apply_is_the_plan(world, "a user removed from customer.yaml")
    assert (Action.DELETE, "Argo CD account ci") in removed

    world.vault.client.delete(f"{world.vault.prefix}/kuvaq/argocd/users/deployer")
    missing = _apply_is_the_plan(world, "a password missing in Vault")
    assert missing == [
        (Action.CREATE, "Argo CD account deployer"),
        (Action.UPDATE, f"Secret {NS}/argocd-secret"),
    ]

    kube = KubeClient(str(world.kube.kubeconfig_path), "sandbox")
    kube.apply(
        argocd.secret(argocd.SECRET, NS, {"admin.password": argocd.b64("$2b$10$" + "x" * 53)}), "kubectl"
    )
    drifted = _apply_is_the_plan(world, "an account's hash changed by hand")
    assert drifted == [
        (Action.UPDATE, "Argo CD account admin"),
        (Action.UPDATE, f"Secret {NS}/argocd-secret"),
    ]
