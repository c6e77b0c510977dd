"""alertmanager-opsgenie: an OpsGenie or JSM Ops integration, a heartbeat, and the Alertmanager config.

What it guarantees, for provider ``opsgenie`` and ``jsm`` alike (the provider
specific calls sit behind ``bootstrap.clients.alerting.AlertingProvider``):

- one integration per customer, found by name ``alertmanager-<customer>``
  + type ``API`` + owner team ``alerting.team`` (names are not unique).
  ``API`` rather than ``Prometheus``: Alertmanager's opsgenie notifier speaks the
  plain Alert API, which is what an API integration receives, and the type
  exists on both OpsGenie and JSM Ops;
- the integration's key (returned only when it is created) is in Vault at
  ``alertmanager/<provider>`` {api_key} with metadata {integration_id} the moment
  it is returned. An integration whose key is missing from Vault, or whose id is
  not the one Vault records (a crash between create and store, a hand-made
  twin), cannot be used: it is *replaced* (every integration with our name is
  deleted, one is created), so no orphan keys are left behind;
- the Alertmanager config (provider receiver, heartbeat webhook, Slack receiver
  for the channel, route tree, inhibit rules) is rendered from customer.yaml and
  applied as bootstrap's own Secret (``alerting.alertmanager.secret_name``, never
  the chart's ``alertmanager-<crname>``, which Argo CD would keep putting back);
  argocd-dir's ``values/base.yaml`` points kube-prometheus-stack at it
  (``alertmanagerSpec.useExistingSecret`` + ``configSecret``). Routes as the
  chart's defaults intend: InfoInhibitor to null, critical to the provider (and
  the channel), everything else to Slack; the chart's inhibit rules are kept.
  Applied through playbooks/apply.yml (server-side apply, own field manager);
  the plan compares it with the Secret in the cluster and shows the diff with
  credentials masked;
- a dead-man's switch: the heartbeat ``<customer>-alertmanager`` (interval
  ``alerting.heartbeat_minutes``) exists, and Alertmanager's always-firing
  ``Watchdog`` is routed to a webhook that pings it; when alerting goes silent
  the provider pages. verify() fails once the provider reports it expired;
- switch-over (``opsgenie`` → ``jsm`` in customer.yaml): the JSM integration and
  heartbeat are created, the Secret is rolled to JSM, a test alert must be
  accepted by JSM, and only then the OpsGenie heartbeat, integration and Vault
  record are deleted (the Vault record last: while it exists, the next run
  knows the switch-over is unfinished). The Secret always points at an enabled
  integration, so alerts reach one provider at every moment, whatever a crash
  interrupts;
- verify() proves delivery: a test alert sent with the integration's key is
  accepted (OpsGenie: request status; JSM: 202 from the ingestion API) and closed.
"""

from __future__ import annotations

import base64
import difflib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.errors import ConfigError, PermanentError, RetryableError
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Retire, Stage, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.alerting import AlertingProvider, Heartbeat
    from bootstrap.clients.opsgenie import Integration
    from bootstrap.clients.vault import VersionedSecret
    from bootstrap.config import CustomerConfig

MASK = "********"
RETIRING = "retiring_integration_id"
"""Vault metadata: the integration a rotation replaces; it works until the Secret carries the new key."""
STAGED_FROM = "rotation_from_version"
"""Vault metadata: the data version a rotation started from (still current: the new key is not stored)."""
INTEGRATION_TYPE = "API"
FIELD_MANAGER = "bootstrap-alertmanager-opsgenie"
CONFIG_KEY = "alertmanager.yaml"
SECRET_VAR = "alertmanager_yaml_b64"
"""The secret var carrying the config. Base64, so Ansible's templating never sees Alertmanager's ``{{ }}``."""
VERIFY_POLLS = 20
VERIFY_POLL_SECONDS = 0.25

# Production timings; the end-to-end test shortens them in its copy of the config.
GROUP_WAIT = "30s"
GROUP_INTERVAL = "5m"
REPEAT_INTERVAL = "4h"
RESOLVE_TIMEOUT = "5m"


def integration_name(config: CustomerConfig) -> str:
    return f"alertmanager-{config.customer.name}"


def heartbeat_name(config: CustomerConfig) -> str:
    return f"{config.customer.name}-alertmanager"


def vault_path(config: CustomerConfig, provider: str | None = None) -> str:
    """Where the integration key of ``provider`` (default: the configured one) is kept."""
    return config.vault_path("alertmanager", provider or config.alerting.provider)


def alertmanager_api_url(config: CustomerConfig) -> str:
    """Where Alertmanager sends alerts: it appends ``v2/alerts`` to this, so it ends in '/'."""
    from bootstrap.clients import jsm, opsgenie

    al = config.alerting
    if al.provider == "jsm":
        return jsm.ingestion_url(al.jsm.api_url if al.jsm else None)
    return (al.api_url or opsgenie.api_url_for(al.provider, al.region)).rstrip("/") + "/"


WATCHDOG_TO_NULL: dict[str, Any] = {"receiver": "null", "matchers": ['alertname = "Watchdog"']}
"""The chart's default for Watchdog, kept only where there is no heartbeat to ping."""


def heartbeat_route() -> dict[str, Any]:
    """Watchdog always fires: send it every minute to the heartbeat receiver instead of paging on it."""
    return {
        "receiver": "heartbeat",
        "matchers": ['alertname = "Watchdog"'],
        "group_wait": "0s",
        "group_interval": "1m",
        "repeat_interval": "1m",
    }


def heartbeat_receiver(webhook: dict[str, Any]) -> dict[str, Any]:
    """The receiver that pings the heartbeat (``webhook`` from ``AlertingProvider.heartbeat_webhook``)."""
    return {"name": "heartbeat", "webhook_configs": [webhook]}


def render(
    config: CustomerConfig, api_key: str, slack_token: str, heartbeat: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole alertmanager.yaml as data (production timings)."""
    al, sl = config.alerting, config.slack
    responders = [{"type": r.type, "name": r.name} for r in al.responders] or [
        {"type": "team", "name": al.team}
    ]
    opsgenie_config: dict[str, Any] = {
        "api_key": api_key,
        "api_url": alertmanager_api_url(config),
        "message": (
            "{{ .CommonLabels.alertname }}"
            "{{ if .CommonLabels.namespace }} in {{ .CommonLabels.namespace }}{{ end }}"
        ),
        "priority": al.priority,
        "responders": responders,
        "send_resolved": True,
    }
    if al.tags:
        opsgenie_config["tags"] = ",".join(al.tags)  # a comma-separated template string, not a list
    slack_api = (sl.api_url or "https://slack.com/api/").rstrip("/")
    slack_config = {
        "api_url": f"{slack_api}/chat.postMessage",
        "http_config": {"authorization": {"type": "Bearer", "credentials": slack_token}},
        "channel": f"#{sl.channel}",
        "send_resolved": True,
    }
    rendered: dict[str, Any] = {
        "global": {"resolve_timeout": RESOLVE_TIMEOUT},
        "route": {
            # Whatever no rule below claims goes to the channel: visible, nobody is paged.
            "receiver": "slack",
            "group_by": ["alertname", "namespace"],
            "group_wait": GROUP_WAIT,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT_INTERVAL,
            "routes": [
                # kube-prometheus-stack's defaults send both to its null receiver: InfoInhibitor only
                # exists to inhibit info alerts, Watchdog fires all the time to prove the pipeline works.
                {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
                dict(WATCHDOG_TO_NULL),
                # Only critical alerts page; they are shown in the channel too.
                {"receiver": "opsgenie", "matchers": ['severity = "critical"'], "continue": True},
                {"receiver": "slack"},
            ],
        },
        "inhibit_rules": INHIBIT_RULES,
        "receivers": [
            {"name": "null"},
            {"name": "opsgenie", "opsgenie_configs": [opsgenie_config]},
            {"name": "slack", "slack_configs": [slack_config]},
        ],
    }
    if heartbeat is not None:
        # The dead-man's switch: Watchdog pings the heartbeat instead of going to the null receiver.
        routes = rendered["route"]["routes"]
        routes[routes.index(WATCHDOG_TO_NULL)] = heartbeat_route()
        rendered["receivers"].append(heartbeat_receiver(heartbeat))
    return rendered


INHIBIT_RULES: list[dict[str, Any]] = [
    # kube-prometheus-stack's default inhibit rules (vendor/kube-prometheus-stack/values.yaml,
    # alertmanager.config.inhibit_rules): a critical silences the same alert's warning/info, a
    # warning its info, InfoInhibitor the info alerts of its namespace; InfoInhibitor itself is
    # inhibited by any alert.
    {
        "source_matchers": ['severity = "critical"'],
        "target_matchers": ['severity =~ "warning|info"'],
        "equal": ["namespace", "alertname"],
    },
    {
        "source_matchers": ['severity = "warning"'],
        "target_matchers": ['severity = "info"'],
        "equal": ["namespace", "alertname"],
    },
    {
        "source_matchers": ['alertname = "InfoInhibitor"'],
        "target_matchers": ['severity = "info"'],
        "equal": ["namespace"],
    },
    {"target_matchers": ['alertname = "InfoInhibitor"']},
]


_SECRET_FIELDS = frozenset(
    {"api_key", "credentials", "opsgenie_api_key", "slack_api_url", "password", "bearer_token"}
)


def masked(cfg: Any) -> Any:
    """A copy of an Alertmanager config with every credential it can carry replaced by MASK."""
    if isinstance(cfg, dict):
        return {k: MASK if _is_secret(k, v) else masked(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [masked(v) for v in cfg]
    return cfg


def _is_secret(key: str, value: Any) -> bool:
    # A Slack incoming-webhook URL (hooks.slack.com/services/…) is itself a credential.
    return bool(value) and (key in _SECRET_FIELDS or (key == "api_url" and "hooks.slack.com" in str(value)))


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


@dataclass(frozen=True)
class _Observed:
    integrations: list[Integration]
    stored: VersionedSecret | None
    keep: Integration | None
    """The integration whose key Vault holds."""
    heartbeat: Heartbeat | None


def provider_for(ctx: Context, name: str) -> AlertingProvider:
    """The adapter of ``name`` (``opsgenie``/``jsm``); both implement ``AlertingProvider``."""
    return ctx.services.jsm if name == "jsm" else ctx.services.opsgenie


@dataclass(frozen=True)
class CreateIntegration:
    """Delete ``delete`` (their keys are lost), create ours, store its key (check-and-set ``cas``)."""

    delete: tuple[str, ...]
    cas: int


@dataclass(frozen=True)
class DeleteIntegration:
    id: str
    retiring: bool = False
    """OpsGenie's, after the switch-over to JSM (else a duplicate, or destroy's, of the current provider)."""


@dataclass(frozen=True)
class EnableIntegration:
    id: str


@dataclass(frozen=True)
class CreateHeartbeat:
    """The dead-man's switch Alertmanager's Watchdog pings."""


@dataclass(frozen=True)
class DeleteHeartbeat:
    retiring: bool = False


@dataclass(frozen=True)
class CreateNamespace:
    """Alertmanager's namespace, applied with the Secret (planned only when neither exists)."""


@dataclass(frozen=True)
class ApplySecret:
    """The Alertmanager Secret, applied server-side."""


@dataclass(frozen=True)
class DeleteSecret:
    pass


@dataclass(frozen=True)
class DeleteVault:
    path: str
    retiring: bool = False


def _retiring(change: Change) -> bool:
    """A removal of what the switch-over to JSM leaves of OpsGenie (done only after JSM took an alert)."""
    removal = change.payload
    return isinstance(removal, DeleteIntegration | DeleteHeartbeat | DeleteVault) and removal.retiring


class AlertmanagerOpsgenie(Step):
    id = StepId("alertmanager-opsgenie")
    title = "Alertmanager → OpsGenie / JSM and Slack"
    requires = (StepId("slack-channel"),)
    reads = ("customer.name", "alerting", "slack.channel", "slack.api_url", "slack.token")

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        am = config.alerting.alertmanager
        needs = [
            Need("vault", vault_path(config), ("read", "write")),
            Need.cluster("", APPLY, "namespaces"),
            Need.cluster(am.namespace, APPLY, "secrets"),
        ]
        if config.alerting.provider == "opsgenie":
            needs.append(Need("opsgenie", config.alerting.team, ("integrations",)))
        else:
            needs.append(Need("jsm", config.alerting.team, ("integrations",)))
        return tuple(needs)

    # -- plan ------------------------------------------------------------------
    def plan(self, ctx: Context) -> Plan:
        cfg = ctx.config
        al = cfg.alerting
        provider = provider_for(ctx, al.provider)
        path = vault_path(cfg)
        stored = ctx.services.vault.read_version(path)
        observed = self._observe(ctx, provider, stored)
        key = stored.data["api_key"] if observed.keep is not None and stored is not None else None
        if key is not None:
            ctx.secrets.generated(key)
        outputs: Outputs = {
            "provider": al.provider,
            "secret": f"{al.alertmanager.namespace}/{al.alertmanager.secret_name}",
            "vault_path": path,
            "heartbeat": heartbeat_name(cfg),
        }
        if observed.keep is not None:
            outputs["integration_id"] = observed.keep.id
        retiring = _recorded(stored)[1]
        if retiring is not None:
            outputs[RETIRING] = retiring  # a staged rotation to finish: plan_retire reads Vault again
        created_at = ctx.output_of(self.id, "heartbeat_created_at")
        if observed.heartbeat is not None and created_at is not None:
            outputs["heartbeat_created_at"] = created_at  # carried, so a later verify can tell "never pinged"
        changes = self._integration_changes(ctx, provider, observed)
        if observed.heartbeat is None:
            changes.append(
                Change(
                    Action.CREATE,
                    f"{provider.provider} heartbeat {heartbeat_name(cfg)} (team {al.team})",
                    f"create, expiring after {al.heartbeat_minutes} min without a ping from Alertmanager's "
                    "Watchdog (the dead-man's switch)",
                    payload=CreateHeartbeat(),
                )
            )
        changes += self._cluster_changes(ctx, provider, key)
        changes += self._switch_over_changes(ctx)
        return Plan(tuple(changes), outputs=outputs)

    def _observe(self, ctx: Context, provider: AlertingProvider, stored: VersionedSecret | None) -> _Observed:
        cfg = ctx.config
        found = provider.find_integrations(integration_name(cfg), INTEGRATION_TYPE, cfg.alerting.team)
        recorded, retiring = _recorded(stored)
        keep = next((i for i in found if i.id == recorded), None)
        heartbeat = provider.find_heartbeat(heartbeat_name(cfg), cfg.alerting.team)
        # A rotation's old integration keeps working until retire(): it is no duplicate.
        return _Observed([i for i in found if i.id != retiring], stored, keep, heartbeat)

    def _integration_changes(self, ctx: Context, provider: AlertingProvider, obs: _Observed) -> list[Change]:
        cfg = ctx.config
        name, team = integration_name(cfg), cfg.alerting.team
        target = f"{provider.provider} integration {name} (team {team})"
        cas = obs.stored.version if obs.stored else 0
        if obs.keep is None:
            doomed = [i.id for i in obs.integrations]
            if not doomed:
                summary = f"create the {INTEGRATION_TYPE} integration, enable it, store its key in Vault"
                return [
                    Change(Action.CREATE, target, summary, payload=CreateIntegration((), cas))
                ]
            why = (
                "Vault holds no key for it"
                if obs.stored is None or "api_key" not in obs.stored.data
                else "Vault records the key of another integration"
            )
            summary = (
                f"replace {', '.join(doomed)} ({why}, e.g. after a crash right after it was created): "
                "delete, create a new one, enable it, store its key in Vault"
            )
            return [
                Change(Action.REPLACE, target, summary, payload=CreateIntegration(tuple(doomed), cas))
            ]
        changes = [
            Change(
                Action.DELETE,
                target,
                f"delete duplicate {i.id} (same name, team and type)",
                payload=DeleteIntegration(i.id),
            )
            for i in obs.integrations
            if i.id != obs.keep.id
        ]
        if not obs.keep.enabled:
            changes.append(
                Change(
                    Action.UPDATE, target, f"enable {obs.keep.id}", payload=EnableIntegration(obs.keep.id)
                )
            )
        return changes

    def _switch_over_changes(self, ctx: Context) -> list[Change]:
        """What is left of OpsGenie after ``alerting.provider`` became ``jsm`` (read-only).

        The OpsGenie Vault record is deleted last, so while it exists a switch-over
        is unfinished, whatever the checkpoint says.
        """
        cfg = ctx.config
        al = cfg.alerting
        if al.provider != "jsm":
            return []
        path = vault_path(cfg, "opsgenie")
        stored = ctx.services.vault.read_version(path)
        if al.api_key is None:
            if stored is not None:
                raise ConfigError(
                    "alerting.api_key: the switch-over from OpsGenie is not finished (Vault still records "
                    f"the OpsGenie integration at {path}); keep the OpsGenie API key in alerting.api_key "
                    "until a run has removed it, or delete the integration and heartbeat "
                    f"{heartbeat_name(cfg)} in OpsGenie by hand and then the Vault path"
                )
            return []
        why = "switch-over to JSM: once JSM has accepted a test alert"
        changes = self._removals(ctx, ctx.services.opsgenie, f"{why}, ", retiring=True)
        if stored is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"vault {cfg.vault.mount}/{path}",
                    f"{why}, delete the OpsGenie key (last: it marks the switch-over as unfinished)",
                    payload=DeleteVault(path, retiring=True),
                )
            )
        return changes

    def _removals(self, ctx: Context, provider: AlertingProvider, why: str, retiring: bool) -> list[Change]:
        """Deleting ``provider``'s heartbeat and integrations (``retiring``: OpsGenie after a switch-over)."""
        cfg = ctx.config
        team, name = cfg.alerting.team, heartbeat_name(cfg)
        changes = []
        if provider.find_heartbeat(name, team) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"{provider.provider} heartbeat {name}",
                    f"{why}delete the heartbeat",
                    payload=DeleteHeartbeat(retiring),
                )
            )
        for i in provider.find_integrations(integration_name(cfg), INTEGRATION_TYPE, team):
            changes.append(
                Change(
                    Action.DELETE,
                    f"{provider.provider} integration {i.name} (team {team})",
                    f"{why}delete {i.id}",
                    payload=DeleteIntegration(i.id, retiring),
                )
            )
        return changes

    def _cluster_changes(self, ctx: Context, provider: AlertingProvider, key: str | None) -> list[Change]:
        """Namespace and Secret; ``key`` None means a new integration key will be created."""
        am = ctx.config.alerting.alertmanager
        kube = ctx.services.kube
        changes: list[Change] = []
        current_data = kube.secret_data(am.namespace, am.secret_name)
        # The Secret proves its namespace exists: no extra read on a re-run.
        if current_data is None and kube.get("v1", "Namespace", None, am.namespace) is None:
            changes.append(
                Change(
                    Action.CREATE,
                    f"namespace {am.namespace}",
                    "create the namespace",
                    payload=CreateNamespace(),
                )
            )
        current_text = (current_data or {}).get(CONFIG_KEY)
        current = _parse(current_text)
        desired = self._render(ctx, provider, key or MASK)
        if current == desired:
            return changes
        before = dump(masked(current)).splitlines() if current_text is not None else []
        after = dump(masked(desired)).splitlines()
        diff = "\n".join(difflib.unified_diff(before, after, "current", "rendered", lineterm=""))
        hidden = []
        if key is None:
            hidden.append(f"the {provider.provider} key will be the new integration's")
        elif current is not None and masked(current) == masked(desired):
            hidden.append("only credentials differ (values hidden)")
        target = f"secret {am.namespace}/{am.secret_name}"
        action = Action.CREATE if current_data is None else Action.UPDATE
        summary = f"{action} {CONFIG_KEY}" + (f"; {'; '.join(hidden)}" if hidden else "")
        changes.append(
            Change(action, target, summary, diff=ctx.secrets.redactor.redact(diff), payload=ApplySecret())
        )
        return changes

    def _render(self, ctx: Context, provider: AlertingProvider, key: str) -> dict[str, Any]:
        cfg = ctx.config
        webhook = provider.heartbeat_webhook(heartbeat_name(cfg), cfg.alerting.team, key)
        return render(cfg, key, self._slack_token(ctx), webhook)

    # -- apply -----------------------------------------------------------------
    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        cfg = ctx.config
        al = cfg.alerting
        provider = provider_for(ctx, al.provider)
        outputs = dict(plan.outputs)
        key: str | None = None
        for change in plan.changes:
            match change.payload:
                case CreateIntegration(delete=doomed, cas=cas):
                    created_id, key = self._create(ctx, provider, list(doomed), cas)
                    outputs["integration_id"] = created_id
                case DeleteIntegration(id=found, retiring=False):
                    ctx.intend(f"delete duplicate {provider.provider} integration {found}")
                    provider.delete_integration(found)
                case EnableIntegration(id=found):
                    ctx.intend(f"enable {provider.provider} integration {found}")
                    provider.enable_integration(found)
                case CreateHeartbeat():
                    ctx.intend(f"create {provider.provider} heartbeat {heartbeat_name(cfg)}")
                    provider.create_heartbeat(heartbeat_name(cfg), al.team, al.heartbeat_minutes)
                    outputs["heartbeat_created_at"] = round(time.time())
        if any(isinstance(c.payload, ApplySecret) for c in plan.changes):
            namespace = any(isinstance(c.payload, CreateNamespace) for c in plan.changes)
            self._apply_secret(ctx, provider, key or self._key(ctx), namespace)
        retiring = [c for c in plan.changes if _retiring(c)]
        if retiring:
            # Only a provider that has accepted an alert through the deployed key may take over.
            self._prove_delivery(ctx, key or self._key(ctx))
            self._retire(ctx, retiring)
        return outputs

    def _create(
        self, ctx: Context, provider: AlertingProvider, doomed: list[str], cas: int
    ) -> tuple[str, str]:
        cfg = ctx.config
        name, team, path = integration_name(cfg), cfg.alerting.team, vault_path(cfg)
        for old in doomed:
            ctx.intend(f"delete {provider.provider} integration {old} ({name}), whose key is lost")
            provider.delete_integration(old)
        ctx.intend(f"create {provider.provider} {INTEGRATION_TYPE} integration {name} for team {team}")
        created = provider.create_integration(name, INTEGRATION_TYPE, team)
        key = ctx.secrets.generated(created.api_key)
        # Store the key before anything else can fail: it is never shown again.
        ctx.intend(f"store the key of {provider.provider} integration {created.id} in Vault at {path}")
        ctx.services.vault.write(path, {"api_key": key}, cas=cas, metadata={"integration_id": created.id})
        if not created.enabled:
            ctx.intend(f"enable {provider.provider} integration {created.id}")
            provider.enable_integration(created.id)
        return created.id, key

    def _prove_delivery(self, ctx: Context, key: str) -> None:
        """A test alert JSM accepts with the key the Secret carries, then closed."""
        cfg = ctx.config
        alias = f"gitops-bootstrap-switch-over-{cfg.customer.name}"
        ctx.intend(f"send a test alert to JSM ({alias}) before removing OpsGenie")
        ctx.services.jsm.send_test_alert(
            key, alias, f"gitops-bootstrap: {cfg.customer.name} now alerts through JSM (closed automatically)"
        )
        ctx.services.jsm.close_test_alert(key, alias)

    def _retire(self, ctx: Context, changes: list[Change]) -> None:
        cfg = ctx.config
        og = ctx.services.opsgenie
        for change in changes:
            ctx.intend(f"{change.summary}: {change.target}")
            match change.payload:
                case DeleteHeartbeat():
                    og.delete_heartbeat(heartbeat_name(cfg), cfg.alerting.team)
                case DeleteIntegration(id=found):
                    og.delete_integration(found)
                case DeleteVault(path=path):
                    ctx.services.vault.delete(path)

    def _apply_secret(self, ctx: Context, provider: AlertingProvider, key: str, namespace: bool) -> None:
        """The Secret, and its namespace only when the plan found it missing (no write beyond the plan)."""
        am = ctx.config.alerting.alertmanager
        text = dump(self._render(ctx, provider, key))
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": am.namespace}}
        manifests: list[dict[str, Any]] = [
            *([ns] if namespace else []),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": am.secret_name,
                    "namespace": am.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "gitops-bootstrap"},
                },
                "data": {CONFIG_KEY: "{{ " + SECRET_VAR + " }}"},
            },
        ]
        ctx.intend(f"apply Secret {am.namespace}/{am.secret_name} ({CONFIG_KEY})")
        ctx.services.ansible.apply(
            manifests,
            FIELD_MANAGER,
            {SECRET_VAR: base64.b64encode(text.encode()).decode()},
            ctx.services.kubeconfig,
            ctx.config.cluster.context,
        )

    # -- verify ----------------------------------------------------------------
    def verify(self, ctx: Context) -> None:
        cfg = ctx.config
        am = cfg.alerting.alertmanager
        data = ctx.services.kube.secret_data(am.namespace, am.secret_name) or {}
        if CONFIG_KEY not in data:
            raise PermanentError(
                f"Secret {am.namespace}/{am.secret_name} has no {CONFIG_KEY}; run `bootstrap run` again"
            )
        alias = f"gitops-bootstrap-verify-{cfg.customer.name}"
        message = f"gitops-bootstrap: test alert for {cfg.customer.name} (closed automatically)"
        if cfg.alerting.provider == "jsm":
            key = self._key(ctx)
            ctx.services.jsm.send_test_alert(key, alias, message)
            ctx.services.jsm.close_test_alert(key, alias)
        else:
            self._verify_opsgenie(ctx, alias, message)
        self._verify_heartbeat(ctx)

    def _verify_opsgenie(self, ctx: Context, alias: str, message: str) -> None:
        og = ctx.services.opsgenie
        key = self._key(ctx)
        request_id = og.send_test_alert(key, alias, message)
        for _ in range(VERIFY_POLLS):
            if og.alert_request_succeeded(request_id):
                og.close_alert(key, alias)  # the integration's key: API-management keys cannot close
                return
            time.sleep(VERIFY_POLL_SECONDS)
        raise RetryableError(
            f"OpsGenie has not confirmed the test alert (request {request_id}) of integration "
            f"{integration_name(ctx.config)}; check it is enabled, then run again"
        )

    def _verify_heartbeat(self, ctx: Context) -> None:
        """The dead-man's switch exists, is enabled, and the provider does not report it expired."""
        cfg = ctx.config
        al = cfg.alerting
        name = heartbeat_name(cfg)
        heartbeat = provider_for(ctx, al.provider).find_heartbeat(name, al.team)
        if heartbeat is None or not heartbeat.enabled:
            raise PermanentError(
                f"{al.provider} heartbeat {name} is missing or disabled: run `bootstrap run` again to "
                "create it (or enable it by hand)"
            )
        where = (
            "Check that the Watchdog rule fires (kube-prometheus-stack defaultRules), that Alertmanager "
            "loaded "
            f"Secret {al.alertmanager.namespace}/{al.alertmanager.secret_name} and can reach the ping URL"
        )
        if heartbeat.expired:
            raise RetryableError(
                f"{al.provider} heartbeat {name} has had no ping for over {heartbeat.interval_minutes} min: "
                f"Alertmanager is not delivering its Watchdog alert. {where}"
            )
        # A heartbeat that was never pinged may never count as expired (JSM's status before the first
        # ping is unverified), so the age recorded at creation decides: two intervals is plenty.
        created_at = ctx.output_of(self.id, "heartbeat_created_at")
        age = time.time() - float(created_at) if created_at is not None else 0.0
        if not heartbeat.pinged and age > 2 * 60 * heartbeat.interval_minutes:
            raise RetryableError(
                f"{al.provider} heartbeat {name} was created {round(age / 60)} min ago and has never been "
                f"pinged, so it may never page. {where}"
            )

    # -- destroy ---------------------------------------------------------------
    def plan_destroy(self, ctx: Context) -> Plan:
        cfg = ctx.config
        al = cfg.alerting
        am = al.alertmanager
        provider = provider_for(ctx, al.provider)
        changes: list[Change] = []
        if ctx.services.kube.get("v1", "Secret", am.namespace, am.secret_name) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"secret {am.namespace}/{am.secret_name}",
                    "delete the Secret",
                    payload=DeleteSecret(),
                )
            )
        changes += self._removals(ctx, provider, "", retiring=False)
        if ctx.services.vault.read_version(vault_path(cfg)) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"vault {cfg.vault.mount}/{vault_path(cfg)}",
                    "delete the stored key (all versions)",
                    payload=DeleteVault(vault_path(cfg), retiring=False),
                )
            )
        return Plan(tuple(changes + self._switch_over_changes(ctx)))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        cfg = ctx.config
        al = cfg.alerting
        am = al.alertmanager
        provider = provider_for(ctx, al.provider)
        retiring = [c for c in plan.changes if _retiring(c)]
        for change in plan.changes:
            if _retiring(change):
                continue
            ctx.intend(f"{change.summary}: {change.target}")
            op = change.payload
            if isinstance(op, DeleteSecret):
                ctx.services.ansible.delete(
                    [
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "namespace": am.namespace,
                            "name": am.secret_name,
                        }
                    ],
                    ctx.services.kubeconfig,
                    cfg.cluster.context,
                )
            elif isinstance(op, DeleteHeartbeat):
                provider.delete_heartbeat(heartbeat_name(cfg), al.team)
            elif isinstance(op, DeleteIntegration):
                provider.delete_integration(op.id)
            elif isinstance(op, DeleteVault):
                ctx.services.vault.delete(op.path)
        self._retire(ctx, retiring)

    # -- rotation (Rotatable: ``bootstrap rotate CUSTOMER alerting-key``) ------
    rotations = ("alerting-key",)

    def plan_rotate(self, ctx: Context, what: str) -> Plan:
        cfg = ctx.config
        path = vault_path(cfg)
        stored = ctx.services.vault.read_version(path)
        recorded, retiring = _recorded(stored)
        if retiring is not None:
            return Plan()  # staged by a rotate that did not finish: roll that key out, no new one
        if stored is None or recorded is None:
            raise PermanentError(f"Vault {path} records no integration to rotate; run `bootstrap run` first")
        provider = cfg.alerting.provider
        summary = (
            f"create a new integration {integration_name(cfg)} and store its key in Vault {path}; the "
            f"Alertmanager Secret is rolled to it and a test alert sent, then the old integration "
            f"{recorded} is deleted"
        )
        target = f"{provider} integration {integration_name(cfg)} (team {cfg.alerting.team})"
        return Plan((Change(Action.REPLACE, target, summary, payload=Stage(stored.version, recorded)),))

    def rotate(self, ctx: Context, plan: Plan) -> Outputs:
        """Create the new integration and stage its key; the old one stays until ``retire``.

        Metadata first, then the key: killed in between, the metadata names a data
        version that is still the current one, which reads as "not staged" (the new
        integration, whose key is lost, is then an ordinary duplicate).
        """
        cfg = ctx.config
        stage = plan.changes[0].payload_as(Stage)
        provider = provider_for(ctx, cfg.alerting.provider)
        path, name = vault_path(cfg), integration_name(cfg)
        ctx.intend(f"create a new {provider.provider} integration {name} (rotation of {stage.old})")
        created = provider.create_integration(name, INTEGRATION_TYPE, cfg.alerting.team)
        key = ctx.secrets.generated(created.api_key)
        meta = {"integration_id": created.id, RETIRING: stage.old, STAGED_FROM: str(stage.cas)}
        ctx.intend(f"record the rotation {stage.old} → {created.id} in the Vault metadata of {path}")
        ctx.services.vault.set_metadata(path, meta)
        ctx.intend(f"store the key of {provider.provider} integration {created.id} in Vault at {path}")
        ctx.services.vault.write(path, {"api_key": key}, cas=stage.cas)
        if not created.enabled:
            ctx.intend(f"enable {provider.provider} integration {created.id}")
            provider.enable_integration(created.id)
        return {"integration_id": created.id, RETIRING: stage.old, "vault_path": path}

    def plan_retire(self, ctx: Context) -> Plan:
        cfg = ctx.config
        if ctx.output_of(self.id, RETIRING) is None:
            # The engine retires only after this step succeeded in this run, so its outputs are
            # this run's: its plan saw no staged rotation in Vault (rotate() records one), and
            # nothing else in a run stages one. A no-op run then reads the Vault record once.
            return Plan()
        stored = ctx.services.vault.read_version(vault_path(cfg))
        recorded, retiring = _recorded(stored)
        if stored is None or retiring is None or recorded is None:
            return Plan()
        am = cfg.alerting.alertmanager
        deployed = _parse((ctx.services.kube.secret_data(am.namespace, am.secret_name) or {}).get(CONFIG_KEY))
        if stored.data.get("api_key") not in _keys(deployed):
            return Plan()  # the Secret does not carry the new key yet: the old integration stays
        provider = provider_for(ctx, cfg.alerting.provider)
        present = any(
            i.id == retiring
            for i in provider.find_integrations(integration_name(cfg), INTEGRATION_TYPE, cfg.alerting.team)
        )
        summary = (
            f"delete the old integration {retiring}" if present else f"forget retired integration {retiring}"
        )
        target = f"{provider.provider} integration {integration_name(cfg)}"
        return Plan((Change(Action.DELETE, target, summary, payload=Retire(retiring, present)),))

    def retire(self, ctx: Context, plan: Plan) -> None:
        cfg = ctx.config
        path = vault_path(cfg)
        old = plan.changes[0].payload_as(Retire)
        if old.present:
            ctx.intend(f"delete the retired integration {old.old}")
            provider_for(ctx, cfg.alerting.provider).delete_integration(old.old)
        stored = ctx.services.vault.read_version(path)
        meta = stored.custom_metadata if stored else {}
        ctx.intend(f"clear {RETIRING} {old.old} from the Vault metadata of {path}")
        ctx.services.vault.set_metadata(
            path, {k: v for k, v in meta.items() if k not in (RETIRING, STAGED_FROM)}
        )

    # -- helpers ---------------------------------------------------------------
    def _key(self, ctx: Context) -> str:
        """The integration key Alertmanager uses, from Vault (where apply stored it)."""
        stored = ctx.services.vault.read(vault_path(ctx.config))
        if not stored or "api_key" not in stored:
            raise PermanentError(
                f"Vault has no integration key at {vault_path(ctx.config)}; run `bootstrap run` again "
                "to create (or replace) the integration"
            )
        return ctx.secrets.generated(stored["api_key"])

    def _slack_token(self, ctx: Context) -> str:
        return ctx.secrets.resolve(ctx.config.slack.token, "slack.token")


def _recorded(stored: VersionedSecret | None) -> tuple[str | None, str | None]:
    """(the integration whose key Vault holds, the one a staged rotation retires) per Vault."""
    if stored is None or not stored.data.get("api_key"):
        return None, None
    meta = stored.custom_metadata
    if meta.get(RETIRING) and meta.get(STAGED_FROM) == str(stored.version):
        return meta[RETIRING], None  # killed before the new key was stored: the old key is still Vault's
    return meta.get("integration_id"), meta.get(RETIRING) or None


def _keys(config: dict[str, Any] | None) -> list[str]:
    """The integration keys an Alertmanager config sends alerts with."""
    receivers = (config or {}).get("receivers") or []
    return [str(c.get("api_key")) for r in receivers for c in r.get("opsgenie_configs") or []]


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"unparseable": True}  # differs from anything rendered, so the plan rewrites it
    return data if isinstance(data, dict) else {"unparseable": True}
