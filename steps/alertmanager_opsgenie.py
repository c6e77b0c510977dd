"""alertmanager-opsgenie: an OpsGenie (or JSM) integration and the Alertmanager config that uses it.

What it guarantees:

- one OpsGenie integration per customer, found by name ``alertmanager-<customer>``
  + type ``API`` + owner team ``alerting.team`` (OpsGenie names are not unique).
  ``API`` rather than ``Prometheus``: Alertmanager's opsgenie notifier speaks the
  plain Alert API, which is what an API integration receives, and the type
  exists on both OpsGenie and JSM Ops;
- the integration's key (returned only when it is created) is in Vault at
  ``alertmanager/opsgenie`` {api_key} with metadata {integration_id} the moment
  it is returned. An integration whose key is missing from Vault, or whose id is
  not the one Vault records (a crash between create and store, a hand-made
  twin), cannot be used: it is *replaced* (every integration with our name is
  deleted, one is created), so no orphan keys are left behind;
- provider ``jsm`` uses the key the user supplies (``alerting.api_key``) with the
  JSM ingestion URL; it manages no integration but stores the key in Vault too;
- the Alertmanager config (OpsGenie receiver, Slack receiver for the channel,
  route tree, inhibit rules) is rendered from customer.yaml and applied as
  bootstrap's own Secret (``alerting.alertmanager.secret_name``, never the chart's
  ``alertmanager-<crname>``, which Argo CD would keep putting back); argocd-dir's
  ``values/base.yaml`` points kube-prometheus-stack at it
  (``alertmanagerSpec.useExistingSecret`` + ``configSecret``). Routes as the chart's
  defaults intend: InfoInhibitor and Watchdog to null, critical to OpsGenie (and
  the channel), everything else to Slack; the chart's inhibit rules are kept.
  Applied through playbooks/apply.yml (server-side apply, own field manager);
  the plan compares it with the Secret in the cluster and shows the diff with
  the OpsGenie key and the Slack token masked;
- verify() proves delivery: a test alert sent with the integration's key is
  accepted by OpsGenie (request status) and then closed.
"""

from __future__ import annotations

import base64
import difflib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.errors import PermanentError, RetryableError
from bootstrap.step import APPLY, Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.opsgenie import Integration
    from bootstrap.clients.vault import VersionedSecret
    from bootstrap.config import CustomerConfig

MASK = "********"
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


def vault_path(config: CustomerConfig) -> str:
    return config.vault_path("alertmanager", "opsgenie")


def alertmanager_api_url(config: CustomerConfig) -> str:
    """Where Alertmanager sends alerts: it appends ``v2/alerts`` to this, so it ends in '/'."""
    from bootstrap.clients import opsgenie

    al = config.alerting
    return (al.api_url or opsgenie.api_url_for(al.provider, al.region)).rstrip("/") + "/"


def render(config: CustomerConfig, api_key: str, slack_token: str) -> dict[str, Any]:
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
    return {
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
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
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
    """The integration whose key Vault holds (opsgenie only)."""


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
        if config.alerting.provider == "opsgenie":  # a JSM key is the integration's own: nothing to manage
            needs.append(Need("opsgenie", config.alerting.team, ("integrations",)))
        return tuple(needs)

    # -- plan ------------------------------------------------------------------
    def plan(self, ctx: Context) -> Plan:
        cfg = ctx.config
        al = cfg.alerting
        path = vault_path(cfg)
        stored = ctx.services.vault.read_version(path)
        changes: list[Change] = []
        outputs: Outputs = {
            "provider": al.provider,
            "secret": f"{al.alertmanager.namespace}/{al.alertmanager.secret_name}",
            "vault_path": path,
        }
        key: str | None
        if al.provider == "jsm":
            key = ctx.secrets.resolve(al.api_key, "alerting.api_key")
            if stored is None or stored.data.get("api_key") != key:
                changes.append(
                    Change(
                        Action.CREATE if stored is None else Action.UPDATE,
                        f"vault {cfg.vault.mount}/{path}",
                        "store the JSM integration key given by alerting.api_key (value hidden)",
                        data={"op": "store-jsm-key", "cas": stored.version if stored else 0},
                    )
                )
        else:
            observed = self._observe(ctx, stored)
            key = stored.data["api_key"] if observed.keep is not None and stored is not None else None
            changes += self._integration_changes(ctx, observed)
            if observed.keep is not None:
                outputs["integration_id"] = observed.keep.id
        if key is not None:
            ctx.secrets.generated(key)
        changes += self._cluster_changes(ctx, key)
        return Plan(tuple(changes), outputs=outputs)

    def _observe(self, ctx: Context, stored: VersionedSecret | None) -> _Observed:
        al = ctx.config.alerting
        found = ctx.services.opsgenie.find_integrations(
            integration_name(ctx.config), INTEGRATION_TYPE, al.team
        )
        recorded = (
            stored.custom_metadata.get("integration_id") if stored and stored.data.get("api_key") else None
        )
        keep = next((i for i in found if i.id == recorded), None)
        return _Observed(found, stored, keep)

    def _integration_changes(self, ctx: Context, obs: _Observed) -> list[Change]:
        cfg = ctx.config
        name, team = integration_name(cfg), cfg.alerting.team
        target = f"opsgenie integration {name} (team {team})"
        cas = obs.stored.version if obs.stored else 0
        if obs.keep is None:
            doomed = [i.id for i in obs.integrations]
            if not doomed:
                summary = f"create the {INTEGRATION_TYPE} integration, enable it, store its key in Vault"
                return [
                    Change(Action.CREATE, target, summary, data={"op": "create", "delete": [], "cas": cas})
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
                Change(Action.REPLACE, target, summary, data={"op": "create", "delete": doomed, "cas": cas})
            ]
        changes = [
            Change(
                Action.DELETE,
                target,
                f"delete duplicate {i.id} (same name, team and type)",
                data={"op": "delete", "id": i.id},
            )
            for i in obs.integrations
            if i.id != obs.keep.id
        ]
        if not obs.keep.enabled:
            changes.append(
                Change(
                    Action.UPDATE, target, f"enable {obs.keep.id}", data={"op": "enable", "id": obs.keep.id}
                )
            )
        return changes

    def _cluster_changes(self, ctx: Context, key: str | None) -> list[Change]:
        """Namespace and Secret; ``key`` None means a new integration key will be created."""
        am = ctx.config.alerting.alertmanager
        kube = ctx.services.kube
        changes: list[Change] = []
        current_data = kube.secret_data(am.namespace, am.secret_name)
        # The Secret proves its namespace exists: no extra read on a re-run.
        if current_data is None and kube.get("v1", "Namespace", None, am.namespace) is None:
            changes.append(
                Change(
                    Action.CREATE, f"namespace {am.namespace}", "create the namespace", data={"op": "apply"}
                )
            )
        current_text = (current_data or {}).get(CONFIG_KEY)
        current = _parse(current_text)
        desired = render(ctx.config, key or MASK, self._slack_token(ctx))
        if current == desired:
            return changes
        before = dump(masked(current)).splitlines() if current_text is not None else []
        after = dump(masked(desired)).splitlines()
        diff = "\n".join(difflib.unified_diff(before, after, "current", "rendered", lineterm=""))
        hidden = []
        if key is None:
            hidden.append("the OpsGenie key will be the new integration's")
        elif current is not None and masked(current) == masked(desired):
            hidden.append("only credentials differ (values hidden)")
        target = f"secret {am.namespace}/{am.secret_name}"
        action = Action.CREATE if current_data is None else Action.UPDATE
        summary = f"{action} {CONFIG_KEY}" + (f"; {'; '.join(hidden)}" if hidden else "")
        changes.append(
            Change(action, target, summary, diff=ctx.secrets.redactor.redact(diff), data={"op": "apply"})
        )
        return changes

    # -- apply -----------------------------------------------------------------
    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        cfg = ctx.config
        al = cfg.alerting
        outputs = dict(plan.outputs)
        key: str | None = None
        for change in plan.changes:
            op = change.data["op"]
            if op == "create":
                created_id, key = self._create(ctx, list(change.data["delete"]), int(change.data["cas"]))
                outputs["integration_id"] = created_id
            elif op == "delete":
                ctx.intend(f"delete duplicate OpsGenie integration {change.data['id']}")
                ctx.services.opsgenie.delete_integration(str(change.data["id"]))
            elif op == "enable":
                ctx.intend(f"enable OpsGenie integration {change.data['id']}")
                ctx.services.opsgenie.enable_integration(str(change.data["id"]))
            elif op == "store-jsm-key":
                key = ctx.secrets.resolve(al.api_key, "alerting.api_key")
                ctx.intend(f"store the JSM integration key in Vault at {vault_path(cfg)}")
                ctx.services.vault.write(
                    vault_path(cfg),
                    {"api_key": key},
                    cas=int(change.data["cas"]),
                    metadata={"provider": "jsm"},
                )
        if any(c.data["op"] == "apply" for c in plan.changes):
            if key is None:
                key = (
                    ctx.secrets.resolve(al.api_key, "alerting.api_key")
                    if al.provider == "jsm"
                    else self._key(ctx)
                )
            self._apply_secret(ctx, key)
        return outputs

    def _create(self, ctx: Context, doomed: list[str], cas: int) -> tuple[str, str]:
        cfg = ctx.config
        og = ctx.services.opsgenie
        name, team, path = integration_name(cfg), cfg.alerting.team, vault_path(cfg)
        for old in doomed:
            ctx.intend(f"delete OpsGenie integration {old} ({name}), whose key is lost")
            og.delete_integration(old)
        ctx.intend(f"create OpsGenie {INTEGRATION_TYPE} integration {name} for team {team}")
        created = og.create_integration(name, INTEGRATION_TYPE, team)
        key = ctx.secrets.generated(created.api_key)
        # Store the key before anything else can fail: OpsGenie never shows it again.
        ctx.intend(f"store the key of OpsGenie integration {created.id} in Vault at {path}")
        ctx.services.vault.write(path, {"api_key": key}, cas=cas, metadata={"integration_id": created.id})
        if not created.enabled:
            ctx.intend(f"enable OpsGenie integration {created.id}")
            og.enable_integration(created.id)
        return created.id, key

    def _apply_secret(self, ctx: Context, key: str) -> None:
        am = ctx.config.alerting.alertmanager
        text = dump(render(ctx.config, key, self._slack_token(ctx)))
        manifests: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": am.namespace}},
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
        og = ctx.services.opsgenie
        alias = f"gitops-bootstrap-verify-{cfg.customer.name}"
        message = f"gitops-bootstrap: test alert for {cfg.customer.name} (closed automatically)"
        if cfg.alerting.provider == "jsm":
            og.ingest_alert(alias, message)
            og.ingest_close(alias)
            return
        key = self._key(ctx)
        request_id = og.send_test_alert(key, alias, message)
        for _ in range(VERIFY_POLLS):
            if og.alert_request_succeeded(request_id):
                og.close_alert(key, alias)  # the integration's key: API-management keys cannot close
                return
            time.sleep(VERIFY_POLL_SECONDS)
        raise RetryableError(
            f"OpsGenie has not confirmed the test alert (request {request_id}) of integration "
            f"{integration_name(cfg)}; check it is enabled, then run again"
        )

    # -- destroy ---------------------------------------------------------------
    def plan_destroy(self, ctx: Context) -> Plan:
        cfg = ctx.config
        am = cfg.alerting.alertmanager
        changes: list[Change] = []
        if ctx.services.kube.get("v1", "Secret", am.namespace, am.secret_name) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"secret {am.namespace}/{am.secret_name}",
                    "delete the Secret",
                    data={"op": "secret"},
                )
            )
        if cfg.alerting.provider == "opsgenie":
            for i in ctx.services.opsgenie.find_integrations(
                integration_name(cfg), INTEGRATION_TYPE, cfg.alerting.team
            ):
                changes.append(
                    Change(
                        Action.DELETE,
                        f"opsgenie integration {i.name}",
                        f"delete {i.id}",
                        data={"op": "integration", "id": i.id},
                    )
                )
        if ctx.services.vault.read_version(vault_path(cfg)) is not None:
            changes.append(
                Change(
                    Action.DELETE,
                    f"vault {cfg.vault.mount}/{vault_path(cfg)}",
                    "delete the stored key (all versions)",
                    data={"op": "vault"},
                )
            )
        return Plan(tuple(changes))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        cfg = ctx.config
        am = cfg.alerting.alertmanager
        for change in plan.changes:
            ctx.intend(f"{change.summary}: {change.target}")
            op = change.data["op"]
            if op == "secret":
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
            elif op == "integration":
                ctx.services.opsgenie.delete_integration(str(change.data["id"]))
            elif op == "vault":
                ctx.services.vault.delete(vault_path(cfg))

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


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"unparseable": True}  # differs from anything rendered, so the plan rewrites it
    return data if isinstance(data, dict) else {"unparseable": True}
