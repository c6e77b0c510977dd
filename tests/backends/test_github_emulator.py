"""Realism tests of the GitHub emulator, through PyGithub and plain requests.

Every JSON answer the emulator gives during these tests is validated against
GitHub's official OpenAPI description (``validated`` below), so a shape the
real API would not send fails here before a step comes to rely on it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubRetry,
    InputGitTreeElement,
    RateLimitExceededException,
    UnknownObjectException,
)

from sandbox.github import GitHubEmulator
from sandbox.github_seed import ADMIN_TOKEN, KIT_ADDONS
from sandbox.httpemu import Fault
from tests.fixtures.github import GitHubOpenAPI


@pytest.fixture(autouse=True)
def validated(github_emu: GitHubEmulator, github_openapi: GitHubOpenAPI) -> Iterator[None]:
    """After each test, check every JSON answer the emulator gave against the OpenAPI description."""
    yield
    assert github_emu.exchanges is not None
    for ex in github_emu.exchanges:
        if ex.template is not None:
            github_openapi.validate_exchange(ex)


def gh(emu: GitHubEmulator, token: str = ADMIN_TOKEN, **kw: Any) -> Github:
    kw.setdefault("retry", None)
    return Github(
        base_url=emu.url, auth=Auth.Token(token), seconds_between_requests=0, seconds_between_writes=0, **kw
    )


def http(emu: GitHubEmulator, token: str | None = ADMIN_TOKEN) -> requests.Session:
    s = requests.Session()
    s.headers["Accept"] = "application/vnd.github+json"
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def new_key(comment: str = "argocd@acme") -> str:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    text = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# -- every operation, against the spec -------------------------------------------------


def test_every_emulated_operation_answers_per_spec(
    github_emu: GitHubEmulator, github_openapi: GitHubOpenAPI
) -> None:
    emu, s, base = github_emu, http(github_emu), github_emu.url
    repo = f"{base}/repos/acme/infra"
    head = s.get(f"{repo}/git/ref/heads/main").json()["object"]["sha"]
    blob = s.post(f"{repo}/git/blobs", json={"content": "a: 1\n", "encoding": "utf-8"}).json()["sha"]
    tree = s.post(
        f"{repo}/git/trees",
        json={"tree": [{"path": "x/a.yaml", "mode": "100644", "type": "blob", "sha": blob}]},
    )
    commit = s.post(
        f"{repo}/git/commits", json={"message": "m", "tree": tree.json()["sha"], "parents": [head]}
    )
    key = s.post(f"{repo}/keys", json={"title": "t", "key": new_key(), "read_only": True}).json()
    code = emu.complete_manifest_flow("acme", {"name": "Argo CD acme", "url": "https://argocd.acme.test"})
    calls: list[tuple[str, str, requests.Response]] = [
        ("GET", "/user", s.get(f"{base}/user")),
        ("GET", "/orgs/{org}", s.get(f"{base}/orgs/acme")),
        ("GET", "/repos/{owner}/{repo}", s.get(repo)),
        ("GET", "/repos/{owner}/{repo}/contents/{path}", s.get(f"{repo}/contents/README.md")),
        ("GET", "/repos/{owner}/{repo}/branches", s.get(f"{repo}/branches")),
        ("GET", "/repos/{owner}/{repo}/branches/{branch}", s.get(f"{repo}/branches/main")),
        ("GET", "/repos/{owner}/{repo}/git/ref/{ref}", s.get(f"{repo}/git/refs/heads/main")),
        (
            "POST",
            "/repos/{owner}/{repo}/git/blobs",
            s.post(f"{repo}/git/blobs", json={"content": "eA==", "encoding": "base64"}),
        ),
        ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}", s.get(f"{repo}/git/blobs/{blob}")),
        ("POST", "/repos/{owner}/{repo}/git/trees", tree),
        ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", s.get(f"{repo}/git/trees/main?recursive=1")),
        ("POST", "/repos/{owner}/{repo}/git/commits", commit),
        ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}", s.get(f"{repo}/git/commits/{head}")),
        (
            "POST",
            "/repos/{owner}/{repo}/git/refs",
            s.post(f"{repo}/git/refs", json={"ref": "refs/heads/x", "sha": head}),
        ),
        (
            "PATCH",
            "/repos/{owner}/{repo}/git/refs/{ref}",
            s.patch(f"{repo}/git/refs/heads/main", json={"sha": commit.json()["sha"]}),
        ),
        (
            "GET",
            "/repos/{owner}/{repo}/commits",
            s.get(f"{repo}/commits", params={"sha": "main", "path": "x"}),
        ),
        ("GET", "/repos/{owner}/{repo}/keys", s.get(f"{repo}/keys")),
        ("GET", "/repos/{owner}/{repo}/keys/{key_id}", s.get(f"{repo}/keys/{key['id']}")),
        ("DELETE", "/repos/{owner}/{repo}/keys/{key_id}", s.delete(f"{repo}/keys/{key['id']}")),
        (
            "POST",
            "/app-manifests/{code}/conversions",
            requests.post(f"{base}/app-manifests/{code}/conversions"),
        ),
        ("GET", "/apps/{app_slug}", requests.get(f"{base}/apps/argo-cd-acme")),
        (
            "PUT",
            "/repos/{owner}/{repo}/contents/{path}",
            s.put(f"{repo}/contents/docs/new.md", json={"message": "m", "content": "eA==", "branch": "x"}),
        ),
    ]
    for method, template, resp in calls:
        assert resp.status_code < 300, (method, template, resp.status_code, resp.text)
        github_openapi.validate(method, template, resp.status_code, resp.json() if resp.content else None)
        assert resp.headers["x-github-request-id"]
    # POST /repos/.../keys answered above too; the check-token call only ever fails (see below)
    covered = {(m, t) for m, t, _ in calls} | {("POST", "/repos/{owner}/{repo}/keys")}
    covered |= {("POST", "/applications/{client_id}/token")}
    assert set(emu.operations) == covered


def test_every_url_points_at_the_emulator(github_emu: GitHubEmulator) -> None:
    s = http(github_emu)
    body = s.get(f"{github_emu.url}/repos/acme/infra").json()
    urls = [v for k, v in body.items() if k == "url" or k.endswith("_url")]
    urls += [v for k, v in body["owner"].items() if k.endswith("url") and v]
    urls = [u for u in urls if u and not u.startswith(("git@", "git://"))]
    assert len(urls) > 40 and all(u.startswith(github_emu.url) for u in urls)


# -- reading a repository through PyGithub ------------------------------------------------


def test_pygithub_reads_repo_branches_contents_and_trees(github_emu: GitHubEmulator) -> None:
    g = gh(github_emu)
    assert g.get_user().login == "acme-admin"
    kit = g.get_repo("acme-sre/kit-core")
    assert kit.permissions.admin and kit.private and kit.default_branch == "main"
    assert [b.name for b in kit.get_branches()] == ["main", "v1.4", "v1.5"]
    v15 = kit.get_branch("v1.5")
    catalog = kit.get_contents("addons/values.yaml", ref="v1.5")
    assert not isinstance(catalog, list)
    assert "velero" in catalog.decoded_content.decode()
    assert "velero" not in kit.get_contents("addons/values.yaml", ref="v1.4").decoded_content.decode()  # type: ignore[union-attr]
    nested = kit.get_contents("addons/templates/applications.yaml", ref="v1.5")
    assert not isinstance(nested, list) and nested.path == "addons/templates/applications.yaml"
    listing = kit.get_contents("addons", ref="v1.4")
    assert isinstance(listing, list)
    assert sorted(c.name for c in listing) == ["Chart.yaml", "templates", "values.yaml"]
    assert all(a in catalog.decoded_content.decode() for a in KIT_ADDONS["v1.4"])
    tree = kit.get_git_tree(v15.commit.sha, recursive=True)
    paths = {e.path for e in tree.tree if e.type == "blob"}
    assert {"addons/values.yaml", "base/Chart.yaml", "addons/templates/applications.yaml"} <= paths
    blob = next(e for e in tree.tree if e.path == "addons/values.yaml")
    assert base64.b64decode(kit.get_git_blob(blob.sha).content) == catalog.decoded_content
    assert kit.get_git_ref("heads/v1.5").object.sha == v15.commit.sha


def test_contents_routes_url_encoded_paths_and_404s(github_emu: GitHubEmulator) -> None:
    s, repo = http(github_emu), f"{github_emu.url}/repos/acme-sre/kit-core"
    encoded = s.get(
        f"{repo}/contents/{urllib.parse.quote('addons/templates/applications.yaml', safe='')}?ref=v1.4"
    )
    assert encoded.status_code == 200 and encoded.json()["path"] == "addons/templates/applications.yaml"
    missing = s.get(f"{repo}/contents/nope.yaml")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found" and missing.json()["status"] == "404"
    assert s.get(f"{repo}/contents/addons/values.yaml?ref=v9.9").status_code == 404
    with pytest.raises(UnknownObjectException):
        gh(github_emu).get_repo("acme-sre/kit-core").get_branch("v9.9")
    assert s.get(f"{repo}/branches/v9.9").json()["message"] == "Branch not found"
    root = s.get(f"{repo}/contents", params={"ref": "v1.4"})
    assert {e["name"] for e in root.json()} == {"README.md", "base", "aws", "gcp", "addons"}


def test_unknown_route_is_githubs_404(github_emu: GitHubEmulator) -> None:
    resp = http(github_emu).get(f"{github_emu.url}/repos/acme/infra/pulls/1/reviews/xyz/nope")
    assert resp.status_code == 404
    assert resp.json() == {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
    assert http(github_emu).get(f"{github_emu.url}/orgs/nobody").status_code == 404


# -- git data: real SHAs, trees, commits, refs ------------------------------------------


def test_git_objects_have_gits_shas(github_emu: GitHubEmulator) -> None:
    repo = gh(github_emu).get_repo("acme/infra")
    assert repo.create_git_blob("hello\n", "utf-8").sha == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert repo.create_git_blob(base64.b64encode(b"\x00\x01").decode(), "base64").sha == git_blob_sha(
        b"\x00\x01"
    )
    empty = repo.create_git_tree([])
    assert empty.sha == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
    elements = [InputGitTreeElement("a/b/c.txt", "100644", "blob", content="hello\n")]
    assert repo.create_git_tree(elements).sha == repo.create_git_tree(elements).sha


def test_commit_with_base_tree_nested_paths_and_deletion(github_emu: GitHubEmulator) -> None:
    repo = gh(github_emu).get_repo("acme/infra")
    head = repo.get_git_commit(repo.get_branch("main").commit.sha)
    tree = repo.create_git_tree(
        [
            InputGitTreeElement("argocd/root.yaml", "100644", "blob", content="root\n"),
            InputGitTreeElement("argocd/values/acme.yaml", "100644", "blob", content="domain: acme.test\n"),
        ],
        head.tree,
    )
    first = repo.create_git_commit("argocd: add", tree, [head])
    assert [p.sha for p in first.parents] == [head.sha]
    repo.get_git_ref("heads/main").edit(first.sha)
    assert github_emu.read_tree("acme", "infra", "main") == {
        "README.md": "# infra\n",
        "argocd/root.yaml": "root\n",
        "argocd/values/acme.yaml": "domain: acme.test\n",
    }
    gone = repo.create_git_tree(
        [InputGitTreeElement("argocd/values/acme.yaml", "100644", "blob", sha=None)], tree
    )
    second = repo.create_git_commit("argocd: drop values", gone, [first])
    repo.get_git_ref("heads/main").edit(second.sha)
    assert set(github_emu.read_tree("acme", "infra", "main")) == {"README.md", "argocd/root.yaml"}
    commits = list(repo.get_commits(sha="main", path="argocd/values"))
    assert [c.sha for c in commits] == [second.sha, first.sha]
    assert repo.get_commits(sha="main", path="argocd/root.yaml")[0].sha == first.sha


def test_deleting_a_missing_path_and_bad_shas_are_422(github_emu: GitHubEmulator) -> None:
    s, repo = http(github_emu), f"{github_emu.url}/repos/acme/infra"
    base = s.get(f"{repo}/git/trees/main").json()["sha"]
    gone = s.post(
        f"{repo}/git/trees",
        json={"base_tree": base, "tree": [{"path": "nope", "mode": "100644", "type": "blob", "sha": None}]},
    )
    assert gone.status_code == 422
    commit = s.post(f"{repo}/git/commits", json={"message": "m", "tree": "0" * 40, "parents": []})
    assert commit.status_code == 422 and commit.json()["message"] == "Tree SHA does not exist"


def test_ref_update_refuses_a_non_fast_forward(github_emu: GitHubEmulator) -> None:
    repo = gh(github_emu).get_repo("acme/infra")
    parent = repo.get_git_commit(repo.get_branch("main").commit.sha)
    tree = repo.create_git_tree(
        [InputGitTreeElement("mine.txt", "100644", "blob", content="mine\n")], parent.tree
    )
    mine = repo.create_git_commit("mine", tree, [parent])
    github_emu.commit_files("acme", "infra", "main", {"theirs.txt": "theirs\n"}, "a hand push")
    with pytest.raises(GithubException) as err:
        repo.get_git_ref("heads/main").edit(mine.sha, force=False)
    assert err.value.status == 422 and err.value.data["message"] == "Update is not a fast forward"
    repo.get_git_ref("heads/main").edit(mine.sha, force=True)
    assert repo.get_branch("main").commit.sha == mine.sha


def test_create_ref_and_duplicate(github_emu: GitHubEmulator) -> None:
    repo = gh(github_emu).get_repo("acme/infra")
    head = repo.get_branch("main").commit.sha
    assert repo.create_git_ref("refs/heads/feature/x", head).ref == "refs/heads/feature/x"
    assert repo.get_branch("feature/x").commit.sha == head
    with pytest.raises(GithubException) as err:
        repo.create_git_ref("refs/heads/feature/x", head)
    assert err.value.status == 422 and err.value.data["message"] == "Reference already exists"


# -- deploy keys ------------------------------------------------------------------------


def test_deploy_keys_lifecycle_and_key_in_use(github_emu: GitHubEmulator) -> None:
    github_emu.create_repo("acme", "other")
    g = gh(github_emu)
    infra, other = g.get_repo("acme/infra"), g.get_repo("acme/other")
    public = new_key("argocd@acme")
    raw = http(github_emu).post(
        f"{github_emu.url}/repos/acme/infra/keys", json={"title": "argocd-acme", "key": public}
    )
    assert raw.status_code == 201
    body = raw.json()
    assert body["read_only"] is False  # GitHub's default: read-write
    assert body["key"] == " ".join(public.split()[:2])  # comment dropped
    assert body["added_by"] == "acme-admin" and body["verified"] is True and body["last_used"] is None
    assert raw.headers["location"] == body["url"]
    assert [k.title for k in infra.get_keys()] == ["argocd-acme"]

    for repo in (infra, other):  # on this repo, and on any other repo
        with pytest.raises(GithubException) as err:
            repo.create_key("again", public.replace("argocd@acme", "other comment"), read_only=True)
        assert err.value.status == 422
        assert err.value.data["errors"] == [
            {"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"}
        ]
        assert err.value.data["message"] == "Validation Failed" and err.value.data["status"] == "422"

    elsewhere = new_key()
    github_emu.mark_key_used_elsewhere(elsewhere)
    with pytest.raises(GithubException):
        other.create_key("t", elsewhere, read_only=True)
    with pytest.raises(GithubException) as bad:
        other.create_key("t", "ssh-ed25519 bm90IGEga2V5", read_only=True)
    assert "OpenSSH public key format" in bad.value.data["errors"][0]["message"]

    key = infra.get_key(body["id"])
    key.delete()
    assert github_emu.deploy_keys("acme", "infra") == []
    with pytest.raises(UnknownObjectException):
        infra.get_key(body["id"])
    assert other.create_key("now-free", public, read_only=True).read_only is True


# -- auth and permissions ------------------------------------------------------------


def test_bad_token_is_401_bad_credentials(github_emu: GitHubEmulator) -> None:
    with pytest.raises(BadCredentialsException):
        gh(github_emu, "ghp_wrong").get_repo("acme/infra")
    resp = http(github_emu, "ghp_wrong").get(f"{github_emu.url}/repos/acme/infra")
    assert resp.status_code == 401
    assert resp.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    anonymous = http(github_emu, None)
    assert anonymous.get(f"{github_emu.url}/user").status_code == 401
    assert anonymous.get(f"{github_emu.url}/repos/acme/infra").status_code == 404  # private


def test_classic_token_scopes_and_roles(github_emu: GitHubEmulator) -> None:
    github_emu.add_token("ghp_noscope", "dev", scopes=("read:org",))
    github_emu.add_token("ghp_writer", "writer", scopes=("repo",), role="write")
    with pytest.raises(UnknownObjectException):
        gh(github_emu, "ghp_noscope").get_repo("acme/infra")
    resp = http(github_emu, "ghp_noscope").get(f"{github_emu.url}/repos/acme/infra")
    assert resp.headers["x-oauth-scopes"] == "read:org" and resp.headers["x-accepted-oauth-scopes"] == "repo"
    writer = gh(github_emu, "ghp_writer").get_repo("acme/infra")
    assert writer.permissions.push and not writer.permissions.admin
    with pytest.raises(UnknownObjectException):  # classic tokens see 404, not 403, without admin
        list(writer.get_keys())
    assert writer.create_git_blob("ok\n", "utf-8").sha


def test_fine_grained_token_missing_permissions_is_403(github_emu: GitHubEmulator) -> None:
    github_emu.add_token("github_pat_ro", "bot", permissions={"contents": "read", "metadata": "read"})
    s, repo = http(github_emu, "github_pat_ro"), f"{github_emu.url}/repos/acme/infra"
    keys = s.get(f"{repo}/keys")
    assert keys.status_code == 403
    assert keys.json()["message"] == "Resource not accessible by personal access token"
    assert keys.headers["x-accepted-github-permissions"] == "administration=read"
    add = s.post(f"{repo}/keys", json={"title": "t", "key": new_key()})
    assert add.headers["x-accepted-github-permissions"] == "administration=write"
    blob = s.post(f"{repo}/git/blobs", json={"content": "x", "encoding": "utf-8"})
    assert blob.status_code == 403 and blob.headers["x-accepted-github-permissions"] == "contents=write"
    assert "x-oauth-scopes" not in blob.headers
    with pytest.raises(GithubException) as err:
        gh(github_emu, "github_pat_ro").get_repo("acme/infra").create_key("t", new_key(), read_only=True)
    headers = err.value.headers or {}
    assert err.value.status == 403 and headers["x-accepted-github-permissions"] == "administration=write"
    assert s.get(f"{repo}/contents/README.md").status_code == 200


# -- pagination and rate limits ---------------------------------------------------------


def test_pagination_link_headers(github_emu: GitHubEmulator) -> None:
    for i in range(5):
        github_emu.create_branch("acme", "infra", f"b{i}", {f"f{i}": "x"})
    s = http(github_emu)
    first = s.get(f"{github_emu.url}/repos/acme/infra/branches", params={"per_page": 2})
    assert len(first.json()) == 2
    assert set(first.links) == {"next", "last"}
    assert "page=3" in first.links["last"]["url"] and first.links["next"]["url"].startswith(github_emu.url)
    middle = s.get(first.links["next"]["url"])
    assert set(middle.links) == {"next", "last", "prev", "first"}
    last = s.get(first.links["last"]["url"])
    assert len(last.json()) == 2 and set(last.links) == {"prev", "first"}
    names = [b.name for b in gh(github_emu, per_page=2).get_repo("acme/infra").get_branches()]
    assert names == ["b0", "b1", "b2", "b3", "b4", "main"]


def test_rate_limit_headers_and_exhaustion(github_emu: GitHubEmulator) -> None:
    s, url = http(github_emu), f"{github_emu.url}/repos/acme/infra"
    one, two = s.get(url), s.get(url)
    assert one.headers["x-ratelimit-limit"] == "5000" and one.headers["x-ratelimit-resource"] == "core"
    assert int(one.headers["x-ratelimit-remaining"]) - 1 == int(two.headers["x-ratelimit-remaining"])
    assert int(two.headers["x-ratelimit-used"]) == 5000 - int(two.headers["x-ratelimit-remaining"])
    reset = int(time.time()) + 600
    github_emu.set_rate_limit(ADMIN_TOKEN, 0, reset)
    limited = s.get(url)
    assert limited.status_code == 403
    assert limited.json()["message"].startswith("API rate limit exceeded for user ID ")
    assert limited.headers["x-ratelimit-remaining"] == "0" and limited.headers["x-ratelimit-reset"] == str(
        reset
    )
    with pytest.raises(RateLimitExceededException):
        gh(github_emu).get_repo("acme/infra")
    github_emu.set_rate_limit(ADMIN_TOKEN, 0, time.time() - 1)  # the window is over
    assert s.get(url).headers["x-ratelimit-remaining"] == "4999"


# -- fault injection as the SDKs see it ---------------------------------------------------


def test_injected_429_and_5xx_shapes(github_emu: GitHubEmulator, github_openapi: GitHubOpenAPI) -> None:
    s, url = http(github_emu), f"{github_emu.url}/repos/acme/infra"
    github_emu.faults.add(Fault("ratelimit", nth=1, retry_after=7))
    limited = s.get(url)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    github_openapi.validate_schema("basic-error", limited.json())
    github_emu.faults.add(Fault("ratelimit", nth=1, status=403, retry_after=0))
    assert s.get(url).status_code == 403
    github_emu.faults.add(Fault("status", nth=1, status=502))
    failed = s.get(url)
    assert failed.status_code == 502 and failed.headers["x-github-request-id"]
    github_openapi.validate_schema("basic-error", failed.json())
    github_emu.faults.add(Fault("reset", nth=1))
    with pytest.raises(requests.ConnectionError):
        s.get(url)
    assert s.get(url).status_code == 200


def test_pygithub_retry_rides_out_429_and_5xx(github_emu: GitHubEmulator) -> None:
    github_emu.faults.add(Fault("ratelimit", path=r"/repos/acme/infra$", times=1, retry_after=0))
    github_emu.faults.add(Fault("status", path=r"/branches", times=2, status=503))
    g = gh(github_emu, retry=GithubRetry(total=3, backoff_factor=0))
    repo = g.get_repo("acme/infra")
    assert repo.name == "infra"
    assert [b.name for b in repo.get_branches()] == ["main"]
    assert github_emu.log.count("GET", r"/branches$") == 3
    github_emu.faults.add(Fault("status", path=r"/branches", status=500))
    with pytest.raises(GithubException) as err:
        list(gh(github_emu).get_repo("acme/infra").get_branches())
    assert err.value.status == 500


# -- GitHub App manifest flow and OAuth client check --------------------------------------


def test_manifest_flow_through_the_browser_form(
    github_emu: GitHubEmulator, github_openapi: GitHubOpenAPI
) -> None:
    manifest = {
        "name": "Argo CD acme",
        "url": "https://argocd.acme.test",
        "redirect_url": "http://127.0.0.1:1/callback",
        "callback_urls": ["https://argocd.acme.test/api/dex/callback"],
        "public": False,
        "default_permissions": {"members": "read", "emails": "read"},
    }
    form = requests.post(
        f"{github_emu.url}/organizations/acme/settings/apps/new",
        params={"state": "s3cr3t-state"},
        data={"manifest": json.dumps(manifest)},
        allow_redirects=False,
    )
    assert form.status_code == 200 and "Create GitHub App" in form.text  # GitHub asks to confirm
    assert github_emu.apps == {}
    ticket = re.search(r'name="ticket" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    stale = requests.post(
        f"{github_emu.url}/organizations/other/settings/apps/new/confirm",
        data={"ticket": ticket},
        allow_redirects=False,
    )
    assert stale.status_code == 404  # a ticket belongs to its organization's page
    ticket = re.search(  # type: ignore[union-attr]
        r'name="ticket" value="([^"]+)"',
        requests.post(
            f"{github_emu.url}/organizations/acme/settings/apps/new",
            params={"state": "s3cr3t-state"},
            data={"manifest": json.dumps(manifest)},
        ).text,
    ).group(1)
    confirmed = requests.post(
        f"{github_emu.url}/organizations/acme/settings/apps/new/confirm",
        data={"ticket": ticket},
        allow_redirects=False,
    )
    assert confirmed.status_code == 302
    location = urllib.parse.urlsplit(confirmed.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == manifest["redirect_url"]
    query = dict(urllib.parse.parse_qsl(location.query))
    assert query["state"] == "s3cr3t-state"

    # PyGithub has no method for the conversion: the raw requester is what the adapter uses
    _, app = gh(github_emu).requester.requestJsonAndCheck(
        "POST", f"/app-manifests/{query['code']}/conversions"
    )
    assert app["slug"] == "argo-cd-acme" and app["owner"]["login"] == "acme"
    assert app["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----") and app["client_secret"]
    assert app["permissions"] == {"metadata": "read", "members": "read", "emails": "read"}
    assert github_emu.apps["argo-cd-acme"].client_id == app["client_id"]
    again = requests.post(f"{github_emu.url}/app-manifests/{query['code']}/conversions")
    assert again.status_code == 404  # codes are one-shot
    public = requests.get(f"{github_emu.url}/apps/argo-cd-acme").json()
    assert "client_secret" not in public and "pem" not in public

    token_url = f"{github_emu.url}/applications/{app['client_id']}/token"
    valid = requests.post(
        token_url, auth=(app["client_id"], app["client_secret"]), json={"access_token": "ghu_x"}
    )
    assert valid.status_code == 404 and valid.json()["message"] == "Not Found"
    wrong = requests.post(token_url, auth=(app["client_id"], "nope"), json={"access_token": "ghu_x"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Bad credentials"
    unfilled = requests.post(token_url, auth=(app["client_id"], app["client_secret"]), json={})
    assert unfilled.status_code == 422
    github_emu.add_oauth_app("Ov23manual", "manual-secret")
    manual = requests.post(
        f"{github_emu.url}/applications/Ov23manual/token",
        auth=("Ov23manual", "manual-secret"),
        json={"access_token": "x"},
    )
    assert manual.status_code == 404


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"hook_attributes": {"active": False}}, 'Error: "url" wasn\'t supplied.'),  # probot#806, curia#933
        ({"url": None}, 'Error: "url" wasn\'t supplied.'),
        ({"url": {"type": "git"}}, 'For \'properties/url\', {"type": "git"} is not a string.'),
        ({"callback_urls": [f"https://h{i}.test/cb" for i in range(11)]}, "limited to 10"),
        ({"name": "x" * 35}, "maximum is 34 characters"),
        ({"public": "no"}, "For 'properties/public', \"no\" is not a boolean."),
        ({"default_permissions": {"members": "admin"}}, "read or write"),
    ],
)
def test_manifest_form_refuses_an_invalid_manifest_as_github_does(
    github_emu: GitHubEmulator, change: dict[str, Any], says: str
) -> None:
    manifest = {
        "name": "Argo CD acme",
        "url": "https://argocd.acme.test",
        "redirect_url": "http://127.0.0.1:1/cb",
    }
    manifest = {k: v for k, v in (manifest | change).items() if v is not None}
    form = requests.post(
        f"{github_emu.url}/organizations/acme/settings/apps/new",
        params={"state": "s"},
        data={"manifest": json.dumps(manifest)},
        allow_redirects=False,
    )
    assert form.status_code == 422 and "location" not in form.headers
    assert "Invalid GitHub App configuration" in form.text and says in html.unescape(form.text)
    assert github_emu.apps == {}
    with_hook = manifest | {"url": "https://a.test", "hook_attributes": {"url": "https://a.test/hook"}}
    if not {"name", "callback_urls", "public", "default_permissions"} & set(change):
        assert github_emu.complete_manifest_flow("acme", with_hook)  # a hook with its url is fine


# -- request bodies, as GitHub's OpenAPI description has them ------------------------------


def test_request_bodies_are_checked_against_the_openapi_description(github_emu: GitHubEmulator) -> None:
    """GitHub refuses a body that breaks the operation's requestBody schema with 422 "Invalid request."

    Shape: PyGithub's tests/ReplayData/
    Branch.testEditRequiredPullRequestReviewsWithTooLargeApprovingReviewCount.txt."""
    assert github_emu.validates_requests, "node_modules/@octokit/openapi is missing: run npm ci"
    s, repo = http(github_emu), f"{github_emu.url}/repos/acme/infra"
    head = s.get(f"{repo}/git/ref/heads/main").json()["object"]["sha"]
    cases = [
        ("POST", f"{repo}/git/refs", {"ref": "refs/heads/x"}, '"sha" wasn\'t supplied.'),
        ("PATCH", f"{repo}/git/refs/heads/main", {"sha": head, "force": "yes"}, "is not a boolean"),
        ("POST", f"{repo}/git/blobs", {"encoding": "utf-8"}, '"content" wasn\'t supplied.'),
        (
            "POST",
            f"{repo}/git/trees",
            {"tree": [{"path": "a", "mode": 100644, "type": "blob"}]},
            "not a string",
        ),
        ("POST", f"{repo}/git/trees", {"tree": [{"path": "a", "mode": "100600", "type": "blob"}]}, "100644"),
        ("POST", f"{repo}/git/commits", {"tree": head}, '"message" wasn\'t supplied.'),
        ("POST", f"{repo}/keys", {"title": "t", "key": new_key(), "read_only": "true"}, "is not a boolean"),
        ("POST", f"{repo}/keys", {"title": "t"}, '"key" wasn\'t supplied.'),
    ]
    for method, url, body, says in cases:
        resp = s.request(method, url, json=body)
        assert resp.status_code == 422, (method, url, resp.text)
        data = resp.json()
        assert data["message"].startswith("Invalid request.\n\n") and says in data["message"], data
        assert data["documentation_url"] and data["status"] == "422"
    assert github_emu.deploy_keys("acme", "infra") == []  # nothing was written
    garbled = s.post(f"{repo}/git/blobs", data=b"{not json", headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400 and garbled.json()["message"] == "Problems parsing JSON"
    # what the steps send is accepted (the step tests run with the same checks on)
    ok = s.post(f"{repo}/keys", json={"title": "t", "key": new_key(), "read_only": True})
    assert ok.status_code == 201


# -- edge states: empty and archived repositories ---------------------------------------------


def test_empty_repository_answers_like_github(github_emu: GitHubEmulator) -> None:
    """Git Data on an empty repo: 409 "Git Repository is empty." (github/rest-api-description#637,
    github/docs#31951); the Contents API makes the first commit and names the branch."""
    github_emu.create_repo("acme", "blank", empty=True)
    s, repo = http(github_emu), f"{github_emu.url}/repos/acme/blank"
    assert s.get(f"{repo}/branches/main").json()["message"] == "Branch not found"
    assert s.get(f"{repo}/branches").json() == []
    for method, url, body in [
        ("POST", f"{repo}/git/blobs", {"content": "x", "encoding": "utf-8"}),
        (
            "POST",
            f"{repo}/git/trees",
            {"tree": [{"path": "a", "mode": "100644", "type": "blob", "content": "a"}]},
        ),
        ("GET", f"{repo}/git/trees/main", None),
        ("GET", f"{repo}/git/ref/heads/main", None),
    ]:
        resp = s.request(method, url, json=body)
        assert resp.status_code == 409 and resp.json()["message"] == "Git Repository is empty.", (
            url,
            resp.text,
        )
    assert s.get(f"{repo}/contents/README.md").status_code == 404
    made = s.put(
        f"{repo}/contents/argocd/root.yaml",
        json={"message": "first", "content": base64.b64encode(b"root\n").decode(), "branch": "main"},
    )
    assert made.status_code == 201 and made.json()["commit"]["parents"] == []
    assert made.json()["content"]["path"] == "argocd/root.yaml"
    assert github_emu.read_tree("acme", "blank", "main") == {"argocd/root.yaml": "root\n"}
    again = s.put(f"{repo}/contents/argocd/root.yaml", json={"message": "m", "content": "eA=="})
    assert again.status_code == 422  # updating needs the blob sha
    stale = s.put(
        f"{repo}/contents/argocd/root.yaml", json={"message": "m", "content": "eA==", "sha": "0" * 40}
    )
    assert stale.status_code == 409
    assert s.post(f"{repo}/git/blobs", json={"content": "x", "encoding": "utf-8"}).status_code == 201


def test_archived_repository_is_read_only(github_emu: GitHubEmulator) -> None:
    github_emu.archive_repo("acme", "infra")
    s, repo = http(github_emu), f"{github_emu.url}/repos/acme/infra"
    assert s.get(repo).json()["archived"] is True and s.get(f"{repo}/keys").status_code == 200
    for url, body in [
        (f"{repo}/keys", {"title": "t", "key": new_key(), "read_only": True}),
        (f"{repo}/git/blobs", {"content": "x", "encoding": "utf-8"}),
    ]:
        resp = s.post(url, json=body)
        assert (
            resp.status_code == 403 and resp.json()["message"] == "Repository was archived so is read-only."
        )
