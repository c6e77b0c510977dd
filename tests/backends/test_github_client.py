"""The GitHub adapter against the emulator: values out, GitHub's failures mapped to the tool's errors."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bootstrap.clients import github
from bootstrap.errors import AuthError, PermanentError, RetryableError
from sandbox.github import GitHubEmulator
from sandbox.github_seed import ADMIN_TOKEN, INFRA_REPO, KIT_REPO
from sandbox.httpemu import Fault

# a fixed key: its fingerprint was checked with `ssh-keygen -lf`
FIXED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 argocd@acme"
FIXED_FP = "SHA256:lbmsoA0yIEcEiVDRnMWuzm+nV+3ZEEpVIURqFoeSspg"


@pytest.fixture
def client(github_emu: GitHubEmulator) -> github.GitHubClient:
    return github.GitHubClient(github_emu.url, ADMIN_TOKEN, backoff_factor=0)


def new_key() -> str:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    return pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def assert_no_secret(err: BaseException, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(err) and secret not in repr(err)


def test_fingerprint_matches_ssh_keygen() -> None:
    assert github.fingerprint(FIXED_KEY) == FIXED_FP


# -- reading -----------------------------------------------------------------------------


def test_reads_branches_heads_files_and_trees(
    github_emu: GitHubEmulator, client: github.GitHubClient
) -> None:
    info = client.check_repo_admin(INFRA_REPO)
    assert info == github.RepoInfo("acme/infra", "main", True)
    assert client.branches(KIT_REPO) == ["main", "v1.4", "v1.5"]
    assert client.branch_head(KIT_REPO, "v9.9") is None
    head = client.branch_head(KIT_REPO, "v1.5")
    assert head is not None and len(head) == 40
    assert "velero" in (client.read_file(KIT_REPO, "v1.5", "addons/values.yaml") or "")
    assert client.read_file(KIT_REPO, "v1.5", "nope.yaml") is None
    with pytest.raises(PermanentError, match="is a directory"):
        client.read_file(KIT_REPO, "v1.5", "addons")

    github_emu.log.clear()
    addons = client.read_tree(KIT_REPO, "v1.5", "addons/")
    assert sorted(addons) == ["addons/Chart.yaml", "addons/templates/applications.yaml", "addons/values.yaml"]
    assert "velero" in addons["addons/values.yaml"]
    assert github_emu.log.count("GET", r"/git/trees/") == 1  # one recursive listing, not one per directory
    assert github_emu.log.count("GET", r"/git/blobs/") == len(addons)
    assert client.read_tree(KIT_REPO, head, "") == github_emu.read_tree("acme-sre", "kit-core", "v1.5")
    with pytest.raises(PermanentError, match=r"no branch or commit 'v9\.9'"):
        client.read_tree(KIT_REPO, "v9.9", "")


# -- committing ---------------------------------------------------------------------------


def test_commit_files_is_one_commit_and_idempotent(
    github_emu: GitHubEmulator, client: github.GitHubClient
) -> None:
    head = client.branch_head(INFRA_REPO, "main")
    assert head is not None
    github_emu.log.clear()
    files: dict[str, str | None] = {
        "argocd/root.yaml": "root\n",
        "argocd/values/acme.yaml": "domain: acme.test\n",
    }
    new = client.commit_files(INFRA_REPO, "main", head, files, "argocd: bootstrap acme")
    assert [c.method for c in github_emu.log.writes] == ["POST", "POST", "PATCH"]  # tree, commit, ref
    assert client.branch_head(INFRA_REPO, "main") == new
    assert github_emu.read_tree("acme", "infra", "main")["argocd/values/acme.yaml"] == "domain: acme.test\n"

    github_emu.log.clear()
    assert client.commit_files(INFRA_REPO, "main", new, files, "again") == new  # nothing to commit
    assert [c.method for c in github_emu.log.writes] == ["POST"]  # only the (content-addressed) tree

    gone = client.commit_files(INFRA_REPO, "main", new, {"argocd/values/acme.yaml": None}, "drop")
    assert gone != new and "argocd/values/acme.yaml" not in github_emu.read_tree("acme", "infra", "main")


def test_commit_on_a_moved_branch_is_retryable(
    github_emu: GitHubEmulator, client: github.GitHubClient
) -> None:
    head = client.branch_head(INFRA_REPO, "main")
    github_emu.commit_files("acme", "infra", "main", {"hand.txt": "pushed by a person\n"}, "hand push")
    with pytest.raises(RetryableError) as err:
        client.commit_files(INFRA_REPO, "main", head, {"argocd/root.yaml": "x\n"}, "argocd")
    assert str(err.value) == "acme/infra branch main moved while committing (someone pushed); run again"
    assert "hand.txt" in github_emu.read_tree("acme", "infra", "main")  # nothing overwritten


def test_commit_creates_a_missing_branch(github_emu: GitHubEmulator, client: github.GitHubClient) -> None:
    sha = client.commit_files(INFRA_REPO, "bootstrap", None, {"argocd/root.yaml": "x\n"}, "first")
    assert client.branch_head(INFRA_REPO, "bootstrap") == sha
    assert github_emu.read_tree("acme", "infra", "bootstrap") == {"argocd/root.yaml": "x\n"}
    with pytest.raises(RetryableError, match="moved while committing"):
        client.commit_files(INFRA_REPO, "bootstrap", None, {"b": "y\n"}, "racing creator")


# -- deploy keys --------------------------------------------------------------------------


def test_deploy_key_lifecycle(github_emu: GitHubEmulator, client: github.GitHubClient) -> None:
    added = client.add_deploy_key(INFRA_REPO, "argocd-acme", FIXED_KEY)
    assert added.read_only is True and added.fingerprint == FIXED_FP and added.title == "argocd-acme"
    assert github_emu.deploy_keys("acme", "infra")[0]["read_only"] is True
    assert client.list_deploy_keys(INFRA_REPO) == [added]

    with pytest.raises(github.KeyInUse) as here:
        client.add_deploy_key(INFRA_REPO, "argocd-acme-2", FIXED_KEY)
    assert here.value.existing == added and "already on acme/infra as 'argocd-acme'" in str(here.value)

    github_emu.create_repo("acme", "other")
    with pytest.raises(github.KeyInUse) as elsewhere:
        client.add_deploy_key("acme/other", "argocd-acme", FIXED_KEY)
    assert elsewhere.value.existing is None and "generate a new key" in str(elsewhere.value)

    client.delete_deploy_key(INFRA_REPO, added.id)
    client.delete_deploy_key(INFRA_REPO, added.id)  # gone already is fine
    assert client.list_deploy_keys(INFRA_REPO) == []
    with pytest.raises(PermanentError, match="OpenSSH public key format"):
        client.add_deploy_key(INFRA_REPO, "bad", "ssh-ed25519 bm90IGEga2V5")


# -- auth errors ---------------------------------------------------------------------------


def test_bad_token_is_an_auth_error_without_the_token(github_emu: GitHubEmulator) -> None:
    bad = github.GitHubClient(github_emu.url, "ghp_revoked_s3cret", backoff_factor=0)
    with pytest.raises(AuthError) as err:
        bad.check_repo_admin(INFRA_REPO)
    assert "GitHub rejected the token (github.token)" in str(err.value) and "create a new token" in str(
        err.value
    )
    assert_no_secret(err.value, "ghp_revoked_s3cret")


def test_missing_admin_names_the_permission(github_emu: GitHubEmulator) -> None:
    github_emu.add_token("ghp_writer", "writer", scopes=("repo",), role="write")
    github_emu.add_token("ghp_noscope", "dev", scopes=("read:org",))
    github_emu.add_token("github_pat_contents", "bot", permissions={"contents": "write"})
    need = "the token needs the Administration: write permission on acme/infra"
    classic = "(classic token: `repo` scope and admin on the repo)"
    for token in ("ghp_writer", "ghp_noscope", "github_pat_contents"):
        c = github.GitHubClient(github_emu.url, token, backoff_factor=0)
        with pytest.raises(AuthError) as err:
            c.check_repo_admin(INFRA_REPO)
        assert need in str(err.value) and classic in str(err.value), (token, str(err.value))
        with pytest.raises(AuthError, match="Administration: write"):
            c.add_deploy_key(INFRA_REPO, "argocd-acme", new_key())
        assert_no_secret(err.value, token)


def test_missing_contents_write_names_the_permission(github_emu: GitHubEmulator) -> None:
    github_emu.add_token("github_pat_ro", "bot", permissions={"contents": "read", "administration": "write"})
    c = github.GitHubClient(github_emu.url, "github_pat_ro", backoff_factor=0)
    head = c.branch_head(INFRA_REPO, "main")
    with pytest.raises(AuthError, match=r"needs the Contents: write permission on acme/infra"):
        c.commit_files(INFRA_REPO, "main", head, {"a": "b"}, "m")


def test_unknown_repo_says_so(client: github.GitHubClient) -> None:
    with pytest.raises(AuthError, match="acme/nope does not exist or the token may not use it"):
        client.check_repo_admin("acme/nope")


# -- retries and rate limits --------------------------------------------------------------------


def test_transient_429_5xx_and_resets_are_retried(
    github_emu: GitHubEmulator, client: github.GitHubClient
) -> None:
    github_emu.faults.add(Fault("ratelimit", path="/branches", nth=1, retry_after=0))
    github_emu.faults.add(Fault("ratelimit", path="/branches", nth=2, status=403, retry_after=0))
    github_emu.faults.add(Fault("status", path="/keys", times=2, status=502))
    github_emu.faults.add(Fault("reset", path="/git/trees", times=1))
    assert client.branches(INFRA_REPO) == ["main"]
    assert client.list_deploy_keys(INFRA_REPO) == []
    assert client.read_tree(INFRA_REPO, "main", "") == {"README.md": "# infra\n"}
    assert github_emu.log.count("GET", "/branches") == 3
    assert github_emu.log.count("GET", "/keys") == 3


def test_persistent_failures_become_retryable_errors(
    github_emu: GitHubEmulator, client: github.GitHubClient
) -> None:
    github_emu.faults.add(Fault("status", path="/branches", status=503))
    with pytest.raises(
        RetryableError, match="could not list the branches of acme/infra: GitHub answered 503"
    ):
        client.branches(INFRA_REPO)
    assert github_emu.log.count("GET", "/branches") == 4  # first try + 3 retries, then give up
    github_emu.faults.clear()
    head = client.branch_head(INFRA_REPO, "main")
    github_emu.faults.add(Fault("reset", method="PATCH"))  # PATCH is not retried: it may have landed
    with pytest.raises(
        RetryableError, match=r"could not commit to acme/infra branch main: GitHub at .* did not answer"
    ):
        client.commit_files(INFRA_REPO, "main", head, {"a": "b\n"}, "m")


def test_long_waits_are_handed_to_the_engine(github_emu: GitHubEmulator, client: github.GitHubClient) -> None:
    reset = time.time() + 3600
    github_emu.set_rate_limit(ADMIN_TOKEN, 0, reset)
    with pytest.raises(RetryableError, match="rate limit") as primary:
        client.branches(INFRA_REPO)
    assert primary.value.delay is not None and 3000 < primary.value.delay < 3700
    github_emu.set_rate_limit(ADMIN_TOKEN, 100, reset)
    github_emu.faults.add(Fault("ratelimit", times=1, retry_after=120))
    with pytest.raises(RetryableError, match="rate limit") as secondary:
        client.branches(INFRA_REPO)
    assert secondary.value.delay == 120


def test_a_short_primary_reset_is_waited_out(github_emu: GitHubEmulator, client: github.GitHubClient) -> None:
    github_emu.set_rate_limit(ADMIN_TOKEN, 0, int(time.time()) + 1)
    assert client.branches(INFRA_REPO) == ["main"]


# -- GitHub App / OAuth -------------------------------------------------------------------------


def test_manifest_conversion_and_oauth_check(github_emu: GitHubEmulator, client: github.GitHubClient) -> None:
    code = github_emu.complete_manifest_flow(
        "acme", {"name": "Argo CD acme", "url": "https://argocd.acme.test"}
    )
    app = client.convert_app_manifest(code)
    stored = github_emu.apps["argo-cd-acme"]
    assert (app.id, app.slug, app.client_id, app.client_secret) == (
        stored.id,
        "argo-cd-acme",
        stored.client_id,
        stored.client_secret,
    )
    assert app.pem == stored.pem and app.webhook_secret == stored.webhook_secret
    assert app.html_url == f"{github_emu.url}/apps/argo-cd-acme"
    assert_no_secret(ValueError(repr(app)), app.client_secret, app.pem)
    with pytest.raises(PermanentError, match="work once, for one hour"):
        client.convert_app_manifest(code)

    assert client.check_oauth_client(app.client_id, app.client_secret) is True
    assert client.check_oauth_client(app.client_id, "wrong-secret") is False
    github_emu.add_oauth_app("Ov23manual", "manual-s3cret")
    assert client.check_oauth_client("Ov23manual", "manual-s3cret") is True
