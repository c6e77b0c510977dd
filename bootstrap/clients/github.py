"""The one adapter the steps use for GitHub (over PyGithub).

It guarantees three things the steps rely on:

- values, not SDK objects: every method returns small frozen dataclasses or
  plain strings, so steps never touch PyGithub (and tests never mock it);
- GitHub's failures arrive as the tool's errors with a next step for the
  person: a bad token or a missing permission is an ``AuthError`` naming the
  permission, a rate limit / 5xx / lost connection / concurrent push is a
  ``RetryableError`` (with the delay GitHub asked for, when it said one),
  everything else a ``PermanentError``. The token never appears in a message;
- bounded waiting: short rate-limit waits and transient errors are retried in
  place (PyGithub's ``GithubRetry``), but a wait longer than ``max_wait``
  becomes ``RetryableError(delay=…)`` so the engine, not a sleeping thread,
  decides when to come back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from github import (
    Auth,
    Github,
    GithubException,
    GithubRetry,
    InputGitTreeElement,
    RateLimitExceededExceedsMaxWait,
    UnknownObjectException,
)

from bootstrap.clients import budget, github_batch
from bootstrap.clients.github_keys import DeployKey, KeyInUse, fingerprint
from bootstrap.errors import AuthError, PermanentError, RetryableError, StepError

# (fine-grained permission, what a classic token needs for the same)
ADMIN = ("Administration: write", "`repo` scope and admin on the repo")
CONTENTS_READ = ("Contents: read", "`repo` scope")
CONTENTS_WRITE = ("Contents: write", "`repo` scope and write access to the repo")
Need = tuple[str, str]
SHARED_ATTEMPTS = 5
"""How often ``commit_shared`` re-reads and re-applies after another process moved the branch."""


class BranchMoved(RetryableError):
    """The branch no longer points at the commit a change was built on: someone pushed in between."""


def blob_sha(text: str) -> str:
    """The git object id of a file holding ``text`` (what a tree entry's ``sha`` is)."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _key_id(public_openssh: str) -> str:
    """``type base64``: what GitHub compares keys by (it drops the comment)."""
    return " ".join(public_openssh.split()[:2])


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    default_branch: str
    private: bool


@dataclass(frozen=True)
class RepoAccess:
    """What a token may do on a repository, observed with reads only (see ``inspect_repo``)."""

    full_name: str
    archived: bool
    empty: bool
    private: bool
    scopes: frozenset[str] | None
    """A classic token's scopes (``x-oauth-scopes``); None for a fine-grained token or an App."""
    admin: bool
    push: bool
    """The user's role on the repository (its ``permissions`` object)."""
    denied: dict[str, str]
    """Fine-grained: permission area → level a read probe was refused for (403 + header)."""


@dataclass(frozen=True)
class AppCredentials:
    """What the manifest conversion returns; the secrets stay out of ``repr``."""

    id: int
    slug: str
    client_id: str
    html_url: str
    client_secret: str = field(repr=False)
    pem: str = field(repr=False)
    webhook_secret: str | None = field(repr=False)


class _BoundedRetry(GithubRetry):
    """GithubRetry that raises instead of sleeping through a long ``Retry-After``.

    GithubRetry already bounds waits for ``x-ratelimit-reset`` (``max_rate_limit_wait``)
    but urllib3 would sleep for any ``Retry-After`` it is given.
    """

    def increment(
        self, method: Any = None, url: Any = None, response: Any = None, *args: Any, **kw: Any
    ) -> Any:
        after = response.headers.get("Retry-After", "") if response is not None else ""
        limit = self.max_rate_limit_wait
        if after.isdigit() and limit is not None and int(after) > limit:
            raise RateLimitExceededExceedsMaxWait(
                response.status, None, dict(response.headers), wait=float(after)
            )
        return super().increment(method, url, response, *args, **kw)


def _message(exc: GithubException) -> str:
    data = exc.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def _batch_message(messages: list[str]) -> str:
    """One commit for several writers: a summary line, then each writer's own message."""
    return f"bootstrap: {len(messages)} changes\n\n" + "\n".join(f"- {m}" for m in sorted(messages))


@budget.metered("github")
class GitHubClient:
    """GitHub for the steps; ``repo`` arguments are ``owner/name``."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        retries: int = 3,
        backoff_factor: float = 0.25,
        max_wait: float = 60.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._retry = _BoundedRetry(
            total=retries,
            backoff_factor=backoff_factor,
            max_rate_limit_wait=max_wait,
            secondary_rate_wait=max_wait,
            raise_on_status=False,  # the last answer reaches PyGithub, which raises with its body
        )
        self._gh = self._github(Auth.Token(token))
        # Who writes, without keeping another copy of the token: writers are batched only with
        # writers holding the same token (github_batch).
        self._writer = hashlib.sha256(token.encode()).hexdigest()

    def _github(self, auth: Any) -> Any:
        return Github(
            base_url=self.api_url,
            auth=auth,
            retry=self._retry,
            per_page=100,
            lazy=True,
            seconds_between_requests=0,
            seconds_between_writes=0,
        )

    def _repo(self, repo: str) -> Any:
        return self._gh.get_repo(repo)

    # -- error mapping ---------------------------------------------------------
    @contextlib.contextmanager
    def _calling(self, what: str, repo: str | None = None, need: Need | None = None) -> Iterator[None]:
        try:
            yield
        except StepError:
            raise
        except RateLimitExceededExceedsMaxWait as exc:
            wait = exc.wait or 60.0
            raise RetryableError(
                f"could not {what}: GitHub rate limit reached; it resets in {wait:.0f} s", wait
            ) from exc
        except GithubException as exc:
            raise self._translate(exc, what, repo, need) from exc
        except requests.RequestException as exc:
            raise RetryableError(
                f"could not {what}: GitHub at {self.api_url} did not answer ({type(exc).__name__}); run again"
            ) from exc

    def _translate(self, exc: GithubException, what: str, repo: str | None, need: Need | None) -> StepError:
        status = exc.status
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        message = _message(exc)
        if status == 401:
            return AuthError(
                f"could not {what}: GitHub rejected the token (github.token), wrong, expired or revoked; "
                "create a new token and point github.token at it"
            )
        if status == 429 or (
            status == 403 and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message)
        ):
            after, reset = headers.get("retry-after", ""), headers.get("x-ratelimit-reset", "")
            if after.isdigit():
                delay = float(after)
            elif reset.isdigit():
                delay = max(0.0, int(reset) - time.time())
            else:
                delay = 60.0
            return RetryableError(
                f"could not {what}: GitHub rate limit reached; retry in {delay:.0f} s", delay
            )
        if status == 403 and "archived" in message.lower():
            return PermanentError(
                f"could not {what}: {repo or 'the repository'} is archived, so GitHub keeps it read-only; "
                "unarchive it (Settings → Danger Zone) or point github.infra_repo at another repository"
            )
        if status == 403 and headers.get("x-accepted-github-permissions"):
            area, _, level = headers["x-accepted-github-permissions"].split(";")[0].strip().partition("=")
            # what the step needs overall (write) says more than what this one call needed (read)
            wanted, classic = need or (f"{area.capitalize()}: {level}", "`repo` scope")
            return AuthError(
                f"could not {what}: the token needs the {wanted} permission{f' on {repo}' if repo else ''} "
                f"(classic token: {classic})"
            )
        if status in (403, 404) and need is not None and repo is not None:
            return AuthError(
                f"could not {what}: GitHub answered {status}; {repo} does not exist or the token "
                "may not use it: "
                f"the token needs the {need[0]} permission on {repo} (classic token: {need[1]})"
            )
        if status >= 500:
            return RetryableError(f"could not {what}: GitHub answered {status}; run again later")
        details = (
            [e.get("message", "") for e in exc.data.get("errors", [])] if isinstance(exc.data, dict) else []
        )
        reason = "; ".join(filter(None, [message, *details])) or f"HTTP {status}"
        return PermanentError(f"could not {what}: GitHub answered {status}: {reason}")

    # -- repository --------------------------------------------------------------
    def check_repo_admin(self, repo: str) -> RepoInfo:
        """Fail with an AuthError unless the token can manage deploy keys on ``repo``."""
        with self._calling(f"read {repo}", repo, ADMIN):
            r = self._repo(repo)
            info = RepoInfo(r.full_name, r.default_branch, r.private)
            admin = bool(r.permissions and r.permissions.admin)
        if not admin:
            raise AuthError(
                f"the token needs the {ADMIN[0]} permission on {repo} (classic token: {ADMIN[1]}); "
                f"its user is not an admin of {repo}"
            )
        with self._calling(f"list the deploy keys of {repo}", repo, ADMIN):
            # a fine-grained token of an admin may still lack the Administration permission
            next(iter(r.get_keys()), None)
        return info

    def inspect_repo(self, repo: str) -> RepoAccess:
        """The repository and what the token may do there, with reads only (the preflight).

        Sources, by token kind (GitHub documents both headers as the way to learn permissions):
        a classic token's scopes come from the ``x-oauth-scopes`` header and the user's role
        from the repository's ``permissions`` object; a fine-grained token (or App) has no
        scopes header, so read probes stand in: a 403 carrying ``x-accepted-github-permissions``
        names the permission area it lacks (Contents through the tree, Administration through
        the deploy keys). A write level cannot be observed without writing: for fine-grained
        tokens only the read level and the user's role are verified.
        """
        with self._calling(f"read {repo}", repo, CONTENTS_READ):
            r = self._repo(repo)
            archived = bool(r.archived)
            scopes = self._gh.oauth_scopes
            perms = r.permissions
            branches = [b.name for b in r.get_branches()]
        denied: dict[str, str] = {}
        probes = [("administration", f"{r.url}/keys")]
        if branches:  # an empty repository has no tree to read
            probes.append(("contents", f"{r.url}/contents/"))
        for area, url in probes if scopes is None else []:
            try:
                self._gh.requester.requestJsonAndCheck("GET", url)
            except GithubException as exc:
                headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
                accepted = headers.get("x-accepted-github-permissions", "")
                if exc.status == 403 and accepted:
                    denied[area] = accepted.split(";")[0].strip().partition("=")[2] or "read"
                elif exc.status not in (403, 404):
                    raise self._translate(exc, f"read {repo}", repo, None) from exc
        return RepoAccess(
            full_name=r.full_name,
            archived=archived,
            empty=not branches,
            private=bool(r.private),
            scopes=frozenset(s.strip() for s in scopes if s.strip()) if scopes is not None else None,
            admin=bool(perms and perms.admin),
            push=bool(perms and perms.push),
            denied=denied,
        )

    def branch_head(self, repo: str, branch: str) -> str | None:
        """The commit SHA at the tip of ``branch``; None if the branch does not exist."""
        with self._calling(f"read branch {branch} of {repo}", repo, CONTENTS_READ):
            try:
                return str(self._repo(repo).get_branch(branch).commit.sha)
            except UnknownObjectException as exc:
                if _message(exc) == "Branch not found":
                    return None
                raise

    def branches(self, repo: str) -> list[str]:
        with self._calling(f"list the branches of {repo}", repo, CONTENTS_READ):
            return [b.name for b in self._repo(repo).get_branches()]

    def read_tree(
        self, repo: str, ref: str, path_prefix: str = "", expected: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Text of every file under ``path_prefix`` at ``ref``: one recursive tree call, one call per blob.

        A file whose blob SHA is the git hash of its text in ``expected`` is not fetched: the
        tree already proves it holds that text, so a directory that is up to date costs one call.
        """
        prefix = path_prefix.strip("/")
        return self.read_paths(repo, ref, (prefix,) if prefix else (), expected)

    def read_paths(
        self, repo: str, ref: str, paths: Sequence[str], expected: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """``read_tree`` for several places at once: each of ``paths`` is a file or a directory.

        No ``paths`` means the whole tree. A shared repository (the hub's) holds many
        writers' files; reading only one's own places keeps a customer's plan from
        fetching the other customers' blobs.
        """
        wanted = tuple(p.strip("/") for p in paths)
        known = {blob_sha(text): text for text in (expected or {}).values()}
        with self._calling(f"read {repo} at {ref}", repo, CONTENTS_READ):
            r = self._repo(repo)
            try:
                tree = r.get_git_tree(ref, recursive=True)
            except UnknownObjectException:
                raise PermanentError(f"{repo} has no branch or commit {ref!r}") from None
            if tree.truncated:
                raise PermanentError(f"{repo} at {ref} has too many files for one tree listing")
            blobs: dict[str, str] = {}
            files: dict[str, str] = {}
            for entry in tree.tree:
                inside = not wanted or any(entry.path == w or entry.path.startswith(w + "/") for w in wanted)
                if entry.type != "blob" or not inside:
                    continue
                if entry.sha in known:
                    blobs[entry.sha] = known[entry.sha]
                elif entry.sha not in blobs:
                    blobs[entry.sha] = base64.b64decode(r.get_git_blob(entry.sha).content).decode()
                files[entry.path] = blobs[entry.sha]
            return files

    def read_file(self, repo: str, ref: str, path: str) -> str | None:
        """Text of one file at ``ref``; None if there is no such file."""
        with self._calling(f"read {path} from {repo} at {ref}", repo, CONTENTS_READ):
            try:
                content = self._repo(repo).get_contents(path, ref=ref)
            except UnknownObjectException:
                return None
            if isinstance(content, list):
                raise PermanentError(f"{repo}: {path} is a directory, not a file")
            return bytes(content.decoded_content).decode()

    def commit_files(
        self, repo: str, branch: str, parent_sha: str | None, files: Mapping[str, str | None], message: str
    ) -> str:
        """One commit on ``branch`` on top of ``parent_sha`` writing ``files`` (None deletes a path).

        The branch moves only if it still points at ``parent_sha`` (no force): a push in
        between is a RetryableError, never overwritten. Returns the new commit's SHA, or
        ``parent_sha`` when the files are already there (no empty commit). ``parent_sha``
        None creates ``branch``.
        """
        moved = BranchMoved(f"{repo} branch {branch} moved while committing (someone pushed); run again")
        elements = [
            InputGitTreeElement(path, "100644", "blob", content=text)
            if text is not None
            else InputGitTreeElement(path, "100644", "blob", sha=None)
            for path, text in sorted(files.items())
        ]
        with self._calling(f"commit to {repo} branch {branch}", repo, CONTENTS_WRITE):
            r = self._repo(repo)
            ref_url = f"{r.url}/git/refs/heads/{urllib.parse.quote(branch)}"
            if parent_sha is None:
                try:
                    tree = r.create_git_tree(elements)
                except GithubException as exc:
                    if exc.status != 409:  # 409 "Git Repository is empty."
                        raise
                    return self._first_commit(repo, branch, files, message)
                commit = r.create_git_commit(message, tree, [])
            else:
                parent = r.get_git_commit(parent_sha)
                tree = r.create_git_tree(elements, parent.tree)
                if tree.sha == parent.tree.sha:
                    return parent_sha
                commit = r.create_git_commit(message, tree, [parent])
            try:
                if parent_sha is None:
                    r.create_git_ref(f"refs/heads/{branch}", commit.sha)
                else:
                    self._gh.requester.requestJsonAndCheck(
                        "PATCH", ref_url, input={"sha": commit.sha, "force": False}
                    )
            except GithubException as exc:
                if exc.status == 409 or (exc.status == 422 and "fast forward" in _message(exc)):
                    raise moved from exc
                if exc.status == 422 and "already exists" in _message(exc):
                    raise moved from exc
                raise
            return str(commit.sha)

    def commit_shared(self, repo: str, branch: str, files: Mapping[str, str | None], message: str) -> str:
        """Write ``files`` to a branch many writers share (the hub's repo); returns the head after it.

        Within the process, writers of the same branch are batched into one commit at a time
        (``github_batch``), so a fleet does not race itself. Against other processes the
        commit is built on the head read just before it; if the branch moved meanwhile
        (GitHub's 409/422 non-fast-forward), the head and the paths are read again and only
        what still differs is re-applied, up to ``SHARED_ATTEMPTS`` times. Paths that already
        hold the wanted content (another writer committed the same shared file) cost nothing;
        when nothing differs there is no commit.
        """

        def commit(merged: dict[str, str | None], messages: list[str]) -> str:
            text = messages[0] if len(messages) == 1 else _batch_message(messages)
            return self._commit_fresh(repo, branch, merged, text)

        return github_batch.submit(self._batch_key(repo, branch), files, message, commit)

    def _batch_key(self, repo: str, branch: str) -> tuple[str, ...]:
        return (self.api_url, repo.lower(), branch, self._writer)

    def _commit_fresh(self, repo: str, branch: str, files: Mapping[str, str | None], message: str) -> str:
        for _ in range(SHARED_ATTEMPTS):
            head = self.branch_head(repo, branch)
            stale = self.differing(repo, head, files) if head else set(files)
            todo = {p: files[p] for p in sorted(stale) if head or files[p] is not None}
            if not todo:
                return head or ""
            try:
                return self.commit_files(repo, branch, head, todo, message)
            except BranchMoved:
                continue
        raise RetryableError(
            f"{repo} branch {branch} kept moving while committing ({SHARED_ATTEMPTS} attempts); run again"
        )

    def differing(self, repo: str, ref: str, files: Mapping[str, str | None]) -> set[str]:
        """Which of ``files`` the tree at ``ref`` does not hold as given (None: must be absent).

        One tree call and no blob reads: a blob's SHA is the git hash of its text.
        """
        with self._calling(f"read {repo} at {ref}", repo, CONTENTS_READ):
            tree = self._repo(repo).get_git_tree(ref, recursive=True)
            if tree.truncated:
                raise PermanentError(f"{repo} at {ref} has too many files for one tree listing")
            have = {e.path: e.sha for e in tree.tree if e.type == "blob"}
        return {
            p for p, text in files.items() if have.get(p) != (blob_sha(text) if text is not None else None)
        }

    def _first_commit(self, repo: str, branch: str, files: Mapping[str, str | None], message: str) -> str:
        """The first commit of an empty repository, where the Git Data API answers 409.

        The Contents API can commit into an empty repository (it creates ``branch``), one file
        per commit: the first file goes that way and the rest follow in one Git Data commit on
        top, so an empty repository gets two commits instead of one (REFERENCE.md §11).
        """
        written = {path: text for path, text in sorted(files.items()) if text is not None}
        if not written:
            raise PermanentError(f"{repo} is empty and there is nothing to commit to branch {branch}")
        first, *rest = written
        with self._calling(f"make the first commit of {repo} (empty repository)", repo, CONTENTS_WRITE):
            made = self._repo(repo).create_file(first, message, written[first], branch=branch)
        head = str(made["commit"].sha)
        if not rest:
            return head
        return self.commit_files(repo, branch, head, {p: written[p] for p in rest}, message)

    # -- deploy keys -----------------------------------------------------------------
    def list_deploy_keys(self, repo: str) -> list[DeployKey]:
        with self._calling(f"list the deploy keys of {repo}", repo, ADMIN):
            return [
                DeployKey(k.id, k.title, k.key, k.read_only, fingerprint(k.key))
                for k in self._repo(repo).get_keys()
            ]

    def add_deploy_key(self, repo: str, title: str, public_key: str, read_only: bool = True) -> DeployKey:
        """Register ``public_key``; KeyInUse if GitHub has it anywhere (``existing`` set if on ``repo``)."""
        with self._calling(f"add deploy key {title!r} to {repo}", repo, ADMIN):
            try:
                k = self._repo(repo).create_key(title, public_key, read_only=read_only)
            except GithubException as exc:
                if exc.status != 422 or "already in use" not in str(exc.data):
                    raise
                fp = fingerprint(public_key)
                here = next(
                    (d for d in self.list_deploy_keys(repo) if _key_id(d.key) == _key_id(public_key)), None
                )
                if here is not None:
                    raise KeyInUse(
                        f"the deploy key {fp} is already on {repo} as {here.title!r} (id {here.id})", here
                    ) from exc
                raise KeyInUse(
                    f"the deploy key {fp} is already used by another repository or user; generate a new key",
                    None,
                ) from exc
            return DeployKey(k.id, k.title, k.key, k.read_only, fingerprint(k.key))

    def delete_deploy_key(self, repo: str, key_id: int) -> None:
        """Remove a deploy key; already gone is fine."""
        with self._calling(f"delete deploy key {key_id} from {repo}", repo, ADMIN):
            r = self._repo(repo)
            with contextlib.suppress(UnknownObjectException):
                self._gh.requester.requestJsonAndCheck("DELETE", f"{r.url}/keys/{key_id}")

    # -- GitHub Apps / OAuth --------------------------------------------------------
    def convert_app_manifest(self, code: str) -> AppCredentials:
        """Exchange the one-shot code of the manifest flow for the App's credentials."""
        with self._calling("convert the GitHub App manifest code"):
            try:
                _, data = self._gh.requester.requestJsonAndCheck(
                    "POST", f"/app-manifests/{urllib.parse.quote(code, safe='')}/conversions"
                )
            except UnknownObjectException:
                raise PermanentError(
                    "GitHub does not know the App manifest code (codes work once, for one hour); the App may "
                    "exist already: delete it in the organization's Developer settings, then run again"
                ) from None
        return AppCredentials(
            id=int(data["id"]),
            slug=str(data["slug"]),
            client_id=str(data["client_id"]),
            html_url=str(data["html_url"]),
            client_secret=str(data["client_secret"]),
            pem=str(data["pem"]),
            webhook_secret=data.get("webhook_secret"),
        )

    def check_oauth_client(self, client_id: str, client_secret: str) -> bool:
        """Whether GitHub accepts these OAuth client credentials.

        There is no read-only "check client" call; checking a dummy token is: GitHub
        answers 404 (unknown token) to valid credentials and 401 to invalid ones.
        """
        gh = self._github(Auth.Login(client_id, client_secret))
        url = f"/applications/{urllib.parse.quote(client_id, safe='')}/token"
        with self._calling("check the OAuth client credentials"):
            try:
                gh.requester.requestJsonAndCheck("POST", url, input={"access_token": "ghu_" + "0" * 36})
            except UnknownObjectException:
                return True
            except GithubException as exc:
                if exc.status == 401:
                    return False
                if exc.status == 422:
                    return True
                raise
        return True
