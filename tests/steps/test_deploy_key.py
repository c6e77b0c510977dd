"""deploy-key against the GitHub emulator (PyGithub over HTTP) and a real OpenBao (hvac)."""

from __future__ import annotations

import json

import pytest

from bootstrap.clients import github as github_client
from bootstrap.clients.github import GitHubClient
from bootstrap.clients.vault import VersionedSecret
from bootstrap.reporting import StepResult, Summary
from bootstrap.step import Action, Plan
from sandbox import customer as sandbox_customer
from sandbox.httpemu import Fault
from steps.deploy_key import PENDING, Converge, DeployKey, generate
from tests.fixtures.github import GitHubOpenAPI
from tests.fixtures.world import World

OWNER, REPO = sandbox_customer.INFRA_REPO.split("/")
TITLE = "argocd-kuvaq"


def result(world: World, dry_run: bool = False) -> tuple[StepResult, Summary]:
    summary, _, _ = world.run(steps=(DeployKey,), dry_run=dry_run)
    return summary.results[0], summary


def plan_of(world: World) -> Plan:
    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None, planned.message
    return planned.plan


def path(world: World) -> str:
    return f"{world.vault.prefix}/kuvaq/deploy-key"


def stored(world: World) -> VersionedSecret:
    secret = world.vault.client.read_version(path(world))
    assert secret is not None
    return secret


def keys(world: World) -> list[dict[str, object]]:
    return [k for k in world.github.deploy_keys(OWNER, REPO) if k["title"] == TITLE]


def github(world: World) -> GitHubClient:
    return GitHubClient(world.github.url, sandbox_customer.GITHUB_TOKEN)


def assert_converged(world: World) -> VersionedSecret:
    """One read-only key with our title, matching Vault, whose metadata names it."""
    secret = stored(world)
    fp = github_client.fingerprint(secret.data["public_key"])
    (key,) = keys(world)
    assert key["read_only"] is True
    assert github_client.fingerprint(str(key["key"])) == fp
    assert secret.custom_metadata == {"key_id": str(key["id"]), "fingerprint": fp}
    return secret


def test_first_run_creates_then_second_run_writes_nothing(world: World) -> None:
    assert result(world, dry_run=True)[1].exit_code() == 2
    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.CREATE
    assert world.github.log.writes == []
    assert world.vault.client.read_version(path(world)) is None

    done, _ = result(world)
    assert done.status == "done", done.message
    secret = assert_converged(world)
    assert secret.data["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert secret.data["public_key"].startswith("ssh-ed25519 ")
    assert done.outputs == {
        "key_id": int(secret.custom_metadata["key_id"]),
        "fingerprint": secret.custom_metadata["fingerprint"],
        "title": TITLE,
        "vault_path": path(world),
    }

    assert plan_of(world).empty
    world.reset_logs()
    rerun, _ = result(world)
    assert rerun.status == "up-to-date"
    assert world.github.log.writes == []
    assert stored(world).version == secret.version


def test_no_private_key_in_plan_outputs_or_checkpoint(world: World) -> None:
    planned = plan_of(world)
    done, _ = result(world)
    private = stored(world).data["private_key"]
    state = (world.dir / ".bootstrap" / "state.json").read_text()
    body = private.splitlines()[1]
    assert body not in state and "PRIVATE KEY" not in state
    shown = json.dumps([planned.to_json(), done.outputs, [repr(c.payload) for c in planned.changes]])
    assert body not in shown and "PRIVATE KEY" not in shown
    # Re-planning reads the private key from Vault: the redaction registry must know it.
    sess = world.session()
    DeployKey().plan(sess.context)
    assert sess.redactor.redact(private) == "********"


def test_crash_after_vault_store_before_github_registers_the_stored_key(world: World) -> None:
    world.github.faults.add(Fault("status", method="POST", path=r"/keys$", status=502))
    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "502" in (failed.message or "")
    secret = stored(world)
    assert secret.custom_metadata["key_id"] == PENDING
    assert keys(world) == []

    world.github.faults.clear()
    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.CREATE and "stored in Vault" in change.summary
    assert result(world)[0].status == "done"
    after = assert_converged(world)
    assert after.version == secret.version  # the same key, no new one
    assert after.data == secret.data


def test_crash_after_github_before_metadata_only_updates_metadata(world: World) -> None:
    assert result(world)[0].status == "done"
    fp = stored(world).custom_metadata["fingerprint"]
    world.vault.client.set_metadata(path(world), {"key_id": PENDING, "fingerprint": fp})

    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.UPDATE and change.target.startswith("vault ")
    world.reset_logs()
    assert result(world)[0].status == "done"
    assert world.github.log.writes == []
    assert_converged(world)


def test_key_on_github_but_private_half_missing_is_replaced(world: World) -> None:
    assert result(world)[0].status == "done"
    (old,) = keys(world)
    world.vault.client.delete(path(world))

    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.REPLACE
    assert result(world)[0].status == "done"
    assert_converged(world)
    assert keys(world)[0]["id"] != old["id"]


def test_key_in_vault_but_gone_from_github_is_re_registered(world: World) -> None:
    assert result(world)[0].status == "done"
    before = stored(world)
    (old,) = keys(world)
    github(world).delete_deploy_key(sandbox_customer.INFRA_REPO, int(str(old["id"])))

    planned = plan_of(world)
    assert [c.action for c in planned.changes] == [Action.CREATE]
    assert result(world)[0].status == "done"
    after = assert_converged(world)
    assert after.data == before.data and after.version == before.version


def test_our_title_with_another_fingerprint_is_replaced(world: World) -> None:
    _, foreign = generate()
    github(world).add_deploy_key(sandbox_customer.INFRA_REPO, TITLE, foreign, read_only=False)
    planned = plan_of(world)
    (change,) = planned.changes
    assert change.action == Action.REPLACE
    assert result(world)[0].status == "done"
    assert_converged(world)
    assert all(k["key"] != foreign for k in world.github.deploy_keys(OWNER, REPO))


def test_rotation_interrupted_after_vault_registers_vaults_key(world: World) -> None:
    assert result(world)[0].status == "done"
    before = stored(world)
    private, public = generate()
    world.vault.client.write(
        path(world),
        {"private_key": private, "public_key": public},
        cas=before.version,
        metadata={"key_id": PENDING, "fingerprint": github_client.fingerprint(public)},
    )
    assert result(world)[0].status == "done"
    after = assert_converged(world)
    assert after.data["private_key"] == private


def test_key_already_in_use_elsewhere_gets_a_new_key(world: World) -> None:
    private, public = generate()
    world.vault.client.write(path(world), {"private_key": private, "public_key": public}, cas=0)
    world.github.mark_key_used_elsewhere(public)

    done, _ = result(world)
    assert done.status == "done", done.message
    after = assert_converged(world)
    assert after.data["public_key"] != public
    assert after.version == 2


def test_token_without_admin_fails_naming_the_permission(world: World) -> None:
    world.github.add_token("ghp_writer", "writer", scopes=("repo",), role="write")
    world.env["GITHUB_TOKEN"] = "ghp_writer"
    failed, summary = result(world)
    assert summary.exit_code() == 1
    assert "Administration: write" in (failed.message or "")
    assert "ghp_writer" not in (failed.message or "")
    assert world.vault.client.read_version(path(world)) is None


def test_rate_limit_is_waited_out(world: World) -> None:
    world.github.faults.add(Fault("ratelimit", method="GET", path=r"/keys$", times=1, retry_after=0))
    assert result(world)[0].status == "done"
    assert_converged(world)


def test_destroy_removes_key_and_vault_secret(world: World) -> None:
    assert result(world)[0].status == "done"
    ctx = world.session().context
    step = DeployKey()
    plan = step.plan_destroy(ctx)
    assert [c.action for c in plan.changes] == [Action.DELETE, Action.DELETE]
    step.destroy(ctx, plan)
    assert keys(world) == []
    assert world.vault.client.read_version(path(world)) is None
    assert step.plan_destroy(ctx).empty


def test_emulator_answers_match_githubs_openapi(world: World, github_openapi: GitHubOpenAPI) -> None:
    _, foreign = generate()
    github(world).add_deploy_key(sandbox_customer.INFRA_REPO, TITLE, foreign)
    assert result(world)[0].status == "done"
    for ex in world.github.exchanges:
        if ex.template is not None:
            github_openapi.validate_exchange(ex)
    assert {(e.method, e.template, e.status) for e in world.github.exchanges} >= {
        ("GET", "/repos/{owner}/{repo}/keys", 200),
        ("POST", "/repos/{owner}/{repo}/keys", 201),
        ("DELETE", "/repos/{owner}/{repo}/keys/{key_id}", 204),
    }


def _github_writes(op: Converge) -> list[tuple[str, str]]:
    """The GitHub REST calls a Converge is: DELETE /repos/{owner}/{repo}/keys/{key_id} per stale key,
    then POST /repos/{owner}/{repo}/keys to register (docs.github.com/rest/deploy-keys)."""
    keys_path = f"/repos/{OWNER}/{REPO}/keys"
    deletes = [("DELETE", f"{keys_path}/{key_id}") for key_id in op.delete]
    return deletes + ([("POST", keys_path)] if op.register else [])


@pytest.mark.parametrize("start", ["fresh", "foreign-key", "vault-only", "private-half-gone"])
def test_apply_performs_exactly_the_planned_operations(world: World, start: str) -> None:
    """Whatever the starting state, apply's GitHub writes are the plan's, in order, and no more."""
    if start == "foreign-key":
        _, foreign = generate()
        github(world).add_deploy_key(sandbox_customer.INFRA_REPO, TITLE, foreign, read_only=False)
    elif start != "fresh":
        assert result(world)[0].status == "done"
        (old,) = keys(world)
        if start == "vault-only":
            github(world).delete_deploy_key(sandbox_customer.INFRA_REPO, int(str(old["id"])))
        else:
            world.vault.client.delete(path(world))
    sess = world.session()
    step = DeployKey()
    plan = step.plan(sess.context)
    assert not plan.empty
    world.reset_logs()
    step.apply(sess.context, plan)
    written = [(c.method, c.path) for c in world.github.log.writes]
    assert written == [w for c in plan.changes for w in _github_writes(c.payload_as(Converge))]
    assert step.plan(sess.context).empty
