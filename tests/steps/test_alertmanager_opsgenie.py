"""alertmanager-opsgenie against the OpsGenie, Slack and Kubernetes emulators and the real OpenBao.

Every Ansible run costs ~3 s, so each test applies the Secret at most once;
destroy is exercised in tests/e2e/test_alert_delivery.py, after delivery.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import yaml

from bootstrap.reporting import StepResult
from bootstrap.step import Action, Change
from sandbox import customer as sandbox_customer
from sandbox.httpemu import Fault
from steps.alertmanager_opsgenie import (
    MASK,
    AlertmanagerOpsgenie,
    ApplySecret,
    CreateHeartbeat,
    CreateIntegration,
    CreateNamespace,
    DeleteIntegration,
    EnableIntegration,
)
from steps.slack_channel import SlackChannel
from tests.fixtures.world import World
from tests.unit.recording import RecordingReporter

NAME = "alertmanager-kuvaq"
TEAM = sandbox_customer.TEAM
NAMESPACE = "monitoring"
SECRET = "alertmanager-gitops-bootstrap"
STEPS = (SlackChannel, AlertmanagerOpsgenie)


def run(world: World, dry_run: bool = False) -> tuple[StepResult, RecordingReporter]:
    summary, reporter, _ = world.run(steps=STEPS, dry_run=dry_run)
    assert summary.results[0].status in ("done", "up-to-date", "changed"), summary.results[0].message
    return summary.results[-1], reporter


def ours(world: World) -> list[Any]:
    team_id = world.opsgenie.teams[TEAM].id
    return [i for i in world.opsgenie.integrations.values() if i.name == NAME and i.team_id == team_id]


def vault_record(world: World) -> Any:
    return world.vault.client.read_version(f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie")


def deployed_config(world: World) -> dict[str, Any]:
    secret = world.kube.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret is not None
    data: dict[str, Any] = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    return data


def edit_by_hand(world: World) -> None:
    """Someone edits the Alertmanager config in the Secret (``route.group_wait: 1s``)."""
    edited = deployed_config(world)
    edited["route"]["group_wait"] = "1s"
    text = yaml.safe_dump(edited)
    world.session().services.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {"alertmanager.yaml": base64.b64encode(text.encode()).decode()},
        },
        field_manager="kubectl-edit",
    )


def test_integration_secret_and_zero_write_rerun(world: World, amtool_check: Callable[[str], None]) -> None:
    planned, plan_reporter = run(world, dry_run=True)
    assert planned.plan is not None
    assert [(c.action, " ".join(c.target.split()[:2])) for c in planned.plan.changes] == [
        (Action.CREATE, "opsgenie integration"),
        (Action.CREATE, "opsgenie heartbeat"),
        (Action.CREATE, "namespace monitoring"),
        (Action.CREATE, f"secret {NAMESPACE}/{SECRET}"),
    ]
    assert world.writes() == 0

    done, reporter = run(world)
    assert done.status == "done", done.message
    [integration] = ours(world)
    assert integration.enabled and integration.type == "API"
    assert integration.team_id == world.opsgenie.teams[TEAM].id
    stored = vault_record(world)
    assert stored.data == {"api_key": integration.api_key}
    assert stored.custom_metadata == {"integration_id": integration.id}
    assert done.outputs.pop("heartbeat_created_at") > 0
    assert done.outputs == {
        "provider": "opsgenie",
        "secret": f"{NAMESPACE}/{SECRET}",
        "vault_path": f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie",
        "integration_id": integration.id,
        "heartbeat": "kuvaq-alertmanager",
    }
    # The dead-man's switch: a heartbeat, and Watchdog routed to a webhook that pings it with the key.
    assert world.opsgenie.heartbeat_settings["kuvaq-alertmanager"]["interval"] == 10

    config = deployed_config(world)
    amtool_check(yaml.safe_dump(config))
    [opsgenie] = next(r for r in config["receivers"] if r["name"] == "opsgenie")["opsgenie_configs"]
    assert opsgenie["api_key"] == integration.api_key
    assert opsgenie["api_url"] == world.opsgenie.url.rstrip("/") + "/"
    assert opsgenie["priority"] == "P2" and opsgenie["send_resolved"] is True
    assert opsgenie["responders"] == [{"type": "team", "name": TEAM}]
    [slack] = next(r for r in config["receivers"] if r["name"] == "slack")["slack_configs"]
    assert slack["channel"] == "#alerts-kuvaq"
    assert slack["http_config"]["authorization"]["credentials"] == sandbox_customer.SLACK_TOKEN
    assert world.kube.get("v1", "Namespace", None, NAMESPACE) is not None
    [watchdog] = [r for r in config["route"]["routes"] if r.get("matchers") == ['alertname = "Watchdog"']]
    assert watchdog["receiver"] == "heartbeat"
    [ping] = next(r for r in config["receivers"] if r["name"] == "heartbeat")["webhook_configs"]
    assert ping["url"] == f"{world.opsgenie.url}/v2/heartbeats/kuvaq-alertmanager/ping"
    assert ping["http_config"]["authorization"] == {"type": "GenieKey", "credentials": integration.api_key}
    # verify() sent a test alert with the integration's key and closed it.
    [test_alert] = world.opsgenie.alerts
    assert test_alert.api_key == integration.api_key and test_alert.status == "closed"
    # closed with the integration's key too: OpsGenie blocks alert actions with API-management keys
    assert [c["api_key"] for c in test_alert.close_requests] == [integration.api_key]

    # Neither the integration key nor the Slack token leaves the process.
    secrets = (integration.api_key, sandbox_customer.SLACK_TOKEN, sandbox_customer.OPSGENIE_KEY)
    shown = json.dumps(planned.plan.to_json()) + repr(plan_reporter.events) + repr(reporter.events)
    shown += json.dumps(done.outputs) + (world.dir / ".bootstrap" / "state.json").read_text()
    assert not [s for s in secrets if s in shown]

    world.reset_logs()
    rerun, _ = run(world)
    assert rerun.status == "up-to-date"
    assert world.writes() == 0
    # A no-op server-side apply is not a write, so check that no playbook talked to the cluster at all.
    assert world.kube.log.count("PATCH") == 0

    # Drift: someone edits the Secret's config by hand; the plan shows it with credentials masked.
    edit_by_hand(world)
    drift, _ = run(world, dry_run=True)
    assert drift.plan is not None
    [change] = drift.plan.changes
    assert change.action == Action.UPDATE
    assert "-  group_wait: 1s" in change.diff and "+  group_wait: 30s" in change.diff
    assert MASK in change.diff
    assert not [s for s in secrets if s in json.dumps(drift.plan.to_json())]


def test_crash_after_create_replaces_integration_and_duplicates(world: World) -> None:
    """Integrations with our name but no key in Vault (a crash between create and store) are replaced."""
    orphan = world.opsgenie.add_integration(NAME, "API", TEAM)
    twin = world.opsgenie.add_integration(NAME, "API", TEAM, enabled=False)
    world.opsgenie.add_team("someone-else")
    unrelated = world.opsgenie.add_integration(NAME, "API", "someone-else")

    planned, _ = run(world, dry_run=True)
    assert planned.plan is not None
    replace = planned.plan.changes[0]
    assert replace.action == Action.REPLACE
    assert (
        orphan.id in replace.summary
        and twin.id in replace.summary
        and "Vault holds no key" in replace.summary
    )

    # And OpsGenie is rate-limiting while we do it.
    world.opsgenie.faults.add(Fault("ratelimit", path="/v2/integrations", times=3, retry_after=0))
    done, _ = run(world)
    assert done.status == "done", done.message
    [integration] = ours(world)
    assert integration.id not in (orphan.id, twin.id) and integration.enabled
    assert unrelated.id in world.opsgenie.integrations  # another team's integration is not ours
    stored = vault_record(world)
    assert stored.custom_metadata["integration_id"] == integration.id
    assert stored.data["api_key"] == integration.api_key
    [opsgenie] = next(r for r in deployed_config(world)["receivers"] if r["name"] == "opsgenie")[
        "opsgenie_configs"
    ]
    assert opsgenie["api_key"] == integration.api_key

    # Vault now records another integration (e.g. restored from a backup): replaced again, no apply of the
    # plan is needed to see it.
    world.vault.client.write(
        f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie",
        {"api_key": "stale-key-000"},
        cas=stored.version,
        metadata={"integration_id": "gone"},
    )
    again, _ = run(world, dry_run=True)
    assert again.plan is not None
    assert again.plan.changes[0].action == Action.REPLACE
    assert "another integration" in again.plan.changes[0].summary


def test_wrong_api_key_fails_naming_the_access_right(world: World) -> None:
    world.opsgenie.add_api_key(sandbox_customer.OPSGENIE_KEY, rights=("read",))
    summary, _, _ = world.run(steps=STEPS)
    failed = summary.results[-1]
    assert failed.status == "failed"
    assert failed.message is not None and "Configuration access" in failed.message
    assert ours(world) == []


def _writes(world: World, change: Change, created: str) -> dict[str, list[tuple[str, str]]]:
    """The calls a planned change is, per server (``created``: the id of the integration apply made).

    OpsGenie Integration API (docs.opsgenie.com/docs/integration-api): POST /v2/integrations,
    POST /v2/integrations/{id}/enable, DELETE /v2/integrations/{id}; Heartbeat API
    (docs.opsgenie.com/docs/heartbeat-api): POST /v2/heartbeats. KV v2 (developer.hashicorp.com/
    vault/api-docs/secret/kv/kv-v2): POST data, then POST metadata. Server-side apply is a PATCH
    of the object (kubernetes.io/docs/reference/using-api/server-side-apply/), and the emulator
    counts it as a write only when it changes the object.
    """
    integrations = "/v2/integrations"
    vault = f"/v1/secret/%s/{world.vault.prefix}/kuvaq/alertmanager/opsgenie"
    match change.payload:
        case CreateIntegration(delete=doomed):
            return {
                "opsgenie": [
                    *(("DELETE", f"{integrations}/{old}") for old in doomed),
                    ("POST", integrations),
                    ("POST", f"{integrations}/{created}/enable"),
                ],
                "vault": [("POST", vault % "data"), ("POST", vault % "metadata")],
            }
        case DeleteIntegration(id=found):
            return {"opsgenie": [("DELETE", f"{integrations}/{found}")]}
        case EnableIntegration(id=found):
            return {"opsgenie": [("POST", f"{integrations}/{found}/enable")]}
        case CreateHeartbeat():
            return {"opsgenie": [("POST", "/v2/heartbeats")]}
        case CreateNamespace():
            return {"kube": [("PATCH", f"/api/v1/namespaces/{NAMESPACE}")]}
        case ApplySecret():
            return {"kube": [("PATCH", f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}")]}
    raise AssertionError(f"unexpected operation {change.payload!r}")


def _apply_is_the_plan(world: World) -> list[type]:
    """Plan, apply, and check the OpsGenie, Vault and cluster writes are the plan's operations,
    in order, and no more (Slack and GitHub untouched); then the plan is empty."""
    step = AlertmanagerOpsgenie()
    plan = step.plan(world.context())
    world.reset_logs()
    outputs = step.apply(world.context(), plan)
    created = str(outputs.get("integration_id"))
    expected: dict[str, list[tuple[str, str]]] = {"opsgenie": [], "vault": [], "kube": []}
    for change in plan.changes:
        for server, calls in _writes(world, change, created).items():
            expected[server] += calls
    logs = {"opsgenie": world.opsgenie.log, "vault": world.vault_proxy.log, "kube": world.kube.log}  # type: ignore[union-attr]
    assert {k: [(w.method, w.path) for w in log.writes] for k, log in logs.items()} == expected
    assert world.slack.log.writes == [] and world.github.log.writes == []
    assert step.plan(world.context()).empty
    [integration] = ours(world)
    [opsgenie] = next(r for r in deployed_config(world)["receivers"] if r["name"] == "opsgenie")[
        "opsgenie_configs"
    ]
    assert opsgenie["api_key"] == integration.api_key == vault_record(world).data["api_key"]
    return [type(c.payload) for c in plan.changes]


def test_apply_performs_exactly_the_planned_operations(world: World) -> None:
    """Four starting states in a row (a playbook run costs seconds): fresh, a duplicate integration,
    the config edited by hand, the key missing in Vault (so the integration is replaced)."""
    fresh = _apply_is_the_plan(world)
    assert fresh == [CreateIntegration, CreateHeartbeat, CreateNamespace, ApplySecret]
    world.opsgenie.add_integration(NAME, "API", TEAM)
    assert _apply_is_the_plan(world) == [DeleteIntegration]
    edit_by_hand(world)
    assert _apply_is_the_plan(world) == [ApplySecret]
    world.vault.client.delete(f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie")
    assert _apply_is_the_plan(world) == [CreateIntegration, ApplySecret]
