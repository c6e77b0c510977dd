"""A stateful emulator of the GitHub REST API, speaking GitHub's wire format.

The steps talk to GitHub through PyGithub, which is strict about what it gets
back (every ``url`` must point at the host it called), and the decisions the
steps make hinge on GitHub's exact answers: 404 rather than 403 for a classic
token without ``repo``, 403 plus ``x-accepted-github-permissions`` for a
fine-grained one, 422 "key is already in use" for a key on *any* repository,
422 "Update is not a fast forward" when someone pushed in between. So this
emulator keeps real state (git objects with real SHA-1s, refs, deploy keys,
GitHub Apps) and answers with the shapes of GitHub's OpenAPI description; the
realism tests validate every response against that description.

Git objects are stored per repository and hashed the way git hashes them, so
identical content gets identical SHAs and "nothing changed" is observable.
Seeding (``create_repo``, ``commit_files``, ``add_token`` …) is plain Python;
tests play the browser of the App manifest flow through
``complete_manifest_flow`` or the HTML form endpoint and its "Create GitHub App"
confirmation (a real headless browser does so in test_manifest_browser.py).
Request bodies are checked against the same description (``github_requests``),
an empty repository answers the Git Data API with 409 and an archived one
refuses writes. Every claim's source is in tests/fixtures/FIDELITY.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import itertools
import json
import math
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import github_requests
from sandbox.httpemu import EmulatorServer, Fault, Request, Response

DOCS = "https://docs.github.com/rest"
API_VERSION = "2022-11-28"
LEVELS = {"none": 0, "read": 1, "write": 2}
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
Level = Literal["read", "write"]
Need = tuple[str, Level]
Role = Literal["admin", "write", "read"]


# -- git objects -----------------------------------------------------------------


def git_sha(kind: str, payload: bytes) -> str:
    """The SHA-1 git gives an object of ``kind`` with ``payload``."""
    return hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload).hexdigest()


@dataclass(frozen=True)
class TreeEntry:
    name: str
    mode: str  # as the API shows it: 100644, 100755, 040000, 120000, 160000
    type: str  # blob | tree | commit
    sha: str

    def sort_key(self) -> bytes:
        # git orders a subtree as if its name ended in "/"
        return (self.name + "/" if self.type == "tree" else self.name).encode()


@dataclass(frozen=True)
class Signature:
    name: str
    email: str
    when: int

    def raw(self) -> str:
        return f"{self.name} <{self.email}> {self.when} +0000"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "date": iso(self.when)}


@dataclass(frozen=True)
class Commit:
    tree: str
    parents: tuple[str, ...]
    message: str
    author: Signature
    committer: Signature

    def payload(self) -> bytes:
        lines = [f"tree {self.tree}", *(f"parent {p}" for p in self.parents)]
        lines += [f"author {self.author.raw()}", f"committer {self.committer.raw()}", "", self.message]
        return "\n".join(lines).encode()


Leaf = tuple[str, str, str]  # mode, type, sha of a non-tree entry


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wrap_base64(data: bytes) -> str:
    """Base64 the way GitHub serves file and blob content: 60-column lines."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def parse_public_key(text: str) -> str | None:
    """``type base64`` of an OpenSSH public key (comment dropped, as GitHub does), or None."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        return None
    size = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + size or blob[4 : 4 + size] != parts[0].encode():
        return None
    return f"{parts[0]} {parts[1]}"


MANIFEST_DOCS = "https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest"
MANIFEST_INVALID = (
    "Invalid GitHub App configuration. The configuration does not appear to be a valid GitHub App "
    "manifest. Error: {}"
)


class InvalidManifest(ValueError):
    """GitHub's "Invalid GitHub App configuration" page for a manifest it refuses."""


def manifest_error(manifest: Mapping[str, Any]) -> str | None:
    """What GitHub's form says about ``manifest``, or None when GitHub accepts it.

    Sources: the manifest parameters (``url`` required; ``hook_attributes.url`` required
    whenever ``hook_attributes`` is present; ``callback_urls`` at most 10) in MANIFEST_DOCS;
    the page's wording as reported in probot/probot#806 and alp82/curia#933. App names are
    at most 34 characters (docs: Registering a GitHub App). The name-length wording is unverified.
    """
    if not isinstance(manifest, Mapping):
        return MANIFEST_INVALID.format("The manifest is not a JSON object.")
    for key in ("name", "url", "description", "redirect_url"):
        value = manifest.get(key)
        if value is not None and not isinstance(value, str):
            return MANIFEST_INVALID.format(f"For 'properties/{key}', {json.dumps(value)} is not a string.")
    if not manifest.get("url"):
        return MANIFEST_INVALID.format('"url" wasn\'t supplied.')
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, Mapping) or not hook.get("url")):
        return MANIFEST_INVALID.format('"url" wasn\'t supplied.')
    for key in ("public", "request_oauth_on_install"):
        value = manifest.get(key)
        if value is not None and not isinstance(value, bool):
            return MANIFEST_INVALID.format(f"For 'properties/{key}', {json.dumps(value)} is not a boolean.")
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, Mapping) or any(v not in ("read", "write") for v in permissions.values()):
        # unverified wording; the levels are the docs' (read, write)
        return MANIFEST_INVALID.format("For 'properties/default_permissions', levels must be read or write.")
    callbacks = manifest.get("callback_urls", [])
    if not isinstance(callbacks, list) or not all(isinstance(u, str) for u in callbacks):
        return MANIFEST_INVALID.format("For 'properties/callback_urls', expected an array of strings.")
    if len(callbacks) > 10:
        return MANIFEST_INVALID.format("Callback URLs are limited to 10.")
    if len(str(manifest.get("name", ""))) > 34:
        return MANIFEST_INVALID.format("Name is too long (maximum is 34 characters).")
    return None


# -- state ------------------------------------------------------------------------


@dataclass
class Token:
    """A seeded credential: classic (``scopes``) or fine-grained (``permissions``)."""

    login: str
    scopes: tuple[str, ...]
    permissions: dict[str, str] | None
    role: Role
    limit: int = 5000
    used: int = 0
    reset: int = 0


@dataclass
class DeployKeyRecord:
    id: int
    key: str
    title: str
    read_only: bool
    added_by: str
    created_at: str


@dataclass
class RepoState:
    id: int
    owner: str
    name: str
    private: bool
    default_branch: str
    created_at: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, tuple[TreeEntry, ...]] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "heads/main" -> commit sha
    keys: list[DeployKeyRecord] = field(default_factory=list)
    pushed_at: str = ""
    archived: bool = False
    """Reported as ``archived`` in the repository object (OpenAPI ``repository.archived``)."""

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    # -- object store ---------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        sha = git_sha("blob", data)
        self.blobs[sha] = data
        return sha

    def put_tree(self, entries: list[TreeEntry]) -> str:
        ordered = tuple(sorted(entries, key=TreeEntry.sort_key))
        payload = b"".join(
            f"{e.mode.lstrip('0')} {e.name}\0".encode() + bytes.fromhex(e.sha) for e in ordered
        )
        sha = git_sha("tree", payload)
        self.trees[sha] = ordered
        return sha

    def put_commit(self, commit: Commit) -> str:
        sha = git_sha("commit", commit.payload())
        self.commits[sha] = commit
        return sha

    def write_tree(self, leaves: Mapping[str, Leaf]) -> str:
        """Build nested trees from ``path -> (mode, type, sha)``; returns the root tree's SHA."""
        here: list[TreeEntry] = []
        below: dict[str, dict[str, Leaf]] = {}
        for path, (mode, kind, sha) in leaves.items():
            head, sep, rest = path.partition("/")
            if sep:
                below.setdefault(head, {})[rest] = (mode, kind, sha)
            else:
                here.append(TreeEntry(head, mode, kind, sha))
        here += [TreeEntry(name, "040000", "tree", self.write_tree(sub)) for name, sub in below.items()]
        return self.put_tree(here)

    def walk(self, tree_sha: str, prefix: str = "") -> Iterator[tuple[str, TreeEntry]]:
        """Every entry under a tree, depth first, trees before their content (GitHub's order)."""
        for entry in self.trees[tree_sha]:
            path = prefix + entry.name
            yield path, entry
            if entry.type == "tree":
                yield from self.walk(entry.sha, path + "/")

    def leaves(self, tree_sha: str) -> dict[str, Leaf]:
        return {p: (e.mode, e.type, e.sha) for p, e in self.walk(tree_sha) if e.type != "tree"}

    def files(self, commit: str) -> dict[str, str]:
        """Every file of ``commit`` as text."""
        leaves = self.leaves(self.commits[commit].tree)
        return {p: self.blobs[sha].decode() for p, (_, kind, sha) in leaves.items() if kind == "blob"}

    def resolve(self, ref: str | None) -> str | None:
        """A commit SHA for a branch name, ``heads/x``, ``refs/heads/x`` or a commit SHA."""
        ref = ref or self.default_branch
        name = ref.removeprefix("refs/").removeprefix("heads/")
        if f"heads/{name}" in self.refs:
            return self.refs[f"heads/{name}"]
        return ref if ref in self.commits else None

    def is_ancestor(self, old: str, new: str) -> bool:
        seen: set[str] = set()
        todo = [new]
        while todo:
            sha = todo.pop()
            if sha == old:
                return True
            if sha not in seen:
                seen.add(sha)
                todo.extend(self.commits[sha].parents)
        return False

    def history(self, head: str) -> list[tuple[str, Commit]]:
        """Commits reachable from ``head``, newest first (``git log`` order for our linear-ish repos)."""
        seen: dict[str, Commit] = {}
        todo = [head]
        while todo:
            sha = todo.pop()
            if sha not in seen:
                seen[sha] = self.commits[sha]
                todo.extend(seen[sha].parents)
        return sorted(seen.items(), key=lambda kv: kv[1].committer.when, reverse=True)


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: str
    description: str | None
    external_url: str
    permissions: dict[str, str]
    events: list[str]
    client_id: str
    client_secret: str
    webhook_secret: str | None
    pem: str
    created_at: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Exchange:
    """One answered API call, kept so tests can validate it against the OpenAPI description."""

    method: str
    template: str | None  # OpenAPI path template, None for non-API routes
    status: int
    body: Any
    headers: dict[str, str]


class _Abort(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _page(status: int, title: str, body: str) -> Response:
    """An HTML page of GitHub's web UI (the manifest flow's pages)."""
    text = (
        f"<!doctype html><html><head><title>{title}</title></head><body><h2>{title}</h2>{body}</body></html>"
    )
    return Response(status, raw=text.encode(), headers={"content-type": "text/html; charset=utf-8"})


def error(status: int, message: str, doc: str = DOCS, **extra: Any) -> Response:
    return Response(status, {"message": message, "documentation_url": doc, **extra, "status": str(status)})


ApiHandler = Callable[[Request, Token | None], Response]
Route = tuple[Any, ...]  # (method, path, handler[, OpenAPI template[, public]])
DOC_KEYS = "https://docs.github.com/rest/deploy-keys/deploy-keys"
DOC_REFS = "https://docs.github.com/rest/git/refs"


# -- the emulator -----------------------------------------------------------------


class GitHubEmulator(EmulatorServer):
    """GitHub REST API on loopback; see the module docstring for what it guarantees."""

    name = "github"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.tokens: dict[str, Token] = {}
        self.repos: dict[tuple[str, str], RepoState] = {}
        self.orgs: set[str] = set()
        self.apps: dict[str, App] = {}
        self.oauth_clients: dict[str, str] = {}  # client_id -> client_secret (manual OAuth apps)
        self.used_elsewhere: set[str] = set()  # "type base64" of keys on users / unseeded repos
        self.operations: list[tuple[str, str]] = []  # (method, OpenAPI template) of every API route
        self.exchanges: list[Exchange] | None = None  # set to [] to record answered calls
        self._codes: dict[str, tuple[str, float]] = {}  # manifest code -> (app slug, expiry)
        self._pending: dict[str, tuple[str, Any, str | None]] = {}  # confirm ticket -> (org, manifest, state)
        self._ids = itertools.count(1)
        self._account_ids: dict[str, int] = {}
        self._anonymous = Token("", (), None, "read", limit=60)
        self.request_schemas: github_requests.RequestSchemas | None = github_requests.default()
        """Request bodies are checked against these (GitHub's OpenAPI description); None: unchecked."""
        self._register()

    # -- seeding -------------------------------------------------------------
    def add_token(
        self,
        token: str,
        login: str,
        scopes: tuple[str, ...] = ("repo",),
        permissions: Mapping[str, str] | None = None,
        role: Role = "admin",
        limit: int = 5000,
    ) -> None:
        """Seed a token. ``permissions`` makes it fine-grained (``{"contents": "write", …}``).

        ``role`` is the user's role on every repository (what ``permissions`` in a repo reports).
        """
        with self.lock:
            self.tokens[token] = Token(
                login, tuple(scopes), dict(permissions) if permissions else None, role, limit
            )
            self._account_id(login)

    def set_rate_limit(self, token: str, remaining: int, reset: float) -> None:
        """Leave ``remaining`` calls for ``token`` until the epoch second ``reset``."""
        with self.lock:
            t = self.tokens[token]
            t.used = t.limit - remaining
            t.reset = int(reset)

    def create_repo(
        self,
        owner: str,
        name: str,
        files: Mapping[str, str] | None = None,
        default_branch: str = "main",
        private: bool = True,
        empty: bool = False,
    ) -> None:
        """A repository with one initial commit (of ``files``, or a README like GitHub's auto-init).

        ``empty`` leaves it as GitHub creates it without auto-init: no commit, no branch.
        """
        with self.lock:
            if owner not in self._logins():
                self.orgs.add(owner)
            self._account_id(owner)
            repo = RepoState(next(self._ids), owner, name, private, default_branch, iso(time.time()))
            self.repos[(owner.lower(), name.lower())] = repo
            if not empty:
                tree = repo.write_tree(self._leaves(repo, files or {"README.md": f"# {name}\n"}))
                repo.refs[f"heads/{default_branch}"] = self._commit(repo, tree, (), "Initial commit")

    def archive_repo(self, owner: str, name: str) -> None:
        """Archive a repository: it stays readable, every write is refused."""
        with self.lock:
            self._seeded(owner, name).archived = True

    def create_branch(
        self, owner: str, name: str, branch: str, files: Mapping[str, str], from_branch: str | None = None
    ) -> str:
        """A branch off ``from_branch`` (default branch if None) with one commit adding ``files``."""
        with self.lock:
            repo = self._seeded(owner, name)
            start = repo.refs[f"heads/{from_branch or repo.default_branch}"]
            repo.refs[f"heads/{branch}"] = start
            return self.commit_files(owner, name, branch, files, f"Create {branch}")

    def commit_files(
        self, owner: str, name: str, branch: str, files: Mapping[str, str | None], message: str
    ) -> str:
        """Push a commit onto ``branch`` as a person would (None deletes a path); returns its SHA."""
        with self.lock:
            repo = self._seeded(owner, name)
            head = repo.refs[f"heads/{branch}"]
            leaves = repo.leaves(repo.commits[head].tree)
            for path, content in files.items():
                if content is None:
                    leaves.pop(path, None)
                else:
                    leaves[path] = ("100644", "blob", repo.put_blob(content.encode()))
            sha = self._commit(repo, repo.write_tree(leaves), (head,), message)
            repo.refs[f"heads/{branch}"] = sha
            return sha

    def read_tree(self, owner: str, name: str, branch: str) -> dict[str, str]:
        """Every file on ``branch`` as text."""
        with self.lock:
            repo = self._seeded(owner, name)
            return repo.files(repo.refs[f"heads/{branch}"])

    def deploy_keys(self, owner: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            repo = self._seeded(owner, name)
            return [self._key_json(repo, k) for k in repo.keys]

    def mark_key_used_elsewhere(self, public_key: str) -> None:
        """Make GitHub answer "key is already in use" for this key (as if it were on a user or a fork)."""
        parsed = parse_public_key(public_key)
        if parsed is None:
            raise ValueError("not an OpenSSH public key")
        with self.lock:
            self.used_elsewhere.add(parsed)

    def add_oauth_app(self, client_id: str, client_secret: str) -> None:
        """Register client credentials created by hand (the manual OAuth gate)."""
        with self.lock:
            self.oauth_clients[client_id] = client_secret

    def complete_manifest_flow(self, org: str, manifest: Mapping[str, Any]) -> str:
        """What the person does in the browser: create the App from ``manifest``; returns the code.

        An invalid manifest raises ``InvalidManifest`` with the text GitHub shows on its page.
        """
        with self.lock:
            problem = manifest_error(manifest)
            if problem is not None:
                raise InvalidManifest(problem)
            name = str(manifest.get("name") or f"{org}-app")
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            if slug in self.apps:
                # unverified: the wording of GitHub's page for a taken name
                raise InvalidManifest(f"Name {name!r} is already taken")
            self.orgs.add(org)
            self._account_id(org)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode()
            self.apps[slug] = App(
                id=next(self._ids),
                slug=slug,
                name=name,
                owner=org,
                description=manifest.get("description"),
                external_url=str(manifest.get("url", "")),
                permissions={"metadata": "read", **manifest.get("default_permissions", {})},
                events=list(manifest.get("default_events", [])),
                client_id="Iv23li" + secrets.token_hex(7),
                client_secret=secrets.token_hex(20),
                # a webhook secret only exists for an App with a webhook (unverified: GitHub may
                # still generate one; the step stores it only when present)
                webhook_secret=secrets.token_hex(20) if manifest.get("hook_attributes") else None,
                pem=pem,
                created_at=iso(time.time()),
                manifest=dict(manifest),
            )
            code = secrets.token_hex(10)
            self._codes[code] = (slug, time.time() + 3600)
            return code

    # -- helpers -------------------------------------------------------------
    def _logins(self) -> set[str]:
        return {t.login for t in self.tokens.values()}

    def _account_id(self, login: str) -> int:
        return self._account_ids.setdefault(login, len(self._account_ids) + 1)

    def _seeded(self, owner: str, name: str) -> RepoState:
        return self.repos[(owner.lower(), name.lower())]

    def _leaves(self, repo: RepoState, files: Mapping[str, str]) -> dict[str, Leaf]:
        return {p: ("100644", "blob", repo.put_blob(c.encode())) for p, c in files.items()}

    def _commit(
        self, repo: RepoState, tree: str, parents: tuple[str, ...], message: str, login: str = "octocat"
    ) -> str:
        who = Signature(login, f"{login}@users.noreply.github.com", int(time.time()))
        repo.pushed_at = iso(time.time())
        return repo.put_commit(Commit(tree, parents, message, who, who))

    def _request_id(self) -> str:
        return ":".join(secrets.token_hex(n).upper() for n in (2, 3, 3, 3, 4))

    # -- routing with GitHub's auth, rate limit and headers ------------------
    def api(
        self, method: str, pattern: str, spec: str | None = "", public: bool = False
    ) -> Callable[[ApiHandler], ApiHandler]:
        """Register an API route; ``spec`` overrides the OpenAPI template (None: not an API route).

        ``public`` routes never require a token (the manifest conversion, the browser form).
        """
        template = pattern.replace(":path", "") if spec == "" else spec

        def deco(fn: ApiHandler) -> ApiHandler:
            def handler(req: Request) -> Response:
                headers = {"x-github-request-id": self._request_id()}
                try:
                    who = self._token(req, public)
                    headers.update(self._meter(who, enforce=who is not None or not public))
                    if who is not None and who.permissions is None:
                        headers["x-oauth-scopes"] = ", ".join(who.scopes)
                        headers["x-accepted-oauth-scopes"] = "repo" if "/repos/" in req.path else ""
                    if template is not None:
                        headers["x-github-api-version-selected"] = API_VERSION
                        headers["x-github-media-type"] = "github.v3; format=json"
                    if template is not None:
                        self._check_body(req, template)
                    resp = fn(req, who)
                except _Abort as abort:
                    resp = abort.response
                resp.headers = {**headers, **resp.headers}
                if self.exchanges is not None:
                    self.exchanges.append(
                        Exchange(req.method, template, resp.status, resp.body, resp.headers)
                    )
                return resp

            self.route(method, pattern)(handler)
            if template is not None:
                self.operations.append((method, template))
            return fn

        return deco

    @property
    def validates_requests(self) -> bool:
        return self.request_schemas is not None

    def _check_body(self, req: Request, template: str) -> None:
        """GitHub's answer to a body it cannot parse (400) or whose schema it breaks (422)."""
        if req.method not in ("POST", "PATCH", "PUT"):
            return
        try:
            body = json.loads(req.body) if req.body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            # the message GitHub gives a body that is not JSON (unverified: no recorded answer found)
            raise _Abort(error(400, "Problems parsing JSON")) from None
        problem = self.request_schemas.problem(req.method, template, body) if self.request_schemas else None
        if problem is not None:
            raise _Abort(error(422, problem))

    def _token(self, req: Request, public: bool) -> Token | None:
        scheme, _, value = (req.header("authorization") or "").partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        token = self.tokens.get(value.strip())
        if token is None and not public:
            raise _Abort(error(401, "Bad credentials"))
        return token

    def _meter(self, who: Token | None, enforce: bool) -> dict[str, str]:
        """Count the call against the token's primary rate limit; 403 once it is used up.

        Anonymous calls to public routes (the browser form, the manifest conversion) are
        counted but never refused, so a long-lived sandbox cannot run out of its 60 per hour.
        """
        t = who or self._anonymous
        now = time.time()
        if t.reset <= now:
            t.used, t.reset = 0, int(now) + 3600
        exhausted = t.used >= t.limit
        if not exhausted:
            t.used += 1
        headers = {
            "x-ratelimit-limit": str(t.limit),
            "x-ratelimit-remaining": str(max(0, t.limit - t.used)),
            "x-ratelimit-reset": str(t.reset),
            "x-ratelimit-used": str(t.used),
            "x-ratelimit-resource": "core",
        }
        if exhausted and enforce:
            uid = self._account_id(t.login) if who else 0
            message = f"API rate limit exceeded for user ID {uid}." if who else "API rate limit exceeded."
            resp = error(403, message, "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api")
            resp.headers = headers
            raise _Abort(resp)
        return headers

    def rate_limited(self, rule: Fault) -> Response:
        """A secondary rate limit, as GitHub sends it (403 or 429 with Retry-After)."""
        status = rule.status if rule.status in (403, 429) else 429
        resp = error(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        )
        resp.headers = {"retry-after": str(rule.retry_after), "x-github-request-id": self._request_id()}
        return resp

    def server_error(self, rule: Fault) -> Response:
        messages = {502: "Server Error", 503: "Service Unavailable", 504: "We couldn't respond in time."}
        resp = error(rule.status, messages.get(rule.status, "Server Error"))
        resp.headers = {"x-github-request-id": self._request_id()}
        return resp

    def not_found(self, req: Request) -> Response:
        resp = error(404, "Not Found")
        del resp.body["status"]
        resp.headers = {"x-github-request-id": self._request_id()}
        return resp

    def _repo(self, req: Request, who: Token | None, need: Need, doc: str = DOCS) -> RepoState:
        """The repository of the route, if ``who`` may do ``need`` on it; GitHub's refusal otherwise."""
        repo = self.repos.get((req.params["owner"].lower(), req.params["repo"].lower()))
        area, level = need
        if repo is None:
            raise _Abort(error(404, "Not Found", doc))
        if who is None:
            if repo.private:
                raise _Abort(error(404, "Not Found", doc))
            if level == "write" or area == "administration":
                raise _Abort(error(401, "Requires authentication", doc))
            return repo
        if who.permissions is None:
            # classic tokens: GitHub hides what the token may not touch behind 404
            if repo.private and "repo" not in who.scopes:
                raise _Abort(error(404, "Not Found", doc))
            if level == "write" and not {"repo", "public_repo"} & set(who.scopes):
                raise _Abort(error(404, "Not Found", doc))
        else:
            granted = who.permissions.get(area, "read" if area == "metadata" else "none")
            if LEVELS[granted] < LEVELS[level]:
                resp = error(403, "Resource not accessible by personal access token", doc)
                resp.headers["x-accepted-github-permissions"] = f"{area}={level}"
                raise _Abort(resp)
        if area == "administration" and who.role != "admin":
            raise _Abort(error(404, "Not Found", doc))
        if level == "write" and who.role == "read":
            raise _Abort(error(404, "Not Found", doc))
        if level == "write" and repo.archived:
            # "Repository was archived so is read-only." (see FIDELITY.md for its source)
            raise _Abort(error(403, "Repository was archived so is read-only.", doc))
        return repo

    @staticmethod
    def _not_empty(repo: RepoState, doc: str) -> None:
        """The Git Data API's answer on a repository without commits (github/rest-api-description#637;
        body as in github/docs#31951; the OpenAPI description documents the 409)."""
        if not repo.refs:
            raise _Abort(error(409, "Git Repository is empty.", doc))

    # -- JSON shapes ---------------------------------------------------------
    def _repo_url(self, repo: RepoState) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _account(self, login: str) -> dict[str, Any]:
        """simple-user for a user or an organization."""
        uid = self._account_id(login)
        is_org = login in self.orgs
        api = f"{self.url}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": base64.b64encode(f"04:{'Organization' if is_org else 'User'}{uid}".encode()).decode(),
            "avatar_url": f"{self.url}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Organization" if is_org else "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self, repo: RepoState, who: Token | None) -> dict[str, Any]:
        u = self._repo_url(repo)
        html = f"{self.url}/{repo.full_name}"
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": base64.b64encode(f"010:Repository{repo.id}".encode()).decode(),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self._account(repo.owner),
            "html_url": html,
            "description": None,
            "fork": False,
            "url": u,
            "clone_url": f"{html}.git",
            "git_url": f"git://{self.host}:{self.port}/{repo.full_name}.git",
            "ssh_url": f"git@{self.host}:{repo.full_name}.git",
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "default_branch": repo.default_branch,
            "created_at": repo.created_at,
            "updated_at": repo.pushed_at,
            "pushed_at": repo.pushed_at,
            "size": sum(len(b) for b in repo.blobs.values()) // 1024,
            "archived": repo.archived,
            "disabled": False,
            "license": None,
            "topics": [],
            "is_template": False,
            "web_commit_signoff_required": False,
            "network_count": 0,
            "subscribers_count": 0,
        }
        for key in ("forks", "forks_count", "open_issues", "open_issues_count", "stargazers_count"):
            body[key] = 0
        body["watchers"] = body["watchers_count"] = 0
        for key in ("has_issues", "has_projects", "has_wiki", "has_downloads"):
            body[key] = True
        body["has_pages"] = body["has_discussions"] = False
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        body.update({k: u + v for k, v in templated.items()})
        if who is not None:
            admin, push = who.role == "admin", who.role in ("admin", "write")
            body["permissions"] = {
                "admin": admin,
                "maintain": admin,
                "push": push,
                "triage": push,
                "pull": True,
            }
        return body

    def _commit_json(self, repo: RepoState, sha: str) -> dict[str, Any]:
        """git-commit (the Git Data API shape)."""
        c = repo.commits[sha]
        u = self._repo_url(repo)
        return {
            "sha": sha,
            "node_id": base64.b64encode(f"06:Commit{repo.id}:{sha}".encode()).decode(),
            "url": f"{u}/git/commits/{sha}",
            "html_url": f"{self.url}/{repo.full_name}/commit/{sha}",
            "author": c.author.to_json(),
            "committer": c.committer.to_json(),
            "tree": {"sha": c.tree, "url": f"{u}/git/trees/{c.tree}"},
            "message": c.message,
            "parents": [
                {
                    "sha": p,
                    "url": f"{u}/git/commits/{p}",
                    "html_url": f"{self.url}/{repo.full_name}/commit/{p}",
                }
                for p in c.parents
            ],
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        }

    def _rest_commit_json(self, repo: RepoState, sha: str) -> dict[str, Any]:
        """commit (the shape of /commits and of a branch's head)."""
        git = self._commit_json(repo, sha)
        u = self._repo_url(repo)
        return {
            "sha": sha,
            "node_id": git["node_id"],
            "url": f"{u}/commits/{sha}",
            "html_url": git["html_url"],
            "comments_url": f"{u}/commits/{sha}/comments",
            "commit": {
                "url": git["url"],
                "author": git["author"],
                "committer": git["committer"],
                "message": git["message"],
                "comment_count": 0,
                "tree": git["tree"],
                "verification": git["verification"],
            },
            "author": self._linked_account(repo.commits[sha].author),
            "committer": self._linked_account(repo.commits[sha].committer),
            "parents": [
                {"sha": p["sha"], "url": f"{u}/commits/{p['sha']}", "html_url": p["html_url"]}
                for p in git["parents"]
            ],
        }

    def _linked_account(self, who: Signature) -> dict[str, Any] | None:
        """The account GitHub links a commit signature to (by noreply email), as /commits shows it."""
        login, _, domain = who.email.partition("@")
        return self._account(login) if domain == "users.noreply.github.com" else None

    def _ref_json(self, repo: RepoState, ref: str) -> dict[str, Any]:
        sha = repo.refs[ref]
        u = self._repo_url(repo)
        return {
            "ref": f"refs/{ref}",
            "node_id": base64.b64encode(f"03:Ref{repo.id}:refs/{ref}".encode()).decode(),
            "url": f"{u}/git/refs/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{u}/git/commits/{sha}"},
        }

    def _content_json(
        self, repo: RepoState, path: str, entry: TreeEntry, ref: str, body: bool
    ) -> dict[str, Any]:
        u = self._repo_url(repo)
        kind = {"tree": "dir", "commit": "submodule"}.get(
            entry.type, "symlink" if entry.mode == "120000" else "file"
        )
        quoted = urllib.parse.quote(path)
        self_url = f"{u}/contents/{quoted}?ref={urllib.parse.quote(ref)}"
        git_url = f"{u}/git/{'trees' if entry.type == 'tree' else 'blobs'}/{entry.sha}"
        html_url = f"{self.url}/{repo.full_name}/{'tree' if entry.type == 'tree' else 'blob'}/{ref}/{quoted}"
        data = repo.blobs.get(entry.sha, b"")
        out: dict[str, Any] = {
            "type": kind,
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": entry.sha,
            "url": self_url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{self.url}/{repo.full_name}/raw/{ref}/{quoted}" if kind == "file" else None,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        }
        if body:
            out["content"] = wrap_base64(data)
            out["encoding"] = "base64"
        return out

    def _key_json(self, repo: RepoState, k: DeployKeyRecord) -> dict[str, Any]:
        return {
            "id": k.id,
            "key": k.key,
            "url": f"{self._repo_url(repo)}/keys/{k.id}",
            "title": k.title,
            "verified": True,
            "created_at": k.created_at,
            "read_only": k.read_only,
            "added_by": k.added_by,
            "last_used": None,
            "enabled": True,
        }

    def _app_json(self, app: App) -> dict[str, Any]:
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": base64.b64encode(f"03:Integration{app.id}".encode()).decode(),
            "client_id": app.client_id,
            "owner": self._account(app.owner),
            "name": app.name,
            "description": app.description,
            "external_url": app.external_url,
            "html_url": f"{self.url}/apps/{app.slug}",
            "created_at": app.created_at,
            "updated_at": app.created_at,
            "permissions": app.permissions,
            "events": app.events,
        }

    def _paginate(self, req: Request, items: list[Any]) -> Response:
        """One page of ``items`` with GitHub's ``Link`` header (``per_page`` ≤ 100, default 30)."""

        def number(name: str, default: int) -> int:
            value = req.arg(name) or ""
            return int(value) if value.isdigit() and int(value) > 0 else default

        per_page = min(number("per_page", 30), 100)
        page = number("page", 1)
        last = max(1, math.ceil(len(items) / per_page))

        def link(p: int) -> str:
            query = {k: v[-1] for k, v in req.query.items()} | {"per_page": str(per_page), "page": str(p)}
            return f"{self.url}{req.path}?{urllib.parse.urlencode(query)}"

        rels = [("prev", page - 1), ("first", 1)] if page > 1 else []
        if page < last:
            rels = [("next", page + 1), ("last", last), *rels]
        headers = {"link": ", ".join(f'<{link(p)}>; rel="{rel}"' for rel, p in rels)} if rels else {}
        return Response(200, items[(page - 1) * per_page : page * per_page], headers)

    # -- routes --------------------------------------------------------------
    def _register(self) -> None:
        """The route table: method, path, handler, then optionally the OpenAPI template (None: a
        browser page, not an API route) and whether the route is public (no token needed)."""
        table: tuple[Route, ...] = (
            ("GET", "/user", self._get_user),
            ("GET", "/orgs/{org}", self._get_org),
            ("GET", "/repos/{owner}/{repo}", self._get_repo),
            ("GET", "/repos/{owner}/{repo}/contents/{path:path}", self._contents),
            ("PUT", "/repos/{owner}/{repo}/contents/{path:path}", self._put_contents),
            (
                "GET",
                "/repos/{owner}/{repo}/contents",
                self._contents,
                "/repos/{owner}/{repo}/contents/{path}",
            ),
            ("GET", "/repos/{owner}/{repo}/branches", self._list_branches),
            ("GET", "/repos/{owner}/{repo}/branches/{branch:path}", self._get_branch),
            ("GET", "/repos/{owner}/{repo}/git/ref/{ref:path}", self._get_ref),
            # the legacy plural form still answers single refs (older PyGithub uses it)
            (
                "GET",
                "/repos/{owner}/{repo}/git/refs/{ref:path}",
                self._get_ref,
                "/repos/{owner}/{repo}/git/ref/{ref}",
            ),
            ("POST", "/repos/{owner}/{repo}/git/refs", self._create_ref),
            ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref:path}", self._update_ref),
            ("POST", "/repos/{owner}/{repo}/git/blobs", self._create_blob),
            ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}", self._get_blob),
            ("POST", "/repos/{owner}/{repo}/git/trees", self._create_tree),
            ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", self._get_tree),
            ("POST", "/repos/{owner}/{repo}/git/commits", self._create_commit),
            ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}", self._get_commit),
            ("GET", "/repos/{owner}/{repo}/commits", self._list_commits),
            ("GET", "/repos/{owner}/{repo}/keys", self._list_keys),
            ("POST", "/repos/{owner}/{repo}/keys", self._create_key),
            ("GET", "/repos/{owner}/{repo}/keys/{key_id}", self._get_key),
            ("DELETE", "/repos/{owner}/{repo}/keys/{key_id}", self._delete_key),
            ("POST", "/organizations/{org}/settings/apps/new", self._manifest_form, None, True),
            ("POST", "/organizations/{org}/settings/apps/new/confirm", self._confirm_manifest, None, True),
            ("POST", "/app-manifests/{code}/conversions", self._convert_manifest, "", True),
            ("GET", "/apps/{app_slug}", self._get_app, "", True),
            ("POST", "/applications/{client_id}/token", self._check_token, "", True),
        )
        for method, pattern, handler, *options in table:
            self.api(method, pattern, *options)(handler)

    # -- handlers ------------------------------------------------------------

    def _get_user(self, req: Request, who: Token | None) -> Response:
        if who is None:
            raise _Abort(
                error(401, "Requires authentication", f"{DOCS}/users/users#get-the-authenticated-user")
            )
        owned = [r for r in self.repos.values() if r.owner == who.login]
        private = sum(r.private for r in owned)
        return Response(
            200,
            self._account(who.login)
            | {
                "name": who.login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "public_repos": len(owned) - private,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": "2011-01-25T18:44:36Z",
                "updated_at": "2011-01-25T18:44:36Z",
                "private_gists": 0,
                "total_private_repos": private,
                "owned_private_repos": private,
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": True,
                "user_view_type": "private",  # the discriminator between private- and public-user
            },
        )

    def _get_org(self, req: Request, who: Token | None) -> Response:
        org = req.params["org"]
        if org not in self.orgs:
            raise _Abort(error(404, "Not Found", f"{DOCS}/orgs/orgs#get-an-organization"))
        a = self._account(org)
        repos = [r for r in self.repos.values() if r.owner == org]
        return Response(
            200,
            {k: a[k] for k in ("login", "id", "node_id", "url", "repos_url", "events_url", "avatar_url")}
            | {
                "hooks_url": f"{self.url}/orgs/{org}/hooks",
                "issues_url": f"{self.url}/orgs/{org}/issues",
                "members_url": f"{self.url}/orgs/{org}/members{{/member}}",
                "public_members_url": f"{self.url}/orgs/{org}/public_members{{/member}}",
                "description": None,
                "html_url": a["html_url"],
                "has_organization_projects": True,
                "has_repository_projects": True,
                "public_repos": sum(not r.private for r in repos),
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "type": "Organization",
                "created_at": "2015-03-01T00:00:00Z",
                "updated_at": "2015-03-01T00:00:00Z",
                "archived_at": None,
            },
        )

    def _get_repo(self, req: Request, who: Token | None) -> Response:
        repo = self._repo(req, who, ("metadata", "read"), f"{DOCS}/repos/repos#get-a-repository")
        return Response(200, self._repo_json(repo, who))

    # -- contents ----------------------------------------------------------
    def _contents(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/repos/contents#get-repository-content"
        repo = self._repo(req, who, ("contents", "read"), doc)
        if not repo.refs:
            raise _Abort(error(404, "This repository is empty.", doc))  # unverified wording
        ref = req.arg("ref") or repo.default_branch
        head = repo.resolve(ref)
        if head is None:
            raise _Abort(error(404, f"No commit found for the ref {ref}", doc))
        path = req.params.get("path", "").strip("/")
        tree = repo.commits[head].tree
        if path:
            found = next((e for p, e in repo.walk(tree) if p == path), None)
            if found is None:
                raise _Abort(error(404, "Not Found", doc))
            if found.type != "tree":
                return Response(200, self._content_json(repo, path, found, ref, body=True))
            tree = found.sha
        prefix = f"{path}/" if path else ""
        listing = [self._content_json(repo, prefix + e.name, e, ref, body=False) for e in repo.trees[tree]]
        return Response(200, listing)

    # -- branches and refs -----------------------------------------------------
    def _put_contents(self, req: Request, who: Token | None) -> Response:
        """Create or update one file in one commit; the way to the first commit of an empty repository
        (REFERENCE.md §11). Updating needs the current blob ``sha``: GitHub answers 422 without it and
        409 with a stale one (the OpenAPI description documents 409 and 422; wordings unverified)."""
        doc = f"{DOCS}/repos/contents#create-or-update-file-contents"
        repo = self._repo(req, who, ("contents", "write"), doc)
        data = req.json() or {}
        path = req.params["path"].strip("/")
        branch = str(data.get("branch") or repo.default_branch)
        try:
            raw = base64.b64decode(str(data.get("content", "")), validate=True)
        except binascii.Error:
            raise _Abort(error(422, "content is not valid Base64", doc)) from None
        head = repo.refs.get(f"heads/{branch}")
        if head is None and repo.refs:
            raise _Abort(error(404, f"Branch {branch} not found", doc))
        leaves = repo.leaves(repo.commits[head].tree) if head else {}
        existing = leaves.get(path)
        if existing is not None and "sha" not in data:
            raise _Abort(error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc))
        if existing is not None and data["sha"] != existing[2]:
            raise _Abort(error(409, f"{path} does not match {data['sha']}", doc))
        leaves[path] = ("100644", "blob", repo.put_blob(raw))
        login = who.login if who else "octocat"
        sha = self._commit(
            repo, repo.write_tree(leaves), (head,) if head else (), str(data["message"]), login
        )
        if not repo.refs:
            repo.default_branch = branch  # the first push names the default branch
        repo.refs[f"heads/{branch}"] = sha
        entry = TreeEntry(path.rsplit("/", 1)[-1], "100644", "blob", leaves[path][2])
        body = {
            "content": self._content_json(repo, path, entry, branch, body=False),
            "commit": self._commit_json(repo, sha),
        }
        return Response(200 if existing else 201, body)

    def _list_branches(self, req: Request, who: Token | None) -> Response:
        repo = self._repo(req, who, ("metadata", "read"), f"{DOCS}/branches/branches#list-branches")
        u = self._repo_url(repo)
        branches = [
            {"name": r[6:], "commit": {"sha": sha, "url": f"{u}/commits/{sha}"}, "protected": False}
            for r, sha in sorted(repo.refs.items())
            if r.startswith("heads/")
        ]
        return self._paginate(req, branches)

    def _get_branch(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/branches/branches#get-a-branch"
        repo = self._repo(req, who, ("metadata", "read"), doc)
        name = req.params["branch"]
        sha = repo.refs.get(f"heads/{name}")
        if sha is None:
            raise _Abort(error(404, "Branch not found", doc))
        u = f"{self._repo_url(repo)}/branches/{urllib.parse.quote(name)}"
        return Response(
            200,
            {
                "name": name,
                "commit": self._rest_commit_json(repo, sha),
                "_links": {"self": u, "html": f"{self.url}/{repo.full_name}/tree/{name}"},
                "protected": False,
                "protection": {
                    "enabled": False,
                    "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
                },
                "protection_url": f"{u}/protection",
            },
        )

    def _get_ref(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOC_REFS}#get-a-reference"
        repo = self._repo(req, who, ("contents", "read"), doc)
        self._not_empty(repo, doc)
        ref = req.params["ref"]
        if ref not in repo.refs:
            raise _Abort(error(404, "Not Found", doc))
        return Response(200, self._ref_json(repo, ref))

    def _create_ref(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOC_REFS}#create-a-reference"
        repo = self._repo(req, who, ("contents", "write"), doc)
        data = req.json() or {}
        ref, sha = str(data.get("ref", "")), str(data.get("sha", ""))
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise _Abort(error(422, "Reference name is not well formed", doc))
        if sha not in repo.commits:
            raise _Abort(error(422, "Object does not exist", doc))
        if ref[5:] in repo.refs:
            raise _Abort(error(422, "Reference already exists", doc))
        repo.refs[ref[5:]] = sha
        repo.pushed_at = iso(time.time())
        body = self._ref_json(repo, ref[5:])
        return Response(201, body, {"location": body["url"]})

    def _update_ref(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOC_REFS}#update-a-reference"
        repo = self._repo(req, who, ("contents", "write"), doc)
        ref = req.params["ref"]
        data = req.json() or {}
        sha = str(data.get("sha", ""))
        if ref not in repo.refs:
            raise _Abort(error(422, "Reference does not exist", doc))
        if sha not in repo.commits:
            raise _Abort(error(422, "Object does not exist", doc))
        if not data.get("force") and not repo.is_ancestor(repo.refs[ref], sha):
            raise _Abort(error(422, "Update is not a fast forward", doc))
        repo.refs[ref] = sha
        repo.pushed_at = iso(time.time())
        return Response(200, self._ref_json(repo, ref))

    # -- git data --------------------------------------------------------------
    def _create_blob(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/git/blobs#create-a-blob"
        repo = self._repo(req, who, ("contents", "write"), doc)
        self._not_empty(repo, doc)
        data = req.json() or {}
        content, encoding = data.get("content"), data.get("encoding", "utf-8")
        if not isinstance(content, str) or encoding not in ("utf-8", "base64"):
            raise _Abort(error(422, "Invalid request.", doc))
        raw = content.encode() if encoding == "utf-8" else base64.b64decode(content)
        sha = repo.put_blob(raw)
        url = f"{self._repo_url(repo)}/git/blobs/{sha}"
        return Response(201, {"sha": sha, "url": url}, {"location": url})

    def _get_blob(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/git/blobs#get-a-blob"
        repo = self._repo(req, who, ("contents", "read"), doc)
        self._not_empty(repo, doc)
        sha = req.params["file_sha"]
        if sha not in repo.blobs:
            raise _Abort(error(404, "Not Found", doc))
        data = repo.blobs[sha]
        return Response(
            200,
            {
                "sha": sha,
                "node_id": base64.b64encode(f"04:Blob{repo.id}:{sha}".encode()).decode(),
                "size": len(data),
                "url": f"{self._repo_url(repo)}/git/blobs/{sha}",
                "content": wrap_base64(data),
                "encoding": "base64",
            },
        )

    def _tree_json(self, repo: RepoState, sha: str, recursive: bool) -> dict[str, Any]:
        u = self._repo_url(repo)
        entries = repo.walk(sha) if recursive else ((e.name, e) for e in repo.trees[sha])
        tree = []
        for path, e in entries:
            item: dict[str, Any] = {"path": path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                item["size"] = len(repo.blobs[e.sha])
            if e.type != "commit":
                item["url"] = f"{u}/git/{e.type}s/{e.sha}"
            tree.append(item)
        return {"sha": sha, "url": f"{u}/git/trees/{sha}", "tree": tree, "truncated": False}

    def _create_tree(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/git/trees#create-a-tree"
        repo = self._repo(req, who, ("contents", "write"), doc)
        self._not_empty(repo, doc)
        data = req.json() or {}
        base = data.get("base_tree")
        if base is not None and base not in repo.trees:
            raise _Abort(error(422, "base_tree is not a valid tree oid", doc))
        leaves = repo.leaves(base) if base else {}
        for item in data.get("tree") or []:
            path = str(item.get("path", "")).strip("/")
            mode, kind = str(item.get("mode", "")), str(item.get("type", ""))
            if not path or mode not in ("100644", "100755", "040000", "160000", "120000"):
                raise _Abort(error(422, "Invalid tree info", doc))
            if "content" in item:
                leaves[path] = (mode, "blob", repo.put_blob(str(item["content"]).encode()))
            elif item.get("sha") is None:
                gone = [p for p in leaves if p == path or p.startswith(path + "/")]
                if not gone:
                    raise _Abort(error(422, "GitRPC::BadObjectState", doc))
                for p in gone:
                    del leaves[p]
            elif kind == "tree":
                if item["sha"] not in repo.trees:
                    raise _Abort(error(422, "GitRPC::BadObjectState", doc))
                leaves = {p: v for p, v in leaves.items() if not p.startswith(path + "/")}
                leaves |= {f"{path}/{p}": v for p, v in repo.leaves(item["sha"]).items()}
            else:
                if kind == "blob" and item["sha"] not in repo.blobs:
                    raise _Abort(error(422, "GitRPC::BadObjectState", doc))
                leaves[path] = (mode, kind, str(item["sha"]))
        sha = repo.write_tree(leaves)
        body = self._tree_json(repo, sha, recursive=False)
        return Response(201, body, {"location": body["url"]})

    def _get_tree(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/git/trees#get-a-tree"
        repo = self._repo(req, who, ("contents", "read"), doc)
        self._not_empty(repo, doc)
        sha = req.params["tree_sha"]
        if sha not in repo.trees:
            commit = repo.resolve(sha)
            if commit is None:
                raise _Abort(error(404, "Not Found", doc))
            sha = repo.commits[commit].tree
        return Response(
            200, self._tree_json(repo, sha, recursive=req.arg("recursive") not in (None, "", "0", "false"))
        )

    def _create_commit(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/git/commits#create-a-commit"
        repo = self._repo(req, who, ("contents", "write"), doc)
        self._not_empty(repo, doc)
        data = req.json() or {}
        tree, parents = data.get("tree"), tuple(data.get("parents") or ())
        if not isinstance(data.get("message"), str):
            raise _Abort(error(422, 'Invalid request.\n\n"message" wasn\'t supplied.', doc))
        if tree not in repo.trees:
            raise _Abort(error(422, "Tree SHA does not exist", doc))
        if any(p not in repo.commits for p in parents):
            raise _Abort(error(422, "Parent SHA does not exist or is not a commit object", doc))
        now = int(time.time())
        login = who.login if who else "octocat"

        def signature(given: Any) -> Signature:
            if not isinstance(given, dict):
                return Signature(login, f"{login}@users.noreply.github.com", now)
            when = given.get("date")
            ts = int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()) if when else now
            return Signature(str(given.get("name", login)), str(given.get("email", "")), ts)

        author = signature(data.get("author"))
        committer = signature(data.get("committer") or data.get("author"))
        sha = repo.put_commit(Commit(str(tree), parents, data["message"], author, committer))
        body = self._commit_json(repo, sha)
        return Response(201, body, {"location": body["url"]})

    def _get_commit(self, req: Request, who: Token | None) -> Response:
        repo = self._repo(req, who, ("contents", "read"), f"{DOCS}/git/commits#get-a-commit-object")
        self._not_empty(repo, f"{DOCS}/git/commits#get-a-commit-object")
        sha = req.params["commit_sha"]
        if sha not in repo.commits:
            raise _Abort(error(404, "Not Found", f"{DOCS}/git/commits#get-a-commit-object"))
        return Response(200, self._commit_json(repo, sha))

    def _list_commits(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/commits/commits#list-commits"
        repo = self._repo(req, who, ("contents", "read"), doc)
        head = repo.resolve(req.arg("sha"))
        if head is None:
            raise _Abort(error(404, "Not Found", doc))
        path = (req.arg("path") or "").strip("/")

        def at(commit: Commit) -> tuple[str, str] | None:
            found = next((e for p, e in repo.walk(commit.tree) if p == path), None)
            return (found.type, found.sha) if found else None

        shas = []
        for sha, commit in repo.history(head):
            before = at(repo.commits[commit.parents[0]]) if commit.parents else None
            if not path or at(commit) != before:
                shas.append(sha)
        return self._paginate(req, [self._rest_commit_json(repo, s) for s in shas])

    # -- deploy keys -------------------------------------------------------------
    def _list_keys(self, req: Request, who: Token | None) -> Response:
        repo = self._repo(req, who, ("administration", "read"), f"{DOC_KEYS}#list-deploy-keys")
        return self._paginate(req, [self._key_json(repo, k) for k in repo.keys])

    def _create_key(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOC_KEYS}#create-a-deploy-key"
        repo = self._repo(req, who, ("administration", "write"), doc)
        data = req.json() or {}
        key = parse_public_key(str(data.get("key", "")))

        def invalid(message: str) -> _Abort:
            detail = {"resource": "PublicKey", "code": "custom", "field": "key", "message": message}
            return _Abort(error(422, "Validation Failed", doc, errors=[detail]))

        if key is None:
            raise invalid("key is invalid. You must supply a key in OpenSSH public key format")
        in_use = self.used_elsewhere | {k.key for r in self.repos.values() for k in r.keys}
        if key in in_use:
            raise invalid("key is already in use")
        read_only = data.get("read_only", False)
        record = DeployKeyRecord(
            next(self._ids),
            key,
            str(data.get("title") or ""),
            bool(read_only),
            who.login if who else "",
            iso(time.time()),
        )
        repo.keys.append(record)
        body = self._key_json(repo, record)
        return Response(201, body, {"location": body["url"]})

    def _find_key(
        self, req: Request, who: Token | None, need: Need, doc: str
    ) -> tuple[RepoState, DeployKeyRecord]:
        repo = self._repo(req, who, need, doc)
        key_id = req.params["key_id"]
        for k in repo.keys:
            if str(k.id) == key_id:
                return repo, k
        raise _Abort(error(404, "Not Found", doc))

    def _get_key(self, req: Request, who: Token | None) -> Response:
        repo, k = self._find_key(req, who, ("administration", "read"), f"{DOC_KEYS}#get-a-deploy-key")
        return Response(200, self._key_json(repo, k))

    def _delete_key(self, req: Request, who: Token | None) -> Response:
        repo, k = self._find_key(req, who, ("administration", "write"), f"{DOC_KEYS}#delete-a-deploy-key")
        repo.keys.remove(k)
        return Response(204)

    # -- GitHub Apps and OAuth clients -------------------------------------------
    def _manifest_form(self, req: Request, who: Token | None) -> Response:
        """The page GitHub shows for a posted manifest: its error, or "Create GitHub App" to confirm.

        GitHub refuses an invalid manifest at once (the page's text: see ``manifest_error``) and
        otherwise asks the signed-in person to confirm (docs: Registering a GitHub App from a
        manifest, step "the person … clicks Create GitHub App"); only then does it redirect to
        ``redirect_url`` with ``code`` and the ``state`` it was given.
        """
        form = req.form()
        org = req.params["org"]
        try:
            manifest = json.loads(form.get("manifest", ""))
            problem = manifest_error(manifest)
        except (ValueError, TypeError, AttributeError) as exc:
            problem = MANIFEST_INVALID.format(f"The manifest is not valid JSON ({exc}).")
        if problem is not None:
            return _page(422, "Invalid GitHub App configuration", f"<p>{html.escape(problem)}</p>")
        ticket = secrets.token_urlsafe(16)
        self._pending[ticket] = (org, manifest, req.arg("state"))
        action = f"/organizations/{urllib.parse.quote(org)}/settings/apps/new/confirm"
        body = (
            f'<p>Create a GitHub App named <b id="app-name">{html.escape(str(manifest.get("name")))}'
            f"</b> for {html.escape(org)}.</p>"
            f'<form method="post" action="{html.escape(action)}">'
            f'<input type="hidden" name="ticket" value="{ticket}">'
            '<button id="create" type="submit">Create GitHub App</button></form>'
        )
        return _page(200, f"Create GitHub App for {html.escape(org)}", body)

    def _confirm_manifest(self, req: Request, who: Token | None) -> Response:
        """The person clicked "Create GitHub App": create it and redirect back with the code."""
        pending = self._pending.pop(req.form().get("ticket", ""), None)
        if pending is None or pending[0] != req.params["org"]:
            return _page(404, "Not Found", "<p>This page is no longer valid; post the manifest again.</p>")
        org, manifest, state = pending
        try:
            code = self.complete_manifest_flow(org, manifest)
        except InvalidManifest as exc:
            return _page(422, "Invalid GitHub App configuration", f"<p>{html.escape(str(exc))}</p>")
        target = manifest.get("redirect_url")
        if not target:
            slug = self._codes[code][0]
            return Response(302, headers={"location": f"{self.url}/organizations/{org}/settings/apps/{slug}"})
        query = {"code": code} | ({"state": state} if state else {})
        sep = "&" if "?" in target else "?"
        return Response(302, headers={"location": f"{target}{sep}{urllib.parse.urlencode(query)}"})

    def _convert_manifest(self, req: Request, who: Token | None) -> Response:
        slug, expiry = self._codes.pop(req.params["code"], ("", 0.0))
        if not slug or expiry < time.time():
            raise _Abort(error(404, "Not Found", f"{DOCS}/apps/apps#create-a-github-app-from-a-manifest"))
        app = self.apps[slug]
        secrets_part = {
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret,
            "pem": app.pem,
        }
        return Response(201, self._app_json(app) | secrets_part)

    def _get_app(self, req: Request, who: Token | None) -> Response:
        app = self.apps.get(req.params["app_slug"])
        if app is None:
            raise _Abort(error(404, "Not Found", f"{DOCS}/apps/apps#get-an-app"))
        return Response(200, self._app_json(app))

    def _check_token(self, req: Request, who: Token | None) -> Response:
        doc = f"{DOCS}/apps/oauth-applications#check-a-token"
        scheme, _, value = (req.header("authorization") or "").partition(" ")
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        known = self.oauth_clients | {a.client_id: a.client_secret for a in self.apps.values()}
        client_id = req.params["client_id"]
        if scheme.lower() != "basic" or user != client_id or known.get(client_id) != password or not password:
            raise _Abort(error(401, "Bad credentials", doc))
        if not (req.json() or {}).get("access_token"):
            raise _Abort(error(422, 'Invalid request.\n\n"access_token" wasn\'t supplied.', doc))
        # this emulator never issues user tokens, so every token is unknown
        raise _Abort(error(404, "Not Found", doc))
