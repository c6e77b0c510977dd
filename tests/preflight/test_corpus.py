"""A corpus of realistic misconfigurations, each caught by its own preflight check before any write.

Every case breaks one thing in a working sandbox (a token without a permission or
scope, a reference that does not resolve, an unknown addon or kit version, an
unreachable cluster, a Vault policy too narrow — a real OpenBao policy) and
asserts: the exact check that reports it, its status, the exit code, and that
nothing was written anywhere (every emulator's call log, the Vault proxy's, no
checkpoint directory, nothing stored under the test's Vault prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml

from bootstrap import preflight
from bootstrap.preflight import Status
from bootstrap.step import for_config
from sandbox import customer as sandbox_customer
from steps import STEPS
from tests.fixtures.world import World


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[World], None]
    check: str
    """A part of the name of the check that must report it."""
    says: str
    """A part of what that check must say."""
    status: Status
    exit: int


def _doc(world: World, **overrides: Any) -> None:
    world.customer(**overrides)


def _edit(world: World, change: Callable[[dict[str, Any]], None]) -> None:
    doc = world.document()
    change(doc)
    world.customer(doc)


def _github_token(world: World, **kwargs: Any) -> None:
    token = f"ghp_{uuid.uuid4().hex}"
    world.github.add_token(token, "kuvaq-bootstrap", **kwargs)
    world.env["GITHUB_TOKEN"] = token


def _fine_grained(world: World, **permissions: str) -> None:
    _github_token(world, scopes=(), permissions={"metadata": "read", **permissions})


def _slack_without(world: World, *missing: str) -> None:
    from sandbox import seed

    token = f"xoxb-{uuid.uuid4().hex}"
    world.slack.add_token(token, [s for s in seed.BOT_SCOPES if s not in missing])
    world.env["SLACK_BOT_TOKEN"] = token


def _opsgenie_key(world: World, **kwargs: Any) -> None:
    key = f"og-{uuid.uuid4().hex}"
    world.opsgenie.add_api_key(key, **kwargs)
    world.env["OPSGENIE_API_KEY"] = key


def _integration_key(world: World) -> None:
    world.env["OPSGENIE_API_KEY"] = world.opsgenie.add_integration(
        "existing", team=sandbox_customer.TEAM
    ).api_key


def _secret_file(world: World, text: str, mode: int) -> None:
    path = world.dir / "secrets" / "slack-token"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    _doc(world, slack={"token": "file:secrets/slack-token"})


def _vault_ref(world: World, stored: dict[str, str] | None) -> None:
    path = f"{world.vault.prefix}/refs/slack"
    if stored is not None:
        world.vault.client.write(path, stored, cas=0)
    _doc(world, slack={"token": f"vault:secret/{path}#token"})


def _narrow_policy(world: World, capabilities: str) -> None:
    """A real OpenBao policy granting only ``capabilities`` on the customer's paths."""
    root = hvac.Client(url=world.vault.url, token=world.vault.token)
    name = f"narrow-{uuid.uuid4().hex[:8]}"
    policy = "\n".join(
        f'path "secret/{kind}/{world.vault.prefix}/*" {{ capabilities = [{capabilities}] }}'
        for kind in ("data", "metadata")
    )
    root.sys.create_or_update_policy(name=name, policy=policy)
    world.env["VAULT_TOKEN"] = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]


def _unreachable_cluster(world: World) -> None:
    config = yaml.safe_load(Path(world.kube.kubeconfig_path).read_text())
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"  # discard port: nothing listens
    path = world.dir / "dead-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    _doc(world, cluster={"kubeconfig": str(path), "context": "sandbox"})


def _jsm_with_token(world: World, token: str) -> None:
    world.customer(alerting={"provider": "jsm"})
    world.env["JSM_API_TOKEN"] = token


def _archive(world: World) -> None:
    world.github.repos[("kuvaq", "infra")].archived = True


def _empty_infra(world: World) -> None:
    world.github.create_repo("kuvaq", "infra", empty=True)


CASES = [
    # -- GitHub token: each permission missing, for each kind of token ----------------------------
    Case("classic-token-without-repo-scope", lambda w: _github_token(w, scopes=("read:org",)),
         "github", "does not exist or the token may not use it", Status.FAILED, 1),
    Case("classic-token-user-not-admin", lambda w: _github_token(w, role="write"),
         "Administration: write", "not an admin", Status.FAILED, 1),
    Case("classic-token-user-read-only", lambda w: _github_token(w, role="read"),
         "Contents: write", "not allowed to push", Status.FAILED, 1),
    Case("fine-grained-without-administration", lambda w: _fine_grained(w, contents="write"),
         "Administration: write", "administration=read", Status.FAILED, 1),
    Case("fine-grained-without-contents", lambda w: _fine_grained(w, administration="write"),
         "Contents: write", "contents=read", Status.FAILED, 1),
    Case("infra-repo-archived", _archive, "github repo kuvaq/infra", "archived", Status.FAILED, 1),
    Case("infra-repo-empty", _empty_infra, "github repo kuvaq/infra", "empty", Status.FAILED, 1),
    Case("infra-repo-typo", lambda w: _doc(w, github={"infra_repo": "kuvaq/infar"}),
         "github", "kuvaq/infar does not exist", Status.FAILED, 1),
    # -- the kit --------------------------------------------------------------------------------
    Case("unknown-kit-version", lambda w: _doc(w, kit={"version": "v9.9"}),
         "kit", "kit.version: acme-sre/kit-core has no branch 'v9.9'", Status.INVALID, 4),
    Case("unknown-addon", lambda w: _doc(w, kit={"addons": ["cert-manager", "externl-dns"]}),
         "kit addons", "kit.addons[1]: unknown addon 'externl-dns' (line", Status.INVALID, 4),
    # -- Slack: each scope the steps use --------------------------------------------------------
    Case("slack-without-chat-write", lambda w: _slack_without(w, "chat:write"),
         "slack token scopes", "missing chat:write", Status.FAILED, 1),
    Case("slack-without-channels-manage", lambda w: _slack_without(w, "channels:manage"),
         "slack token scopes", "missing channels:manage", Status.FAILED, 1),
    Case("slack-without-history", lambda w: _slack_without(w, "channels:history", "channels:join"),
         "slack token scopes", "missing channels:join, channels:history", Status.FAILED, 1),
    Case("slack-without-groups-read", lambda w: _slack_without(w, "groups:read"),
         "slack token scopes", "missing groups:read", Status.FAILED, 1),
    Case("slack-token-revoked", lambda w: w.slack.revoke_token(w.env["SLACK_BOT_TOKEN"]),
         "slack", "slack.token", Status.FAILED, 1),
    # -- OpsGenie: a key that cannot manage integrations ----------------------------------------
    Case("opsgenie-integration-key", _integration_key,
         "opsgenie integrations", "alerting.api_key may not do this", Status.FAILED, 1),
    Case("opsgenie-key-without-configuration", lambda w: _opsgenie_key(w, rights=("read", "create")),
         "opsgenie integrations", "configuration", Status.FAILED, 1),
    Case("opsgenie-unknown-key", lambda w: w.env.update(OPSGENIE_API_KEY="og-not-a-key-000000"),
         "opsgenie integrations", "rejected alerting.api_key", Status.FAILED, 1),
    Case("opsgenie-team-typo", lambda w: _doc(w, alerting={"team": "kuvaq-sr"}),
         "opsgenie integrations", "alerting.team: OpsGenie has no team 'kuvaq-sr' (line", Status.INVALID, 4),
    # -- JSM Operations: an account that cannot manage the team's integrations --------------------
    Case("jsm-team-typo", lambda w: _doc(w, alerting={"provider": "jsm", "team": "kuvaq-sr"}),
         "jsm integrations", "alerting.team: JSM has no team 'kuvaq-sr' (line", Status.INVALID, 4),
    Case("jsm-token-rejected", lambda w: _jsm_with_token(w, "not-the-token"),
         "jsm integrations", "alerting.jsm.api_token", Status.FAILED, 1),
    # -- references: each kind broken -----------------------------------------------------------
    Case("env-unset", lambda w: w.env.pop("SLACK_BOT_TOKEN"),
         "slack.token (env:SLACK_BOT_TOKEN)", "variable SLACK_BOT_TOKEN is not set", Status.INVALID, 4),
    Case("env-empty", lambda w: w.env.update(GITHUB_TOKEN="  "),
         "github.token", "GITHUB_TOKEN is empty", Status.INVALID, 4),
    Case("file-missing", lambda w: _doc(w, slack={"token": "file:secrets/nope"}),
         "slack.token (file:secrets/nope)", "does not exist", Status.INVALID, 4),
    Case("file-world-readable", lambda w: _secret_file(w, "xoxb-sandbox-0000000000-bot\n", 0o644),
         "slack.token", "readable by every user", Status.INVALID, 4),
    Case("file-empty", lambda w: _secret_file(w, "\n", 0o600), "slack.token", "is empty", Status.INVALID, 4),
    Case("vault-ref-missing-path", lambda w: _vault_ref(w, None),
         "slack.token (vault:", "Vault has no secret", Status.INVALID, 4),
    Case("vault-ref-missing-key", lambda w: _vault_ref(w, {"other": "x"}),
         "slack.token (vault:", "has no key 'token'", Status.INVALID, 4),
    Case("sso-client-secret-unset", lambda w: w.env.pop("GITHUB_OAUTH_CLIENT_SECRET"),
         "argocd.sso.client_secret", "GITHUB_OAUTH_CLIENT_SECRET is not set", Status.INVALID, 4),
    Case("vault-token-unset", lambda w: w.env.pop("VAULT_TOKEN"),
         "vault.auth.token", "VAULT_TOKEN is not set", Status.INVALID, 4),
    # -- Vault policy too narrow (a real OpenBao policy) ------------------------------------------
    Case("vault-policy-read-only", lambda w: _narrow_policy(w, '"read", "list"'),
         "vault secret/", "the token lacks create on", Status.FAILED, 1),
    Case("vault-policy-no-update", lambda w: _narrow_policy(w, '"read", "create"'),
         "vault secret/", "update on", Status.FAILED, 1),
    # -- the cluster ------------------------------------------------------------------------------
    Case("cluster-unreachable", _unreachable_cluster, "cluster at sandbox", "unreachable", Status.FAILED, 1),
    Case("cluster-may-not-patch-secrets", lambda w: w.kube.forbid("patch", "secrets", "argocd"),
         "cluster RBAC namespace argocd", "patch secrets", Status.FAILED, 1),
    Case("cluster-may-not-create-crds", lambda w: w.kube.forbid("create", "customresourcedefinitions"),
         "cluster RBAC cluster-wide", "create customresourcedefinitions", Status.FAILED, 1),
    Case("cluster-monitoring-read-only", lambda w: w.kube.forbid("patch", "secrets", "monitoring"),
         "cluster RBAC namespace monitoring", "patch secrets", Status.FAILED, 1),
    # -- the Argo CD manifest pin -----------------------------------------------------------------
    Case("argocd-pin-mismatch", lambda w: _doc(w, argocd={"sha256": "0" * 64}),
         "argocd manifest pin", "argocd.sha256 pins", Status.INVALID, 4),
]  # fmt: skip


def _report(world: World) -> preflight.Report:
    sess = world.session()
    world.reset_logs()
    return preflight.run(sess.context, for_config(STEPS, sess.config))


def _nothing_written(world: World, locked: bool = False) -> None:
    """No write on any service; no checkpoint (``locked``: a run took its lock, and left it).

    A run's plans read while its checks run (bootstrap/early_plans.py), and argocd-install's plan
    keeps the pinned manifest it downloaded in the download cache, as ``plan`` always has: that
    cache may be there, nothing else.
    """
    writes = {s.name: [(c.method, c.path) for c in s.log.writes] for s in world.servers if s.log.writes}
    assert not writes, f"preflight wrote: {writes}"
    state = world.dir / ".bootstrap"
    if locked:
        assert not (state / "state.json").exists(), "a checkpoint was written"
        kept = ("state.lock", "cache")
        assert not [p for p in state.iterdir() if not p.name.startswith(kept)], list(state.iterdir())
    else:
        assert not state.exists(), "preflight wrote a checkpoint or lock"
    assert world.vault.client.list(world.vault.prefix) in ([], ["refs/"])


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_misconfiguration_is_reported_by_its_check(world: World, case: Case) -> None:
    case.setup(world)
    report = _report(world)
    hits = [r for r in report.problems if case.check in r.check and case.says in r.detail]
    shown = [(r.check, r.status, r.detail) for r in report.problems]
    assert hits, f"no failing check {case.check!r} saying {case.says!r}; problems: {shown}"
    assert all(r.status is case.status for r in hits), shown
    assert report.exit_code() == case.exit, shown
    _nothing_written(world)


def test_a_working_customer_passes_every_check(world: World) -> None:
    report = _report(world)
    assert not report.problems, [(r.check, r.detail) for r in report.problems]
    assert report.exit_code() == 0
    assert {r.check.split(" ")[0] for r in report.results} >= {
        "github",
        "kit",
        "vault",
        "slack",
        "opsgenie",
        "cluster",
        "argocd",
    }
    _nothing_written(world)


def test_every_problem_of_a_file_is_reported_in_one_run(world: World) -> None:
    """Five unrelated mistakes at once: one preflight names all five (no fix-one-rerun loop)."""
    world.env.pop("OPSGENIE_API_KEY")
    _slack_without(world, "chat:write")
    world.kube.forbid("patch", "configmaps", "argocd")
    _github_token(world, role="write")
    _doc(world, kit={"addons": ["cert-manager", "externl-dns"]})
    report = _report(world)
    found = {(r.check, r.status) for r in report.problems}
    expected = {
        ("alerting.api_key (env:OPSGENIE_API_KEY)", Status.INVALID),
        ("slack token scopes", Status.FAILED),
        ("cluster RBAC namespace argocd", Status.FAILED),
        ("github Administration: write on kuvaq/infra", Status.FAILED),
        ("kit addons @v1.4", Status.INVALID),
    }
    assert expected <= found, found
    # What depends on the broken reference is said to be unchecked, not failed a second time.
    assert any(r.check == "opsgenie" and r.status is Status.SKIPPED for r in report.results)
    assert report.exit_code() == 1
    _nothing_written(world)


def test_run_and_plan_stop_before_the_first_write(world: World) -> None:
    """A failing check stops `run` (and `plan`) before any step: no write, no checkpoint, all named."""
    _slack_without(world, "chat:write")
    world.env.pop("GITHUB_OAUTH_CLIENT_SECRET")
    world.reset_logs()
    for command in ("run", "plan"):
        proc = world.cli(command, str(world.path))
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: "), proc.stderr
        assert "slack token scopes: missing chat:write" in proc.stderr
        assert "argocd.sso.client_secret" in proc.stderr and "(line " in proc.stderr
        assert "Traceback" not in proc.stderr
    _nothing_written(world, locked=True)


def test_a_bad_secret_reference_exits_4_not_3(world: World) -> None:
    """The SSO client secret unset: invalid input (4), whether the checks run or are skipped."""
    world.env.pop("GITHUB_OAUTH_CLIENT_SECRET")
    checked = world.cli("run", str(world.path))
    assert checked.returncode == 4, checked.stderr
    skipped = world.cli("run", str(world.path), "--skip-checks", "--only", "github-oauth")
    assert skipped.returncode == 4, skipped.stderr
    assert "argocd.sso.client_secret" in skipped.stderr


def test_check_command_prints_one_table_and_json(world: World) -> None:
    _slack_without(world, "chat:write")
    world.reset_logs()
    proc = world.cli("check", str(world.path), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    rows = doc["customers"][0]["checks"]
    assert any(r["check"] == "slack token scopes" and r["result"] == "failed" for r in rows)
    assert "preflight" in proc.stderr and "slack token scopes" in proc.stderr
    assert world.env["SLACK_BOT_TOKEN"] not in proc.stdout + proc.stderr
    _nothing_written(world)
    ok = world.customer()
    _slack_without(world)
    good = world.cli("check", str(ok))
    assert good.returncode == 0, good.stderr
