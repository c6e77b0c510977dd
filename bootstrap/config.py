"""customer.yaml: the models, the loader, and the JSON Schema.

Guarantees: a loaded ``CustomerConfig`` is fully validated and frozen; it never
holds a secret value (secret fields are ``SecretRef`` references resolved late
by ``bootstrap.secrets``); every error names the dotted field path and the line
in the file, and says what was expected. The loader refuses what a hostile or
broken file could use against us: anchors/aliases (YAML bombs), duplicate keys,
non-UTF-8 bytes and oversized files.
"""

from __future__ import annotations

import json
import re
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import core_schema

from bootstrap.errors import ConfigError

API_VERSION = "bootstrap.gitops.dev/v1"
MAX_FILE_BYTES = 256 * 1024

_REF = re.compile(r"^(?P<kind>env|file|vault):(?P<target>[^\x00-\x1f\x7f]+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAULT_TARGET = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+#[A-Za-z0-9_.-]+$")
Loc = tuple[str | int, ...]
"""A field's place in the file: ``("kit", "addons", 1)``."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a customer file, located so a person can go straight to it."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" + (f" (line {self.line})" if self.line else "")

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "line": self.line, "message": self.message}


class InvalidConfig(ConfigError):
    """customer.yaml fails validation; ``problems`` holds each problem with its field and line."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret (``env:NAME``, ``file:PATH``, ``vault:MOUNT/PATH#KEY``).

    Its own type, not ``str``, so a secret value can never be passed where a
    reference is expected; ``str()`` gives the reference, never the value.
    """

    kind: Literal["env", "file", "vault"]
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    @classmethod
    def parse(cls, raw: str) -> SecretRef:
        m = _REF.match(raw.strip())
        if not m:
            # Never echo the value (here or below): it may be the very secret that must not be in the file.
            raise ValueError(
                "a literal secret is not allowed here; give a reference: "
                "env:NAME, file:PATH or vault:MOUNT/PATH#KEY"
            )
        kind, target = m["kind"], m["target"]
        if kind == "env" and not _ENV_NAME.match(target):
            raise ValueError("env reference must name an environment variable, e.g. env:GITHUB_TOKEN")
        if kind == "vault" and not _VAULT_TARGET.match(target):
            raise ValueError("vault reference must look like vault:secret/path/to/item#key")
        return cls(kind, target)  # type: ignore[arg-type]

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|vault:[^#]+#.+)$",
            "description": "A secret reference: env:NAME, file:PATH or vault:MOUNT/PATH#KEY. Never a value.",
        }


DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")]
Hostname = Annotated[
    str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)
]
# Names end up in API URLs and git refs, so no '.' or '..' component (git forbids them in refs too).
RepoSlug = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$", max_length=140
    ),
]
GitRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*$",
        max_length=200,
    ),
]
RelPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/$.?#][^\s]*$", max_length=500)]
AddonName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ArgoAccount = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
SlackChannel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,80}$")]
SlackUserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,20}$")]
K8sName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")]
TeamSlug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Model):
    name: DnsLabel = Field(description="Short customer id; names remote resources (argocd-<name>, …).")
    domain: Hostname = Field(
        description="Base domain: Argo CD at argocd.<domain>, Grafana at grafana.<domain>."
    )
    display_name: str | None = Field(default=None, max_length=100)


class KitCredentials(Model):
    """How Argo CD reads the (private) kit repo: an HTTPS token, written as a ``repo-creds`` Secret.

    A ``repo-creds`` Secret is a credential template: Argo CD uses it for every repoURL that
    starts with its ``url`` (operator-manual/declarative-setup.md, "Repository Credentials").
    Ours has the kit repo's own URL, so it opens the kit and nothing else.
    """

    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = Field(
        default="x-access-token",
        description="HTTPS user name; GitHub ignores it for tokens, so the default fits any token.",
    )
    token: SecretRef = Field(
        description="Read-only token for the kit repo (fine-grained PAT: Contents: read on kit.repo)."
    )


class Kit(Model):
    repo: RepoSlug = Field(description="The kit core repo, owner/name.")
    version: GitRef = Field(description="Kit release branch, e.g. v1.4.")
    cloud: Literal["aws", "gcp"]
    addons: tuple[AddonName, ...] = Field(
        default=(), description="Addons to enable; checked against the kit."
    )
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Customer overrides merged into every kit section's values (values/<section>.yaml).",
    )
    credentials: KitCredentials | None = Field(
        default=None,
        description="Argo CD's credentials for the kit repo; without them verify fails (a private kit "
        "cannot be fetched).",
    )

    @model_validator(mode="after")
    def _unique_addons(self) -> Kit:
        dupes = sorted({a for a in self.addons if self.addons.count(a) > 1})
        if dupes:
            raise ValueError(f"addons listed twice: {', '.join(dupes)}")
        return self


class GitHub(Model):
    api_url: HttpUrl = "https://api.github.com"
    token: SecretRef = Field(
        description="Token with Contents: write and Administration: write on infra_repo."
    )
    org: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,39}$")]
    infra_repo: RepoSlug
    branch: GitRef = "main"
    path: RelPath = Field(default="argocd", description="Directory of the infra repo the tool manages.")
    ssh_known_hosts: tuple[Annotated[str, StringConstraints(pattern=r"^[^\s#][^\n]*$")], ...] = Field(
        default=(),
        description="GitHub Enterprise Server only: its SSH host keys as known_hosts lines "
        "(`ssh-keyscan HOST`), added to Argo CD's argocd-ssh-known-hosts-cm.",
    )

    @property
    def git_host(self) -> str:
        """The host Git is served from: api.github.com → github.com; GHES ``host/api/v3`` → host."""
        return (urllib.parse.urlsplit(self.api_url).hostname or "api.github.com").removeprefix("api.")

    @property
    def is_github_com(self) -> bool:
        return self.git_host == "github.com"

    def ssh_url(self, repo: str) -> str:
        """The SSH clone URL Argo CD reads ``repo`` from (with a deploy key). The one place it is built."""
        return f"git@{self.git_host}:{repo}.git"

    def https_url(self, repo: str) -> str:
        """The HTTPS clone URL of ``repo`` (with a token). The one place it is built."""
        parsed = urllib.parse.urlsplit(self.api_url)
        port = f":{parsed.port}" if parsed.port else ""
        return f"https://{self.git_host}{port}/{repo}.git"


class Cluster(Model):
    kubeconfig: str | None = Field(default=None, description="Path to a kubeconfig; default: KUBECONFIG.")
    context: str | None = Field(default=None, description="Context name; default: the current context.")


class HubGitOps(Model):
    """The hub's own GitOps repo: one ApplicationSet per kit section, per-cluster values beside them."""

    repo: RepoSlug = Field(description="owner/name of the hub's GitOps repo (written with github.token).")
    branch: GitRef = "main"
    path: RelPath = Field(default="hub", description="Directory of the hub repo the tool manages.")


class Hub(Model):
    """Hub mode: a management Argo CD manages this customer's cluster, none is installed in it.

    The customer cluster is registered in the hub as a labelled cluster Secret; the hub's
    ApplicationSets select addons and the kit revision by those labels (KIT.md, "Hub mode").
    """

    kubeconfig: str | None = Field(default=None, description="Kubeconfig of the hub; default: KUBECONFIG.")
    context: str | None = Field(default=None, description="Context of the hub; default: the current context.")
    namespace: K8sName = Field(default="argocd", description="Namespace of the hub's Argo CD.")
    gitops: HubGitOps
    cluster_name: DnsLabel | None = Field(
        default=None, description="The cluster's name in the hub; default: the customer name."
    )
    server: HttpUrl | None = Field(
        default=None,
        description="The customer cluster's API server URL as the hub reaches it; "
        "default: the server of cluster.context in its kubeconfig.",
    )


class ArgoUser(Model):
    name: ArgoAccount
    capabilities: tuple[Literal["apiKey", "login"], ...] = ("login",)
    role: Annotated[str, StringConstraints(pattern=r"^role:[a-z0-9_-]+$")] = "role:readonly"

    @model_validator(mode="after")
    def _not_admin(self) -> ArgoUser:
        if self.name == "admin":
            raise ValueError("'admin' is managed by the tool; use argocd.admin_enabled instead")
        return self


class SSO(Model):
    mode: Literal["manifest", "manual"] = "manifest"
    app_name: str | None = Field(default=None, max_length=34, description="Default: argocd-<customer>.")
    client_id: str | None = Field(default=None, description="manual mode: the app's client id.")
    client_secret: SecretRef | None = Field(default=None, description="manual mode: reference to the secret.")
    teams: tuple[TeamSlug, ...] = ()
    # A slug, not free text: it is written into Argo CD's RBAC policy CSV, where a newline or comma
    # would add policy lines.
    admin_team: TeamSlug | None = Field(default=None, description="GitHub team (slug) granted role:admin.")


class ArgoCD(Model):
    namespace: K8sName = "argocd"
    version: Annotated[str, StringConstraints(pattern=r"^v\d+\.\d+\.\d+$")] = "v3.3.0"
    install_url: str | None = Field(default=None, description="Manifest URL (https://, http:// or file://).")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    ha: bool = False
    wait_timeout: int = Field(default=600, ge=5, le=7200, description="Seconds to wait for workloads.")
    admin_enabled: bool = True
    users: tuple[ArgoUser, ...] = ()
    rbac_default: Annotated[str, StringConstraints(pattern=r"^(role:[a-z0-9_-]+)?$")] = "role:readonly"
    sso: SSO = SSO()

    @model_validator(mode="after")
    def _unique_users(self) -> ArgoCD:
        names = [u.name for u in self.users]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"users listed twice: {', '.join(dupes)}")
        return self


class Slack(Model):
    token: SecretRef = Field(
        description=(
            "Bot token (xoxb-…) with channels:read, groups:read, channels:manage, groups:write, "
            "channels:join, channels:history, groups:history, chat:write."
        )
    )
    user_token: SecretRef | None = Field(
        default=None,
        description=(
            "Optional user token (xoxp-…) with channels:write (groups:write for a private channel), "
            "used only to unarchive slack.channel: Slack does not let bot tokens unarchive. Without it "
            "an archived channel stops the run (exit 3) until a person unarchives it."
        ),
    )
    api_url: HttpUrl | None = None
    channel: SlackChannel
    private: bool = False
    topic: str | None = Field(default=None, max_length=250)
    purpose: str | None = Field(default=None, max_length=250)
    invite: tuple[SlackUserId, ...] = ()


class Responder(Model):
    type: Literal["team", "user", "escalation", "schedule"]
    name: str = Field(min_length=1, max_length=200)


CHART_SECRET = re.compile(r"^alertmanager-.+-alertmanager$")
"""The names kube-prometheus-stack gives its own config Secret (``alertmanager-<fullname>-alertmanager``)."""


class AlertmanagerTarget(Model):
    namespace: K8sName = Field(
        default="monitoring", description="Namespace of kube-prometheus-stack's Alertmanager."
    )
    secret_name: K8sName = Field(
        default="alertmanager-gitops-bootstrap",
        description="bootstrap's own config Secret; the rendered kit values point the chart at it "
        "(alertmanagerSpec.useExistingSecret + configSecret).",
    )

    @model_validator(mode="after")
    def _not_the_charts(self) -> AlertmanagerTarget:
        # The chart would render (and Argo CD keep putting back) a Secret of that name.
        if CHART_SECRET.match(self.secret_name):
            raise ValueError(
                f"secret_name {self.secret_name!r} is the name kube-prometheus-stack gives its own Secret; "
                "choose another (default alertmanager-gitops-bootstrap)"
            )
        return self


AtlassianSite = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9][a-z0-9-]{0,62}(\.[a-z0-9-]{1,63})*|https?://[^\s/]+)$", max_length=253
    ),
]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


class JsmAccess(Model):
    """How the tool reaches Jira Service Management Operations (provider ``jsm``)."""

    site: AtlassianSite = Field(
        description="The Atlassian site: 'kuvaq' for kuvaq.atlassian.net; its cloudId is looked up from it."
    )
    email: Email = Field(description="The Atlassian account the API token belongs to (a JSM admin).")
    api_token: SecretRef = Field(
        description="API token of that account (id.atlassian.com → Security → API tokens)."
    )
    api_url: HttpUrl | None = Field(
        default=None, description="Override https://api.atlassian.com (sandbox, proxies)."
    )


class Alerting(Model):
    provider: Literal["opsgenie", "jsm"] = "opsgenie"
    region: Literal["us", "eu"] = "us"
    api_url: HttpUrl | None = Field(
        default=None, description="Override the OpsGenie API host (sandbox, proxies)."
    )
    api_key: SecretRef | None = Field(
        default=None,
        description=(
            "OpsGenie API key with Configuration access. Required for provider opsgenie; with provider "
            "jsm only while a switch-over from OpsGenie still has to remove the OpsGenie integration."
        ),
    )
    jsm: JsmAccess | None = Field(default=None, description="Required for provider jsm.")
    team: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The team (by name) that owns the integration and the heartbeat."
    )
    heartbeat_minutes: int = Field(
        default=10,
        ge=2,
        le=1440,
        description="Minutes without a Watchdog ping before the heartbeat pages (the dead-man's switch).",
    )
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    responders: tuple[Responder, ...] = ()
    tags: tuple[Annotated[str, StringConstraints(min_length=1, max_length=50)], ...] = ()
    alertmanager: AlertmanagerTarget = AlertmanagerTarget()

    @model_validator(mode="after")
    def _credentials_for_provider(self) -> Alerting:
        if self.provider == "opsgenie" and self.api_key is None:
            raise ValueError(
                "provider opsgenie needs api_key (an OpsGenie API key with Configuration access)"
            )
        if self.provider == "jsm" and self.jsm is None:
            raise ValueError("provider jsm needs jsm: {site, email, api_token}")
        return self


class TokenAuth(Model):
    method: Literal["token"] = "token"
    token: SecretRef


class AppRoleAuth(Model):
    method: Literal["approle"]
    role_id: str = Field(min_length=1)
    secret_id: SecretRef


class Vault(Model):
    url: HttpUrl
    auth: Annotated[TokenAuth | AppRoleAuth, Field(discriminator="method")]
    mount: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")] = "secret"
    prefix: RelPath = "bootstrap"

    @model_validator(mode="after")
    def _no_vault_in_vault_auth(self) -> Vault:
        ref = self.auth.token if isinstance(self.auth, TokenAuth) else self.auth.secret_id
        if ref.kind == "vault":
            raise ValueError("the Vault credential cannot itself come from Vault; use env: or file:")
        return self


class CustomerConfig(Model):
    api_version: Literal["bootstrap.gitops.dev/v1"] = Field(alias="apiVersion")
    customer: Customer
    kit: Kit
    github: GitHub
    cluster: Cluster = Cluster()
    argocd: ArgoCD = ArgoCD()
    slack: Slack
    alerting: Alerting
    vault: Vault
    hub: Hub | None = Field(
        default=None,
        description="Hub mode: register the cluster in a management Argo CD instead of installing one.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)
    """Line of each field in the file it was read from (empty for a config built in code)."""

    @property
    def mode(self) -> Literal["standalone", "hub"]:
        """Hub mode when customer.yaml names a hub, else standalone (Argo CD in the customer cluster)."""
        return "standalone" if self.hub is None else "hub"

    @property
    def hub_cluster_name(self) -> str | None:
        """The cluster's name in the hub (hub mode), else None."""
        return None if self.hub is None else (self.hub.cluster_name or self.customer.name)

    def vault_path(self, *parts: str) -> str:
        """Where this customer's secrets live: ``<prefix>/<customer>/<parts>`` (in ``vault.mount``)."""
        return "/".join((self.vault.prefix, self.customer.name, *parts))

    def line(self, dotted: str) -> int | None:
        """The line of ``dotted`` (``kit.addons[1]``) in customer.yaml, or of its nearest parent."""
        return _nearest_line(parse_dotted(dotted), self._lines)

    def located(self, dotted: str, message: str) -> str:
        """An error about a field, as every error names one: ``kit.addons[1]: unknown … (line 14)``."""
        return str(Problem(dotted, message, self.line(dotted)))

    def references(self) -> list[tuple[str, SecretRef]]:
        """Every secret reference in the file with its dotted field path, in file order."""
        return _references(self, ())


# -- loading -----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (duplicate keys are refused by ``_lines``)."""


def _compose_node(loader: _Loader, parent: Any, index: Any) -> Any:
    event = loader.peek_event()  # type: ignore[no-untyped-call]
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
        raise yaml.MarkedYAMLError(
            "", None, "anchors and aliases are not allowed in customer.yaml", event.start_mark
        )
    return yaml.SafeLoader.compose_node(loader, parent, index)


_Loader.compose_node = _compose_node  # type: ignore[assignment,method-assign]


def _lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                # A list or mapping as a key: unhashable, and never meaningful in customer.yaml.
                raise ConfigError(
                    f"{_dotted(path)}: keys must be plain names (line {key.start_mark.line + 1})"
                )
            name = key.value
            if name in seen:
                raise ConfigError(
                    f"{_dotted((*path, name))}: key given twice (line {key.start_mark.line + 1})"
                )
            seen.add(name)
            out[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), out)
            out[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def parse_dotted(dotted: str) -> Loc:
    """``kit.addons[1]`` → ``("kit", "addons", 1)`` (the inverse of ``_dotted``)."""
    out: list[str | int] = []
    for part in dotted.split("."):
        name, *indexes = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i.rstrip("]")) for i in indexes if i.rstrip("]").isdigit())
    return tuple(out)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_text(text: str, source: str = "customer.yaml") -> CustomerConfig:
    """Validate YAML text; errors carry the dotted path and line."""
    data, lines = _parse_yaml(text, source)
    try:
        cfg = CustomerConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, lines)
        raise InvalidConfig(_render(problems, source), problems) from None
    cfg._lines = lines
    return cfg


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """The document as data and the line of every field; ConfigError for what is not a customer file."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            lines: dict[tuple[str | int, ...], int] = {}
            if node is not None:
                try:
                    _lines(node, (), lines)
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nesting too deep") from None
    except ValueError as exc:
        # The constructors raise plain ValueError for e.g. a 5000-digit integer or 2024-13-01.
        raise ConfigError(f"{source}: a value cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with apiVersion, customer, kit, … at the top level")
    if data.get("apiVersion") not in (None, API_VERSION):
        raise ConfigError(
            f"{source}: apiVersion {str(data.get('apiVersion'))[:60]!r} is not supported "
            f"(line {lines.get(('apiVersion',), 1)}); this bootstrap reads {API_VERSION}"
        )
    return data, lines


def _render(problems: list[Problem], source: str) -> str:
    count = len(problems)
    return "\n".join(
        [f"{source} is not valid ({count} problem{'s' if count > 1 else ''}):"] + [f"  {p}" for p in problems]
    )


def _problems(exc: ValidationError, lines: dict[Loc, int]) -> list[Problem]:
    """One problem per error: ``kit.addons[2]: <what is wrong> (line 14)``; no input values echoed."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = _file_loc(tuple(err["loc"]))
        line = _nearest_line(loc, lines)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `bootstrap schema` lists the fields)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "string_pattern_mismatch":
            msg = f"invalid value: {_pattern_hint(loc)}"
        out.append(Problem(_dotted(loc), msg, line))
    return out


def _file_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The error location as written in the file: without the tag a discriminated union adds."""
    if loc[:2] == ("vault", "auth") and len(loc) > 2 and loc[2] in ("token", "approle"):
        return (*loc[:2], *loc[3:])
    return loc


def _nearest_line(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


_HINTS = {
    "name": "lowercase letters, digits and '-', at most 32 characters, e.g. kuvaq",
    "domain": "a DNS name like kuvaq.example.com",
    "repo": "owner/name, e.g. acme-sre/kit-core",
    "infra_repo": "owner/name, e.g. kuvaq/infra",
    "version": "a branch or version such as v1.4 (argocd.version: v3.3.0)",
    "channel": "Slack channel names use lowercase letters, digits, '-' and '_' (at most 80)",
    "invite": "Slack user ids such as U024BE7LH",
    "path": "a relative path inside the repo, without '..'",
    "sha256": "64 lowercase hex digits",
    "site": "the Atlassian site name, e.g. kuvaq for kuvaq.atlassian.net",
    "email": "an email address, e.g. sre@kuvaq.example",
}


def _pattern_hint(loc: tuple[str | int, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and part in _HINTS:
            return _HINTS[part]
    return "does not have the expected form (see `bootstrap schema`)"


def load(path: Path) -> CustomerConfig:
    """Read and validate a customer file."""
    return parse_text(_read(path), str(path))


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes is too large for a customer file (limit {MAX_FILE_BYTES})"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a customer.yaml file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at line {line})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes; expected YAML text")
    return text


@dataclass
class Examined:
    """A customer file as ``bootstrap validate`` sees it: everything wrong with it, not just the first."""

    path: Path
    config: CustomerConfig | None
    problems: list[Problem]
    references: list[tuple[str, SecretRef, int | None]]
    """Secret references found (field, reference, line), even when the rest of the file is invalid."""


def examine(path: Path) -> Examined:
    """Read and validate ``path``, collecting every problem instead of stopping at the first."""
    try:
        data, lines = _parse_yaml(_read(path), str(path))
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{path}: ")
        line = re.search(r"\(line (\d+)", message)
        return Examined(path, None, [Problem("(file)", message, int(line[1]) if line else None)], [])
    try:
        cfg = CustomerConfig.model_validate(data)
    except ValidationError as exc:
        refs = [
            (_dotted(loc), SecretRef.parse(value), lines.get(loc))
            for loc in SECRET_FIELDS
            if isinstance(value := _at(data, loc), str) and _REF.match(value.strip())
            if _parses(value)
        ]
        return Examined(path, None, _problems(exc, lines), refs)
    cfg._lines = lines
    return Examined(path, cfg, [], [(f, r, cfg.line(f)) for f, r in cfg.references()])


def _parses(value: str) -> bool:
    try:
        SecretRef.parse(value)
    except ValueError:
        return False
    return True


def _at(data: Any, loc: Loc) -> Any:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _references(obj: Any, loc: Loc) -> list[tuple[str, SecretRef]]:
    if isinstance(obj, SecretRef):
        return [(_dotted(loc), obj)]
    if isinstance(obj, BaseModel):
        return [r for name in type(obj).model_fields for r in _references(getattr(obj, name), (*loc, name))]
    if isinstance(obj, tuple):
        return [r for i, item in enumerate(obj) for r in _references(item, (*loc, i))]
    return []  # free-form data (kit.values) holds no references


def _secret_fields(model: type[BaseModel], loc: Loc) -> list[Loc]:
    """Where a model (and the models inside it) declares a SecretRef field."""
    out: list[Loc] = []
    for name, info in model.model_fields.items():
        for kind in _leaf_types(info.annotation):
            if kind is SecretRef:
                out.append((*loc, name))
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                out += [f for f in _secret_fields(kind, (*loc, name)) if f not in out]
    return out


def _leaf_types(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _leaf_types(arg)]


SECRET_FIELDS: tuple[Loc, ...] = tuple(_secret_fields(CustomerConfig, ()))
"""Every field that holds a secret reference, found from the models (so a new one is never missed)."""


def json_schema() -> dict[str, Any]:
    """JSON Schema of customer.yaml, for editors (yaml-language-server) and CI linting."""
    schema = CustomerConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gitops-bootstrap customer file"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2)
