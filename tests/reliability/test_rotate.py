"""``bootstrap rotate``: new credentials live everywhere before the old ones go, crash-safe throughout.

One onboarded world per credential; every rotation in it is killed at a
different write (counted across all services from the start of ``rotate``) and
resumed alternately by ``rotate`` and by a plain ``run``. After each, exactly
one deploy key exists (Vault's, read-only, also in the repo Secret), or every
Argo CD password hash verifies against Vault's latest password — and at no
moment was the only working credential gone.
"""

from __future__ import annotations

import base64
from typing import Any

import bcrypt

from bootstrap.clients import github as github_client
from steps.argocd_users import HASH_DIGEST
from tests.fixtures.world import World
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

RUN = harness.RUN


def _keys(world: World) -> list[dict[str, Any]]:
    return [k for k in world.github.deploy_keys("kuvaq", "infra") if k["title"] == "argocd-kuvaq"]


def _vault(world: World, path: str) -> Any:
    return world.vault.client.read_version(f"{world.vault.prefix}/kuvaq/{path}")


def _repo_key(world: World) -> str:
    secret = world.kube.get("v1", "Secret", "argocd", "repo-kuvaq-infra")
    assert secret is not None
    return base64.b64decode(secret["data"]["sshPrivateKey"]).decode()


def _assert_one_live_key(world: World, not_id: int | None = None) -> int:
    stored = _vault(world, "deploy-key")
    keys = _keys(world)
    fp = github_client.fingerprint(stored.data["public_key"])
    assert [(github_client.fingerprint(k["key"]), k["read_only"]) for k in keys] == [(fp, True)]
    assert _repo_key(world) == stored.data["private_key"]
    assert "retiring_key_id" not in stored.custom_metadata
    assert keys[0]["id"] != not_id
    return int(keys[0]["id"])


def _working_keys(world: World) -> set[str]:
    """Fingerprints that both GitHub accepts and the cluster's repo Secret could use right now."""
    on_github = {github_client.fingerprint(k["key"]) for k in _keys(world)}
    from steps.deploy_key import public_of

    public = public_of(_repo_key(world))
    return on_github & ({github_client.fingerprint(public)} if public else set())


def test_rotate_deploy_key(onboarded_world: World, figures: Figures) -> None:
    world = onboarded_world
    runs = [harness.run_cli(world, *RUN)]
    assert runs[0].returncode == 0, runs[0].describe()
    key_id = _assert_one_live_key(world)

    preview = harness.run_cli(world, "rotate", "customer.yaml", "deploy-key", "--dry-run")
    assert preview.returncode == 2 and preview.writes == [], preview.describe()
    assert "retiring" not in str(_vault(world, "deploy-key").custom_metadata)

    done = harness.run_cli(world, "rotate", "customer.yaml", "deploy-key")
    runs += [preview, done]
    assert done.returncode == 0, done.describe()
    key_id = _assert_one_live_key(world, not_id=key_id)
    again = harness.run_cli(world, *RUN)
    assert again.returncode == 0 and again.writes == [], again.describe()

    # Killed after: the new key is in Vault / registered on GitHub / in the repo Secret / the old
    # key is deleted but Vault still names it. Resumed by `run` and `rotate` in turn.
    rotate = ("rotate", "customer.yaml", "deploy-key")
    for k, resume in ((1, RUN), (3, rotate), (5, RUN), (6, rotate)):
        killed = harness.run_cli(world, *rotate, kill_after=k)
        assert killed.killed_at is not None, killed.describe()
        assert _working_keys(world), f"killed after {killed.killed_at}: no key works for Argo CD"
        resumed = harness.run_cli(world, *resume)
        runs += [killed, resumed]
        assert resumed.returncode == 0, resumed.describe()
        key_id = _assert_one_live_key(world, not_id=key_id)
        assert harness.check_invariants(world) == []
    found = [str(f) for f in hygiene.scan(world, hygiene.cli_texts(runs))]
    with figures.lock:
        figures.scans += 1
        figures.secrets_found += len(found)
    assert found == []


LOGIN_ACCOUNTS = ("admin",)
"""The sandbox's other account, deployer, is apiKey-only: it has no password to rotate."""


def _passwords(world: World) -> dict[str, Any]:
    return {name: _vault(world, f"argocd/users/{name}") for name in LOGIN_ACCOUNTS}


def _hashes(world: World) -> dict[str, str]:
    data = harness.decoded_secret(world.kube.get("v1", "Secret", "argocd", "argocd-secret"))
    return {n: data["admin.password" if n == "admin" else f"accounts.{n}.password"] for n in LOGIN_ACCOUNTS}


def _some_version_works(world: World, name: str, hashed: str) -> bool:
    """A password Vault still holds (any version) matches the cluster's hash: nobody is locked out."""
    path = f"{world.vault.prefix}/kuvaq/argocd/users/{name}"
    latest = world.vault.client.read_version(path)
    for version in range(1, (latest.version if latest else 0) + 1):
        old = harness.read_version(world, path, version)
        if old is not None and bcrypt.checkpw(old.encode(), hashed.encode()):
            return True
    return False


def test_rotate_passwords(onboarded_world: World, figures: Figures) -> None:
    world = onboarded_world
    runs = [harness.run_cli(world, *RUN)]
    assert runs[0].returncode == 0, runs[0].describe()
    before = {n: v.data["password"] for n, v in _passwords(world).items()}

    # Killed after the first new password is in Vault (admin, metadata not yet written), then
    # after both are staged: the cluster still has the old hashes and Vault still has the old
    # versions, so the old passwords keep working until the new hashes are applied.
    for k, resume in ((1, ("rotate", "customer.yaml", "passwords")), (4, RUN)):
        killed = harness.run_cli(world, "rotate", "customer.yaml", "passwords", kill_after=k)
        assert killed.killed_at is not None, killed.describe()
        for name, hashed in _hashes(world).items():
            assert _some_version_works(world, name, hashed), f"{name} locked out after {killed.killed_at}"
        resumed = harness.run_cli(world, *resume)
        runs += [killed, resumed]
        assert resumed.returncode == 0, resumed.describe()
        assert harness.check_invariants(world) == []
        now = _passwords(world)
        assert all(now[n].data["password"] != before[n] for n in now), "a password was not rotated"
        assert all("replaces_version" not in v.custom_metadata for v in now.values())
        # Retiring the old versions keeps the digest of the new hash: the next no-op needs no bcrypt.
        assert all(HASH_DIGEST in v.custom_metadata for v in now.values())
        for name, stored in now.items():  # replaced versions are destroyed once the new hash is live
            path = f"{world.vault.prefix}/kuvaq/argocd/users/{name}"
            assert [harness.read_version(world, path, v) for v in range(1, stored.version)] == [None] * (
                stored.version - 1
            )
        before = {n: v.data["password"] for n, v in now.items()}
    again = harness.run_cli(world, *RUN)
    assert again.returncode == 0 and again.writes == [], again.describe()
    found = [str(f) for f in hygiene.scan(world, hygiene.cli_texts(runs))]
    with figures.lock:
        figures.scans += 1
        figures.secrets_found += len(found)
    assert found == []
