"""Preflight: every credential, permission and input a run needs, checked before anything is written.

Guarantees:

- it only reads: no checkpoint, no lock, no remote write. Vault is asked through
  ``sys/capabilities-self``, GitHub with GETs, Slack with ``auth.test``, OpsGenie
  with a list of integrations, the cluster with SelfSubjectAccessReviews (which
  the API server evaluates and stores nothing of);
- every problem is reported at once: checks are independent small functions, run
  concurrently; one that cannot run because its credential did not resolve says
  so ("not checked") instead of failing a second time;
- each check runs once per run: steps declare what they need (``Step.checks``
  returning ``Need`` values), equal needs are merged, so Vault is one call for
  every path, the infra repo one inspection for every step;
- exit codes follow DESIGN.md §7: a problem in the input (a reference that does
  not resolve, an unknown addon or kit version, an OpsGenie team that does not
  exist) is exit 4, a missing permission or an unreachable service exit 1.

The engine knows none of this: the caller hands it ``hook()`` and the engine
calls it before the first step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from bootstrap.errors import AuthError, BootstrapError, ConfigError, ExitCode, PermanentError, RetryableError

if TYPE_CHECKING:
    from bootstrap.clients.github import RepoAccess
    from bootstrap.step import Context, Need, Step

T = TypeVar("T")
MAX_ATTEMPTS = 3
MAX_RETRY_DELAY = 5.0
"""A check waits at most this long before asking again (a longer Retry-After fails the check)."""
WORKERS = 8
"""Checks in flight at once: they are independent reads."""
REVIEWERS = 24
"""SelfSubjectAccessReviews asked at once: a run needs ~60 (verb, resource, namespace) answers, one
call each, and at 8 at a time they were the longest part of the checks."""
_VAULT_CAPABILITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "read": {"data": ("read",)},
    "write": {"data": ("create", "update"), "metadata": ("update",)},
}
_GITHUB_LABEL = {"contents:write": "Contents: write", "administration:write": "Administration: write"}


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    """A missing permission or an unreachable service (exit 1)."""
    INVALID = "invalid"
    """The input is wrong: fix customer.yaml or what a reference points to (exit 4)."""
    SKIPPED = "not checked"
    """Could not be checked because something it depends on failed (reported on its own row)."""


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    detail: str
    fix: str = ""
    steps: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "result": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
            "steps": list(self.steps),
        }


@dataclass
class Report:
    customer: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[Result]:
        return [r for r in self.results if r.status in (Status.FAILED, Status.INVALID)]

    def exit_code(self) -> ExitCode:
        """A check that failed is 1 (fix a permission, reach a service); only bad input is 4."""
        statuses = {r.status for r in self.results}
        if Status.FAILED in statuses:
            return ExitCode.FAILED
        return ExitCode.INVALID_INPUT if Status.INVALID in statuses else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "exit_code": int(self.exit_code()),
            "seconds": round(self.seconds, 3),
            "checks": [r.to_json() for r in self.results],
        }

    def summary(self) -> str:
        """The failures as text: one line each, what is wrong and what to do."""
        lines = [f"{len(self.problems)} preflight check(s) failed for {self.customer}; nothing was changed:"]
        for r in self.problems:
            lines.append(f"  {r.check}: {r.detail}" + (f" — {r.fix}" if r.fix else ""))
        lines.append(
            "fix them and run again (`bootstrap check` re-checks; --skip-checks if a check is wrong)"
        )
        return "\n".join(lines)


class PreflightFailed(BootstrapError):
    """A run or plan stopped before its first write because preflight checks failed."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.summary())
        self.report = report
        self.exit_code = report.exit_code()

    def details(self) -> dict[str, Any]:
        return self.report.to_json()


def hook(ctx: Context, steps: Sequence[Step]) -> None:
    """What the engine calls before the first step of a run or plan: raise if any check fails."""
    report = run(ctx, steps)
    if report.problems:
        raise PreflightFailed(report)


def run(ctx: Context, steps: Sequence[Step]) -> Report:
    """Every check the given steps need, each once; all results, problems and successes alike."""
    started = time.monotonic()
    merged: dict[tuple[str, str], tuple[Need, list[str]]] = {}
    for step in steps:
        for need in step.checks(ctx.config):
            # Equal targets merge: one row (and one set of calls) per repo, Vault path, namespace.
            known, ids = merged.get((need.service, need.target), (need, []))
            perms = tuple(dict.fromkeys((*known.permissions, *need.permissions)))
            merged[(need.service, need.target)] = (replace(known, permissions=perms), [*ids, step.id])
    merged = {k: (n, list(dict.fromkeys(ids))) for k, (n, ids) in merged.items()}
    needs = dict(merged.values())
    report = Report(ctx.config.customer.name)
    report.results += check_references(ctx)
    broken = {r.check.split(" ")[0] for r in report.results if r.status is not Status.OK}
    jobs: list[Callable[[], list[Result]]] = []
    by_service: dict[str, dict[Need, list[str]]] = {}
    for need, ids in needs.items():
        by_service.setdefault(need.service, {})[need] = ids
    for service, group in by_service.items():
        jobs.append(_guarded(service, group, ctx, broken))
    _warm(ctx, [s for s in by_service if not any(b.startswith(_CREDENTIAL.get(s, "-")) for b in broken)])
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="check") as pool:
        for results in pool.map(lambda job: job(), jobs):
            report.results += results
    report.seconds = time.monotonic() - started
    return report


# -- references ---------------------------------------------------------------------------


def check_references(ctx: Context) -> list[Result]:
    """Every ``env:``, ``file:`` and ``vault:`` reference resolves (the Vault credential first)."""
    cfg = ctx.config
    refs = sorted(cfg.references(), key=lambda fr: fr[1].kind == "vault")  # vault: ones need Vault
    out: list[Result] = []
    vault_down = ""
    for field_, ref in refs:
        name = f"{field_} ({ref})"
        if ref.kind == "vault" and vault_down:
            out.append(Result(name, Status.SKIPPED, f"Vault could not be used: {vault_down}"))
            continue
        try:
            problem = ctx.secrets.problem(ref, field_)
        except AuthError as exc:  # this path is denied (or the token is bad): the others may still work
            out.append(Result(name, Status.FAILED, str(exc), "give vault.auth read on that path"))
            continue
        except BootstrapError as exc:
            vault_down = str(exc)
            out.append(Result(name, Status.FAILED, str(exc), "check vault.url and that Vault is running"))
            continue
        if problem is None:
            out.append(Result(name, Status.OK, "resolves"))
        else:
            out.append(Result(name, Status.INVALID, cfg.located(field_, problem), _ref_fix(ref.kind)))
            if field_.startswith("vault.auth"):
                vault_down = f"{field_} does not resolve"
    return out


def _ref_fix(kind: str) -> str:
    return {
        "env": "export the variable (or change the reference) and run again",
        "file": "create the file with the secret, readable only by you (chmod 600)",
        "vault": "store the secret at that Vault path and key, or change the reference",
    }[kind]


# -- services -----------------------------------------------------------------------------

_CREDENTIAL = {
    "github": "github.token",
    "kit": "github.token",
    "slack": "slack.token",
    "opsgenie": "alerting.api_key",
    "jsm": "alerting.jsm.api_token",
    "vault": "vault.auth",
}


_CLIENT = {
    "github": "github",
    "kit": "github",
    "vault": "vault",
    "slack": "slack",
    "opsgenie": "opsgenie",
    "jsm": "jsm",
}


def _warm(ctx: Context, services: list[str]) -> None:
    """Build each service's client in this thread before the checks run concurrently.

    The clients import their SDKs on first use, and imports raced from several threads fail
    half-way (requests' modules import each other: "partially initialized module"). A client
    that cannot be built is left for its check to report.
    """
    for service in services:
        with contextlib.suppress(BootstrapError):
            if service in _CLIENT:
                getattr(ctx.services, _CLIENT[service])
            elif service == "cluster":
                ctx.services.kube.connect()
            elif service == "hub":
                ctx.services.hub_kube.connect()


def _guarded(
    service: str, needs: dict[Need, list[str]], ctx: Context, broken: set[str]
) -> Callable[[], list[Result]]:
    """The service's check, turned into rows whatever happens (a bug is a row too, never a crash)."""

    def job() -> list[Result]:
        steps = tuple(sorted({s for ids in needs.values() for s in ids}))
        credential = _CREDENTIAL.get(service, "")
        if credential and any(b.startswith(credential) for b in broken):
            return [
                Result(service, Status.SKIPPED, f"{credential} does not resolve (see its row)", "", steps)
            ]
        try:
            return _retrying(lambda: CHECKS[service](ctx, needs))
        except ConfigError as exc:
            return [Result(service, Status.INVALID, str(exc), "fix customer.yaml", steps)]
        except BootstrapError as exc:
            return [Result(service, Status.FAILED, str(exc), "", steps)]
        except Exception as exc:  # a bug or an unmapped library error: still one row, all others stand
            return [Result(service, Status.FAILED, f"unexpected {type(exc).__name__}: {exc}", "", steps)]

    return job


def _retrying(check: Callable[[], T]) -> T:
    """A check hit by a transient failure (429, 5xx, a dropped connection) is asked again, as a step would be.

    The clients already retry each call a little; this covers a blip that outlasts them, so that a
    run is not stopped by its preflight for what its steps would have ridden out.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return check()
        except RetryableError as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(min(exc.delay if exc.delay is not None else 0.25 * 2**attempt, MAX_RETRY_DELAY))
    raise AssertionError("unreachable: the last attempt returns or raises")


def check_vault(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The token's capabilities on every KV path the run reads or writes: one capabilities-self call."""
    vault = ctx.services.vault
    mount = ctx.config.vault.mount
    wanted: dict[str, set[str]] = {}
    rows: list[tuple[Need, list[str], dict[str, tuple[str, ...]]]] = []
    for need, ids in needs.items():
        per_path: dict[str, tuple[str, ...]] = {}
        for perm in need.permissions:
            for kind, caps in _VAULT_CAPABILITIES[perm].items():
                api = vault.api_path(kind, need.target)
                per_path[api] = (*per_path.get(api, ()), *caps)
                wanted.setdefault(api, set()).update(caps)
        rows.append((need, ids, per_path))
    granted = vault.capabilities(tuple(sorted(wanted)))
    out = []
    for need, ids, per_path in rows:
        missing = [
            f"{cap} on {api}"
            for api, caps in per_path.items()
            for cap in dict.fromkeys(caps)
            if not _vault_allows(granted.get(api, frozenset()), cap)
        ]
        name = f"vault {mount}/{need.target} ({', '.join(need.permissions)})"
        if missing:
            fix = (
                f'add `path "{mount}/data/{ctx.config.vault.prefix}/*"` and `path "{mount}/metadata/'
                f'{ctx.config.vault.prefix}/*"` with these capabilities to the policy of vault.auth'
            )
            out.append(Result(name, Status.FAILED, "the token lacks " + "; ".join(missing), fix, tuple(ids)))
        else:
            out.append(Result(name, Status.OK, "capabilities granted", "", tuple(ids)))
    return out


def _vault_allows(granted: frozenset[str], capability: str) -> bool:
    if "deny" in granted:
        return False
    return "root" in granted or capability in granted


def check_github(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The infra repo: exists, not archived, not empty, and the token may do what the steps need."""
    out: list[Result] = []
    repos: dict[str, dict[str, list[str]]] = {}
    for need, ids in needs.items():
        for perm in need.permissions:
            repos.setdefault(need.target, {}).setdefault(perm, []).extend(ids)
    for repo, perms in repos.items():
        all_steps = tuple(sorted({s for ids in perms.values() for s in ids}))
        access = ctx.services.github.inspect_repo(repo)
        out.append(_repo_state(repo, access, all_steps))
        for perm, ids in perms.items():
            out.append(_github_permission(repo, perm, access, tuple(sorted(set(ids)))))
    return out


def _repo_state(repo: str, access: RepoAccess, steps: tuple[str, ...]) -> Result:
    name = f"github repo {repo}"
    if access.archived:
        return Result(
            name,
            Status.FAILED,
            "the repository is archived (read-only)",
            "unarchive it in its Settings",
            steps,
        )
    if access.empty:
        return Result(
            name,
            Status.FAILED,
            "the repository is empty: GitHub's Git Data API refuses to commit to it (409 'Git Repository is "
            "empty')",
            "initialise it (create a README on GitHub or push one commit), then run again",
            steps,
        )
    return Result(
        name, Status.OK, f"{'private' if access.private else 'public'}, not archived, not empty", "", steps
    )


def _github_permission(repo: str, perm: str, access: RepoAccess, steps: tuple[str, ...]) -> Result:
    """One permission, from the source GitHub gives for the token's kind (see ``inspect_repo``)."""
    label = _GITHUB_LABEL.get(perm, perm)
    area = perm.split(":")[0]
    name = f"github {label} on {repo}"
    role_ok = access.admin if area == "administration" else access.push
    role = "an admin of" if area == "administration" else "allowed to push to"
    if access.scopes is not None:  # classic token: x-oauth-scopes + the repo's permissions object
        needed = "repo" if access.private else "public_repo"
        if not {"repo", needed} & access.scopes:
            return Result(
                name,
                Status.FAILED,
                f"the classic token lacks the `{needed}` scope "
                f"(it has: {', '.join(sorted(access.scopes)) or 'none'})",
                f"create a token with the `{needed}` scope and point github.token at it",
                steps,
            )
        if not role_ok:
            return Result(
                name,
                Status.FAILED,
                f"the token's user is not {role} {repo}",
                f"make the user {role} {repo}",
                steps,
            )
        return Result(name, Status.OK, "classic token: scope and role suffice", "", steps)
    if area in access.denied:  # fine-grained: the 403 + x-accepted-github-permissions of a read probe
        return Result(
            name,
            Status.FAILED,
            f"the fine-grained token lacks {area.capitalize()} access "
            f"(GitHub asked for {area}={access.denied[area]})",
            f"give the token the {label} permission on {repo}",
            steps,
        )
    if not role_ok:
        return Result(
            name,
            Status.FAILED,
            f"the token's user is not {role} {repo}",
            f"make the user {role} {repo}",
            steps,
        )
    return Result(
        name,
        Status.OK,
        "fine-grained token: read access and the user's role verified "
        "(a write level shows only when writing)",
        "",
        steps,
    )


def check_kit(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The kit branch ``kit.version`` exists, its catalog is readable, and it offers every addon."""
    from bootstrap.clients import kit as kit_catalog

    cfg = ctx.config
    steps = tuple(sorted({s for ids in needs.values() for s in ids}))
    github = ctx.services.github
    name = f"kit {cfg.kit.repo}@{cfg.kit.version}"
    head = github.branch_head(cfg.kit.repo, cfg.kit.version)
    if head is None:
        detail = kit_catalog.missing_version(cfg, github.branches(cfg.kit.repo))
        return [Result(name, Status.INVALID, detail, "set kit.version to one of the release branches", steps)]
    if not cfg.kit.addons:
        return [Result(name, Status.OK, "the branch exists; no addons to check", "", steps)]
    try:
        known = kit_catalog.catalog(
            cfg.kit.repo, cfg.kit.version, github.read_file(cfg.kit.repo, head, kit_catalog.CATALOG)
        )
    except PermanentError as exc:
        return [Result(name, Status.FAILED, str(exc), f"fix the kit's {kit_catalog.CATALOG}", steps)]
    unknown = kit_catalog.unknown_addons(cfg, known)
    if unknown:
        fix = f"kit {cfg.kit.version} has: {', '.join(sorted(known))}"
        return [Result(f"kit addons @{cfg.kit.version}", Status.INVALID, u, fix, steps) for u in unknown]
    return [
        Result(
            name, Status.OK, f"branch and catalog found; addons {', '.join(cfg.kit.addons)} exist", "", steps
        )
    ]


def check_slack(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The token holds every scope the steps use (as Slack reports it in ``x-oauth-scopes``)."""
    granted = ctx.services.slack.scopes()
    out = []
    for need, ids in needs.items():
        missing = [s for s in need.permissions if s not in granted]
        name = "slack token scopes"
        if missing:
            fix = "add them under OAuth & Permissions → Bot Token Scopes and reinstall the app"
            out.append(Result(name, Status.FAILED, f"missing {', '.join(missing)}", fix, tuple(ids)))
        else:
            out.append(Result(name, Status.OK, ", ".join(need.permissions), "", tuple(ids)))
    return out


@dataclass(frozen=True)
class _Alerting:
    """What differs between OpsGenie and JSM Operations in the integrations check: the words."""

    label: str
    provider: str
    who: str
    auth_fix: str
    no_team_fix: str


_OPSGENIE = _Alerting(
    "opsgenie",
    "OpsGenie",
    "the key",
    "use an API key (Settings → API key management) with Configuration access, Read, Create and Update",
    "fix alerting.team or create the team",
)
_JSM = _Alerting(
    "jsm",
    "JSM",
    "the account",
    "use alerting.jsm.email/api_token of an account with the JSM admin role "
    "(OAuth: read:ops-config:jira-service-management and write:ops-config:…)",
    "fix alerting.team or create the team (Teams → Create team, then enable Operations)",
)


def _check_integrations(
    find: Callable[[str, str, str], object], words: _Alerting, ctx: Context, needs: dict[Need, list[str]]
) -> list[Result]:
    """The credential may manage the team's integrations: listing them answers 200 (not 401/403/404).

    Listing is the cheapest read that needs the same rights as the step's writes, and it
    also proves the team exists (both providers answer "no team named …" otherwise).
    """
    out = []
    for need, ids in needs.items():
        name = f"{words.label} integrations of team {need.target}"
        try:
            find("", "API", need.target)
        except AuthError as exc:
            out.append(Result(name, Status.FAILED, str(exc), words.auth_fix, tuple(ids)))
            continue
        except PermanentError as exc:
            if "no team named" not in str(exc):
                raise
            detail = ctx.config.located("alerting.team", f"{words.provider} has no team {need.target!r}")
            out.append(Result(name, Status.INVALID, detail, words.no_team_fix, tuple(ids)))
            continue
        ok = f"{words.who} may list (and so manage) its integrations"
        out.append(Result(name, Status.OK, ok, "", tuple(ids)))
    return out


def check_opsgenie(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The OpsGenie API key may manage the team's integrations."""
    return _check_integrations(ctx.services.opsgenie.find_integrations, _OPSGENIE, ctx, needs)


def check_jsm(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The Atlassian account may manage the team's JSM Operations integrations (the site resolves
    to a cloudId, the team exists, listing answers 200)."""
    return _check_integrations(ctx.services.jsm.find_integrations, _JSM, ctx, needs)


def check_cluster(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """Reachable at the context, and may do what the playbooks do: one SelfSubjectAccessReview each."""
    context = ctx.config.cluster.context or "the current context"
    fix = "check cluster.kubeconfig and cluster.context, and that the cluster is up"
    return _check_kube(ctx.services.kube, f"cluster at {context}", "cluster", fix, needs)


def check_hub(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The hub (hub mode), as ``check_cluster`` checks the customer cluster."""
    hub = ctx.config.hub
    context = (hub.context if hub is not None else None) or "the current context"
    fix = "check hub.kubeconfig and hub.context, and that the hub is up"
    return _check_kube(ctx.services.hub_kube, f"hub at {context}", "hub", fix, needs)


def _check_kube(kube: Any, label: str, what: str, fix: str, needs: dict[Need, list[str]]) -> list[Result]:
    reviews = sorted({(ns, perm) for need in needs for perm in need.permissions for ns in (need.target,)})
    steps = tuple(sorted({s for ids in needs.values() for s in ids}))
    try:
        first = _retrying(lambda: kube.can(*_review(*reviews[0])))
    except BootstrapError as exc:
        return [Result(label, Status.FAILED, str(exc), fix, steps)]
    with ThreadPoolExecutor(max_workers=REVIEWERS, thread_name_prefix="ssar") as pool:
        asked = pool.map(lambda r: _retrying(lambda: kube.can(*_review(*r))), reviews[1:])
        answers = dict(zip(reviews[1:], asked, strict=True))
    answers[reviews[0]] = first
    out = [Result(label, Status.OK, f"reachable ({kube.host})", "", steps)]
    for need, ids in needs.items():
        denied = [perm for perm in need.permissions if not answers[(need.target, perm)][0]]
        where = f"namespace {need.target}" if need.target else "cluster-wide"
        name = f"{what} RBAC {where}"
        if denied:
            grant = "grant these verbs to the kubeconfig's user (a Role or ClusterRole bound to it)"
            out.append(Result(name, Status.FAILED, "may not " + ", ".join(denied), grant, tuple(ids)))
        else:
            out.append(
                Result(
                    name, Status.OK, f"{len(need.permissions)} verb/resource pairs allowed", "", tuple(ids)
                )
            )
    return out


def _review(namespace: str, perm: str) -> tuple[str, str, str, str | None]:
    verb, _, resource = perm.partition(" ")
    plural, _, group = resource.partition(".")
    return verb, plural, group, namespace or None


def check_manifest(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
    """The Argo CD manifest can be fetched and matches its ``argocd.sha256`` pin (nothing is cached)."""
    from bootstrap.clients import manifests

    out = []
    for need, ids in needs.items():
        pin = need.permissions[0] if need.permissions else None
        name = "argocd manifest pin"
        try:
            got = manifests.fetch(
                need.target, pin, ctx.workdir / "cache", "argocd.install_url", "argocd.sha256", store=False
            )
        except PermanentError as exc:
            status = Status.INVALID if "argocd.sha256" in str(exc).split(":")[0] else Status.FAILED
            out.append(Result(name, status, str(exc), "fix argocd.install_url / argocd.sha256", tuple(ids)))
            continue
        detail = (
            f"sha256 {got.sha256} matches the pin" if pin else f"no pin (argocd.sha256); sha256 {got.sha256}"
        )
        out.append(Result(name, Status.OK, detail, "", tuple(ids)))
    return out


CHECKS: dict[str, Callable[[Context, dict[Need, list[str]]], list[Result]]] = {
    "vault": check_vault,
    "github": check_github,
    "kit": check_kit,
    "slack": check_slack,
    "opsgenie": check_opsgenie,
    "jsm": check_jsm,
    "cluster": check_cluster,
    "hub": check_hub,
    "manifest": check_manifest,
}
"""One small check function per service; each gets every need of its service, merged across steps."""


def print_table(reports: Iterable[Report]) -> None:
    """One table for all customers: check, result, what to do."""
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bootstrap import secrets

    table = Table(title="preflight")
    for col in ("customer", "check", "result", "detail / what to do"):
        table.add_column(col, overflow="fold")
    style = {Status.OK: "green", Status.FAILED: "red", Status.INVALID: "red", Status.SKIPPED: "yellow"}
    for report in reports:
        for r in report.results:
            text = r.detail + (f"\n→ {r.fix}" if r.fix and r.status is not Status.OK else "")
            table.add_row(
                escape(report.customer),
                escape(r.check),
                f"[{style[r.status]}]{r.status}[/]",
                escape(secrets.REDACTOR.redact(text)),
            )
    Console(file=sys.stderr, soft_wrap=False).print(table)
