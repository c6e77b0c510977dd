"""github-oauth: the GitHub sign-in for Argo CD (Dex) and Grafana.

Guarantees:

* the App's credentials are in Vault (``github-oauth`` {client_id,
  client_secret, pem?, webhook_secret?}) before anything uses them. GitHub has
  no API to find an App, so that Vault record *is* the proof the App exists:
  with it present, no App is created again;
* ``manifest`` mode creates a GitHub App through the manifest flow: a
  loopback listener serves a page that posts the manifest to GitHub, checks
  the ``state`` on the way back and converts the code (bounded wait; nobody
  came back → WaitingForHuman). ``manual`` mode prints exactly what GitHub App
  to create (two callback URLs: an OAuth App has only one) and waits (exit 3)
  until ``argocd.sso.client_id``/``client_secret`` resolve;
  the credentials are checked against GitHub before they are stored;
* the cluster gets Dex's GitHub connector (``argocd-cm``: url, dex.config),
  the client secret (``argocd-secret``: dex.github.clientSecret) and Grafana's
  Secret ``monitoring/grafana-github-oauth``, applied server-side as
  ``bootstrap-github-oauth`` with secret values only in Ansible's private vars;
* plan() only reads (Vault, the cluster), so a no-op run starts no playbook;
* hub mode: no Argo CD runs in the customer cluster, and the hub's Dex (one
  ``dex.config`` for every cluster) is the hub operator's, so only Grafana's Secret
  is written, to the customer cluster, where Grafana runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from bootstrap.clients import argocd
from bootstrap.clients.github_manifest import ManifestFlow, remote_hint, web_url
from bootstrap.errors import ConfigError, PermanentError, WaitingForHuman
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

MANAGER = argocd.field_manager("github-oauth")
GRAFANA_NS = "monitoring"
GRAFANA_SECRET = "grafana-github-oauth"


@dataclass(frozen=True)
class _Creds:
    """The client credentials plan found (customer.yaml or Vault); apply uses them as they were."""

    client_id: str
    client_secret: str = field(repr=False)
    app_slug: str | None
    store: bool
    """The credentials came from customer.yaml and differ from (or are missing in) Vault."""
    vault_version: int


@dataclass(frozen=True)
class CreateApp:
    """The manifest flow: a person creates the App in a browser; its credentials go to Vault."""


@dataclass(frozen=True)
class StoreCredentials:
    """Check customer.yaml's client credentials against GitHub, then store them in Vault (``cas``)."""

    client_id: str
    cas: int


DEX_CONFIG = argocd.CM
DEX_SECRET = argocd.SECRET


@dataclass(frozen=True)
class ApplyObjects:
    """Server-side apply of the objects named (``argocd-cm``, ``argocd-secret``, Grafana's Secret).

    ``namespaces``: those they go into that plan found missing, applied first (an existing
    one is not applied again). The secret values reach Ansible only as private vars.
    """

    names: tuple[str, ...]
    namespaces: tuple[str, ...] = ()


class GithubOauth(Step):
    id = StepId("github-oauth")
    title = "GitHub sign-in for Argo CD and Grafana"
    reads = (
        "customer.name",
        "customer.domain",
        "github.api_url",
        "github.org",
        "argocd.namespace",
        "argocd.sso",
        "vault.mount",
        "vault.prefix",
    )
    callback_timeout: ClassVar[float] = 600.0
    """Seconds the manifest flow waits for the browser to come back."""

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        dex = (Need.cluster(config.argocd.namespace, APPLY, "configmaps", "secrets"),) if _dex(config) else ()
        return (
            Need("vault", config.vault_path("github-oauth"), ("read", "write")),
            Need.cluster("", APPLY, "namespaces"),
            *dex,
            Need.cluster(GRAFANA_NS, APPLY, "secrets"),
        )

    def plan(self, ctx: Context) -> Plan:
        creds = _credentials(ctx)
        path = _vault_path(ctx)
        changes: list[Change] = []
        if creds is None:
            changes.append(
                Change(
                    Action.CREATE,
                    f"GitHub App {_app_name(ctx)} in {ctx.config.github.org}",
                    f"manifest flow: open the local URL shown in a browser; credentials to Vault {path}",
                    payload=CreateApp(),
                )
            )
            changes.append(
                Change(
                    Action.UPDATE,
                    f"Dex connector and Grafana OAuth secret in {ctx.config.argocd.namespace}, {GRAFANA_NS}",
                    "with the new App's client id and secret",
                    payload=ApplyObjects(tuple(_objects(ctx.config))),
                )
            )
            return Plan(tuple(_with_namespaces(ctx, changes)))
        if creds.store:
            changes.append(
                Change(
                    Action.UPDATE if creds.vault_version else Action.CREATE,
                    f"Vault {path}",
                    f"store client {creds.client_id} (checked against GitHub first)",
                    "client_id: " + creds.client_id + "\nclient_secret: " + argocd.MASK,
                    payload=StoreCredentials(creds.client_id, creds.vault_version),
                )
            )
        changes += _cluster_changes(ctx, creds)
        return Plan(tuple(_with_namespaces(ctx, changes)), outputs=_outputs(ctx, creds), observed=creds)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """The planned operations with the credentials plan found (or the App created here)."""
        ops = [c.payload for c in plan.changes]
        creating = any(isinstance(op, CreateApp) for op in ops)
        creds = self._create_app(ctx) if creating else plan.observed_as(_Creds)
        for store in (op for op in ops if isinstance(op, StoreCredentials)):
            _check_and_store(ctx, store, creds.client_secret)
        names = {n for op in ops if isinstance(op, ApplyObjects) for n in op.names}
        if names:
            ns = ctx.config.argocd.namespace
            secret_ref = {"dex.github.clientSecret": argocd.secret_placeholder("client_secret")}
            wanted = {
                DEX_CONFIG: argocd.config_map(argocd.CM, ns, _cm(ctx, creds)),
                DEX_SECRET: argocd.secret(argocd.SECRET, ns, secret_ref),
                GRAFANA_SECRET: argocd.secret(
                    GRAFANA_SECRET,
                    GRAFANA_NS,
                    {
                        "GF_AUTH_GITHUB_CLIENT_ID": argocd.b64(creds.client_id),
                        "GF_AUTH_GITHUB_CLIENT_SECRET": argocd.secret_placeholder("client_secret"),
                    },
                ),
            }
            # Namespaces first: kubernetes.core applies the list in order.
            missing = [n for op in ops if isinstance(op, ApplyObjects) for n in op.namespaces]
            manifests = [argocd.namespace(n) for n in missing]
            manifests += [wanted[name] for name in _objects(ctx.config) if name in names]
            what = ", ".join(f"{m['kind']} {m['metadata']['name']}" for m in manifests)
            ctx.intend(f"apply {what} as {MANAGER}")
            ctx.progress("applying the Dex connector and Grafana's OAuth secret (ansible)")
            ctx.services.ansible.apply(
                manifests,
                MANAGER,
                {"client_secret": creds.client_secret},
                ctx.services.kubeconfig,
                ctx.config.cluster.context,
            )
        return dict(plan.outputs) if not creating else _outputs(ctx, creds)

    def _create_app(self, ctx: Context) -> _Creds:
        org = ctx.config.github.org
        domain = ctx.config.customer.domain
        manifest = {
            "name": _app_name(ctx),
            "url": f"https://argocd.{domain}",
            "callback_urls": [
                f"https://argocd.{domain}/api/dex/callback",
                f"https://grafana.{domain}/login/github",
            ],
            "public": False,
            "default_permissions": {"members": "read", "emails": "read"},
            "request_oauth_on_install": True,
            # No hook_attributes: GitHub refuses the block without a webhook url, and an App
            # with no webhook is what sign-in needs (REFERENCE.md §11).
        }
        ctx.intend(f"create GitHub App {manifest['name']} in {org} through the manifest flow")
        with ManifestFlow(web_url(ctx.config.github.api_url), org, manifest) as flow:
            ctx.progress(
                f"open {flow.url} in a browser signed in to GitHub as an owner of {org} to create the App "
                f"{manifest['name']} (waiting up to {self.callback_timeout:g}s)"
            )
            hint = remote_hint(flow.url)
            if hint:
                ctx.progress(hint)
            try:
                code = flow.wait(
                    self.callback_timeout,
                    ctx.services.cancelled,
                    remaining=lambda left: ctx.progress(
                        f"waiting for the browser at {flow.url}: {left:.0f}s left"
                    ),
                )
            except TimeoutError:
                raise WaitingForHuman(
                    f"nobody completed the GitHub App creation at {flow.url} "
                    f"within {self.callback_timeout:g}s; "
                    "run again and open the URL it prints in a browser signed in to GitHub"
                ) from None
        app = ctx.services.github.convert_app_manifest(code)
        for value in (app.client_secret, app.pem, app.webhook_secret):
            if value:
                ctx.secrets.generated(value)
        data = {"client_id": app.client_id, "client_secret": app.client_secret, "pem": app.pem}
        if app.webhook_secret:
            data["webhook_secret"] = app.webhook_secret
        ctx.intend(f"store the credentials of GitHub App {app.slug} at Vault {_vault_path(ctx)}")
        ctx.services.vault.write(
            _vault_path(ctx),
            data,
            cas=0,
            metadata={"mode": "manifest", "app_id": str(app.id), "app_slug": app.slug},
        )
        ctx.progress(f"GitHub App {app.slug} created; install it on {org}: {app.html_url}/installations/new")
        return _Creds(app.client_id, app.client_secret, app.slug, False, 1)

    def verify(self, ctx: Context) -> None:
        creds = _credentials(ctx)
        if creds is None or creds.store:
            raise PermanentError(f"Vault {_vault_path(ctx)} does not hold the GitHub client credentials")
        pending = _cluster_changes(ctx, creds)
        if pending:
            raise PermanentError(f"{pending[0].target} does not hold the expected values; run again")

    def plan_destroy(self, ctx: Context) -> Plan:
        ns = ctx.config.argocd.namespace
        kube = ctx.services.kube
        changes = [
            Change(Action.DELETE, f"{ns}/{name}", f"remove keys {', '.join(sorted(keys))}")
            for name, keys in _owned(ctx).items()
            if keys
        ]
        if kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET) is not None:
            changes.append(Change(Action.DELETE, f"Secret {GRAFANA_NS}/{GRAFANA_SECRET}"))
        stored = ctx.services.vault.read_version(_vault_path(ctx))
        notes: tuple[str, ...] = ()
        if stored is not None:
            changes.append(Change(Action.DELETE, f"Vault {_vault_path(ctx)}", "the SSO app record"))
            app = stored.custom_metadata.get("app_slug") or f"with client id {stored.data.get('client_id')}"
            # GitHub has no API to delete an App: say which one is left to delete by hand.
            notes = (
                f"delete the GitHub App {app} in the settings of {ctx.config.github.org} by hand: "
                "GitHub offers no API for that",
            )
        return Plan(tuple(changes), notes=notes)

    def destroy(self, ctx: Context, plan: Plan) -> None:
        ns = ctx.config.argocd.namespace
        owned = _owned(ctx)
        # An object with no data applied as our manager drops every key we own, and only those.
        empty = [
            argocd.secret(name, ns, {}) if name == argocd.SECRET else argocd.config_map(name, ns, {})
            for name, keys in owned.items()
            if keys
        ]
        if empty:
            ctx.intend(f"remove the keys of {MANAGER} from {ns}")
            ctx.services.ansible.apply(
                empty, MANAGER, {}, ctx.services.kubeconfig, ctx.config.cluster.context
            )
        if ctx.services.kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET) is not None:
            ctx.intend(f"delete Secret {GRAFANA_NS}/{GRAFANA_SECRET}")
            ctx.services.ansible.delete(
                [{"apiVersion": "v1", "kind": "Secret", "namespace": GRAFANA_NS, "name": GRAFANA_SECRET}],
                ctx.services.kubeconfig,
                ctx.config.cluster.context,
            )
        # Last: while the cluster still uses the credentials, their only record stays.
        ctx.intend(f"delete the SSO app record Vault {_vault_path(ctx)}")
        ctx.services.vault.delete(_vault_path(ctx))


def _credentials(ctx: Context) -> _Creds | None:
    """The client credentials to use; None when a GitHub App must still be created (manifest mode).

    Raises WaitingForHuman in manual mode when neither customer.yaml nor Vault has them yet.
    """
    sso = ctx.config.argocd.sso
    stored = ctx.services.vault.read_version(_vault_path(ctx))
    record = stored.data if stored is not None else {}
    for key in ("client_secret", "pem", "webhook_secret"):
        if record.get(key):
            ctx.secrets.generated(record[key])
    version = stored.version if stored is not None else 0
    slug = stored.custom_metadata.get("app_slug") if stored is not None else None
    if sso.mode == "manual":
        given, reason = None, "argocd.sso.client_id and argocd.sso.client_secret are not set"
        if sso.client_id and sso.client_secret:
            # A reference that is given but broken is bad input (exit 4), not a person's task (exit 3).
            given = ctx.secrets.resolve(sso.client_secret, "argocd.sso.client_secret")
        if given is not None and sso.client_id is not None:
            same = record.get("client_id") == sso.client_id and record.get("client_secret") == given
            return _Creds(sso.client_id, given, slug, not same, version)
        if record.get("client_secret") and record.get("client_id") == (sso.client_id or record["client_id"]):
            return _Creds(record["client_id"], record["client_secret"], slug, False, version)
        raise WaitingForHuman(_instructions(ctx, reason))
    if record.get("client_id") and record.get("client_secret"):
        return _Creds(record["client_id"], record["client_secret"], slug, False, version)
    return None


def _check_and_store(ctx: Context, op: StoreCredentials, client_secret: str) -> None:
    if not ctx.services.github.check_oauth_client(op.client_id, client_secret):
        raise PermanentError(
            f"GitHub rejects client {op.client_id} with the secret from argocd.sso.client_secret "
            f"({ctx.config.argocd.sso.client_secret}); copy the client id and a current client secret "
            "from the app's settings page and run again"
        )
    ctx.intend(f"store the GitHub client credentials at Vault {_vault_path(ctx)}")
    ctx.services.vault.write(
        _vault_path(ctx),
        {"client_id": op.client_id, "client_secret": client_secret},
        cas=op.cas,
        metadata={"mode": "manual"},
    )


def _cluster_changes(ctx: Context, creds: _Creds) -> list[Change]:
    ns = ctx.config.argocd.namespace
    kube = ctx.services.kube
    changes: list[Change] = []
    dex = (
        (
            argocd.CM,
            "ConfigMap",
            argocd.config_data(kube.get("v1", "ConfigMap", ns, argocd.CM)),
            _cm(ctx, creds),
        ),
        (
            argocd.SECRET,
            "Secret",
            argocd.secret_data(kube.get("v1", "Secret", ns, argocd.SECRET)),
            {"dex.github.clientSecret": creds.client_secret},
        ),
    )
    for name, kind, current, desired in dex if _dex(ctx.config) else ():
        text = argocd.diff(current, desired, set(), masked=kind == "Secret")
        if text:
            changes.append(
                Change(
                    Action.UPDATE,
                    f"{kind} {ns}/{name}",
                    "Dex GitHub connector",
                    text,
                    payload=ApplyObjects((name,)),
                )
            )
    grafana = kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET)
    want = {"GF_AUTH_GITHUB_CLIENT_ID": creds.client_id, "GF_AUTH_GITHUB_CLIENT_SECRET": creds.client_secret}
    text = argocd.diff(argocd.secret_data(grafana), want, set(), masked=True)
    if text:
        action = Action.CREATE if grafana is None else Action.UPDATE
        changes.append(
            Change(
                action,
                f"Secret {GRAFANA_NS}/{GRAFANA_SECRET}",
                "Grafana's GitHub OAuth client",
                text,
                payload=ApplyObjects((GRAFANA_SECRET,)),
            )
        )
    return changes


def _with_namespaces(ctx: Context, changes: list[Change]) -> list[Change]:
    """``changes``, each object write also creating the namespaces it is the first to go into
    that do not exist yet (read only when something is to be written)."""
    homes = _objects(ctx.config)
    out: list[Change] = []
    seen: set[str] = set()
    for change in changes:
        if isinstance(change.payload, ApplyObjects):
            wanted = [homes[n] for n in change.payload.names if homes[n] not in seen]
            seen |= set(wanted)
            missing = tuple(
                ns
                for ns in dict.fromkeys(wanted)
                if ctx.services.kube.get("v1", "Namespace", None, ns) is None
            )
            change = dataclasses.replace(
                change, payload=dataclasses.replace(change.payload, namespaces=missing)
            )
        out.append(change)
    return out


def _objects(config: CustomerConfig) -> dict[str, str]:
    """The objects this step applies → their namespace, in apply order (Dex's in standalone mode only)."""
    dex = {DEX_CONFIG: config.argocd.namespace, DEX_SECRET: config.argocd.namespace} if _dex(config) else {}
    return {**dex, GRAFANA_SECRET: GRAFANA_NS}


def _cm(ctx: Context, creds: _Creds) -> dict[str, str]:
    sso = ctx.config.argocd.sso
    org: dict[str, Any] = {"name": ctx.config.github.org}
    if sso.teams:
        org["teams"] = list(sso.teams)
    connector = {
        "type": "github",
        "id": "github",
        "name": "GitHub",
        "config": {
            "clientID": creds.client_id,
            "clientSecret": "$dex.github.clientSecret",
            "orgs": [org],
            "teamNameField": "slug",
            "useLoginAsID": False,
        },
    }
    gh = ctx.config.github
    if not gh.is_github_com:
        # Dex's GitHub connector talks to github.com unless hostName names the Enterprise host.
        connector["config"]["hostName"] = gh.git_host  # type: ignore[index]
    return {
        "url": f"https://argocd.{ctx.config.customer.domain}",
        "dex.config": yaml.safe_dump({"connectors": [connector]}, sort_keys=False),
    }


def _instructions(ctx: Context, reason: str) -> str:
    """What a person creates by hand: a GitHub App, since one app serves both consumers.

    An OAuth App has exactly one callback URL (redirect_uri must sit under it), so it cannot
    serve Argo CD and Grafana on two hosts; a GitHub App takes up to 10 callback URLs
    (REFERENCE.md §11; docs: Authorizing OAuth apps → Redirect URLs).
    """
    org = ctx.config.github.org
    domain = ctx.config.customer.domain
    return (
        f"GitHub sign-in needs a GitHub App created by a person ({reason}). In GitHub, open "
        f"https://github.com/organizations/{org}/settings/apps/new and create:\n"
        f"  GitHub App name: {_app_name(ctx)}\n"
        f"  Homepage URL:    https://argocd.{domain}\n"
        f"  Callback URLs:   https://argocd.{domain}/api/dex/callback\n"
        f"                   https://grafana.{domain}/login/github  (add a second callback URL)\n"
        "  Webhook:         untick Active\n"
        "  Permissions:     Organization → Members: read; Account → Email addresses: read\n"
        "Then generate a client secret, install the App on the organization, set argocd.sso.client_id "
        "to its client id and make argocd.sso.client_secret resolve to the secret (env:, file: or vault:), "
        "and run the same command again. (An OAuth App will not do: it has a single callback URL, "
        "so it cannot serve both Argo CD and Grafana.)"
    )


def _dex(config: CustomerConfig) -> bool:
    """Whether this step writes Dex's connector: in standalone mode only (see the module docstring)."""
    return config.hub is None


def _owned(ctx: Context) -> dict[str, set[str]]:
    ns = ctx.config.argocd.namespace
    kube = ctx.services.kube
    if not _dex(ctx.config):
        return {}
    return {
        argocd.CM: argocd.owned_keys(kube.get("v1", "ConfigMap", ns, argocd.CM), MANAGER),
        argocd.SECRET: argocd.owned_keys(kube.get("v1", "Secret", ns, argocd.SECRET), MANAGER),
    }


APP_NAME_MAX = 34
"""GitHub App names are at most 34 characters (docs: Registering a GitHub App; REFERENCE.md §11)."""


def _app_name(ctx: Context) -> str:
    name = ctx.config.argocd.sso.app_name or f"argocd-{ctx.config.customer.name}"
    if len(name) > APP_NAME_MAX:
        # customer.name may be 32 characters, so the default can be too long for GitHub
        raise ConfigError(
            f"argocd.sso.app_name: the default GitHub App name {name!r} has {len(name)} characters and "
            f"GitHub allows {APP_NAME_MAX}; set argocd.sso.app_name to a shorter, unique name"
        )
    return name


def _vault_path(ctx: Context) -> str:
    return ctx.config.vault_path("github-oauth")


def _outputs(ctx: Context, creds: _Creds) -> Outputs:
    out: Outputs = {
        "mode": ctx.config.argocd.sso.mode,
        "client_id": creds.client_id,
        "vault_path": _vault_path(ctx),
    }
    if creds.app_slug:
        out["app_slug"] = creds.app_slug
    return out
