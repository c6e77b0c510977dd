"""alertmanager-opsgenie with provider jsm, and the switch-over from OpsGenie to JSM.

Against the JSM Ops, OpsGenie, Slack and Kubernetes emulators and the real
OpenBao. Every Ansible run costs ~3 s (more on a busy machine), so each test
applies the Secret as few times as it can.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from bootstrap import engine
from bootstrap.errors import RetryableError
from bootstrap.reporting import StepResult, Summary
from bootstrap.step import Action, Plan
from sandbox import customer as sandbox_customer
from steps.alertmanager_opsgenie import AlertmanagerOpsgenie, DeleteSecret
from tests.fixtures.world import World
from tests.steps.switch_over import (
    HEARTBEAT,
    NAME,
    NAMESPACE,
    SECRET,
    STEPS,
    TEAM,
    Killer,
    opsgenie_baseline,
)
from tests.unit.recording import RecordingReporter

JSM = {"alerting": {"provider": "jsm"}}


def rotate(world: World) -> Summary:
    sess = world.session()
    eng = engine.Engine(
        [s() for s in STEPS], sess.store, RecordingReporter(), sess.redactor, retry_delay_cap=0.2
    )
    with sess.store.lock():
        return eng.rotate(sess.context, "alerting-key")


def run(world: World, dry_run: bool = False) -> StepResult:
    summary, _, _ = world.run(steps=STEPS, dry_run=dry_run)
    assert summary.results[0].status in ("done", "up-to-date", "changed"), summary.results[0].message
    return summary.results[-1]


def jsm_ours(world: World) -> list[Any]:
    return [i for i in world.jsm.integrations.values() if i.name == NAME]


def og_ours(world: World) -> list[Any]:
    return [i for i in world.opsgenie.integrations.values() if i.name == NAME]


def vault(world: World, provider: str) -> Any:
    return world.vault.client.read_version(f"{world.vault.prefix}/kuvaq/alertmanager/{provider}")


def deployed(world: World) -> dict[str, Any]:
    secret = world.kube.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret is not None
    data: dict[str, Any] = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    return data


def receiver(config: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    [found] = next(r for r in config["receivers"] if r["name"] == name)[kind]
    return found


def test_jsm_create_adopt_replace_destroy(world: World) -> None:
    world.customer(**JSM)
    planned = run(world, dry_run=True)
    assert planned.plan is not None
    assert [(c.action, " ".join(c.target.split()[:2])) for c in planned.plan.changes] == [
        (Action.CREATE, "jsm integration"),
        (Action.CREATE, "jsm heartbeat"),
        (Action.CREATE, "namespace monitoring"),
        (Action.CREATE, f"secret {NAMESPACE}/{SECRET}"),
    ]
    assert world.writes() == 0

    done = run(world)
    assert done.status == "done", done.message
    [integration] = jsm_ours(world)
    assert integration.enabled and integration.team_id == world.jsm.add_team(TEAM)
    stored = vault(world, "jsm")
    assert stored.data == {"api_key": integration.api_key}
    assert stored.custom_metadata == {"integration_id": integration.id}
    heartbeat = world.jsm.heartbeat(HEARTBEAT)
    assert heartbeat is not None and heartbeat.enabled
    assert (heartbeat.interval, heartbeat.unit) == (10, "minutes")

    config = deployed(world)
    opsgenie = receiver(config, "opsgenie", "opsgenie_configs")
    assert opsgenie["api_key"] == integration.api_key
    assert opsgenie["api_url"] == f"{world.jsm.url}/jsm/ops/integration/"
    ping = receiver(config, "heartbeat", "webhook_configs")
    assert ping["url"].startswith(f"{world.jsm.url}/jsm/ops/api/{world.jsm.cloud_id}/v1/teams/")
    assert ping["url"].endswith(f"/heartbeats/ping?name={HEARTBEAT}")
    assert ping["http_config"]["basic_auth"] == {
        "username": sandbox_customer.JSM_EMAIL,
        "password": sandbox_customer.JSM_TOKEN,
    }
    # verify() sent a test alert with the integration's key through the ingestion API and closed it.
    [probe] = world.jsm.alerts
    assert (probe.api_key, probe.status) == (integration.api_key, "closed")
    # Neither the key nor the API token is in the plan, the checkpoint or the outputs.
    shown = json.dumps(planned.plan.to_json()) + json.dumps(done.outputs)
    shown += (world.dir / ".bootstrap" / "state.json").read_text()
    assert integration.api_key not in shown and sandbox_customer.JSM_TOKEN not in shown

    # Adopt: nothing to do, nothing written.
    world.reset_logs()
    assert run(world).status == "up-to-date" and world.writes() == 0

    # Vault lost the key: the integration is replaced, the Secret follows.
    world.vault.client.delete(f"{world.vault.prefix}/kuvaq/alertmanager/jsm")
    replan = run(world, dry_run=True)
    assert replan.plan is not None and replan.plan.changes[0].action == Action.REPLACE
    assert integration.id in replan.plan.changes[0].summary
    assert run(world).status == "done"
    [fresh] = jsm_ours(world)
    assert fresh.id != integration.id
    assert receiver(deployed(world), "opsgenie", "opsgenie_configs")["api_key"] == fresh.api_key

    # rotate alerting-key, killed right after the rotation was recorded in Vault but before the new key
    # was stored: the new integration (its key lost) is a plain duplicate; the old one keeps working.
    killer = Killer(at=r"proxy .* /v1/secret/metadata/")
    killer.arm(world)
    assert rotate(world).results[0].status == "failed"
    killer.disarm(world)
    assert len(jsm_ours(world)) == 2
    healed = run(world, dry_run=True)
    assert healed.plan is not None
    assert [(c.action, type(c.payload).__name__) for c in healed.plan.changes] == [
        (Action.DELETE, "DeleteIntegration")
    ]
    assert run(world).status == "done"
    assert [i.id for i in jsm_ours(world)] == [fresh.id]

    # A whole rotation: the new key is in the Secret and has carried a test alert before the old goes.
    rotated = rotate(world)
    assert [r.status for r in rotated.results] == ["staged", "done"], [r.message for r in rotated.results]
    [newest] = jsm_ours(world)
    assert newest.id != fresh.id
    assert receiver(deployed(world), "opsgenie", "opsgenie_configs")["api_key"] == newest.api_key
    assert vault(world, "jsm").custom_metadata == {"integration_id": newest.id}
    assert world.jsm.alerts[-1].api_key == newest.api_key
    world.reset_logs()
    assert run(world).status == "up-to-date" and world.writes() == 0

    # The dead-man's switch: once JSM reports the heartbeat unpinged for longer than its interval,
    # verify fails and says where to look.
    ctx = world.session().context
    step = AlertmanagerOpsgenie()
    heartbeat = world.jsm.heartbeat(HEARTBEAT)
    assert heartbeat is not None
    heartbeat.last_ping = heartbeat.created
    world.jsm.clock = lambda: heartbeat.created + 11 * 60
    with pytest.raises(RetryableError, match=r"no ping for over 10 min.*Watchdog"):
        step.verify(ctx)

    # Never pinged at all (e.g. the ping endpoint refuses Alertmanager's POST: unverified) is caught too,
    # once two intervals have passed since the heartbeat was created.
    heartbeat.last_ping = None
    assert heartbeat.status(world.jsm.clock()) == "Unknown"
    recorded = dict(world.state()["steps"]["alertmanager-opsgenie"]["outputs"])
    assert recorded["heartbeat_created_at"]  # recorded at creation, carried through the later runs
    ctx.outputs = {
        "alertmanager-opsgenie": {**recorded, "heartbeat_created_at": recorded["heartbeat_created_at"] - 1260}
    }
    with pytest.raises(RetryableError, match=r"never been pinged, so it may never page"):
        step.verify(ctx)

    # Destroy removes the integration, the heartbeat and the Vault record (the Secret's deletion, an
    # Ansible run, is exercised by tests/e2e/test_alert_delivery.py).
    plan = step.plan_destroy(ctx)
    assert [c.target.split()[0] for c in plan.changes] == ["secret", "jsm", "jsm", "vault"]
    step.destroy(ctx, Plan(tuple(c for c in plan.changes if not isinstance(c.payload, DeleteSecret))))
    assert [type(c.payload) for c in step.plan_destroy(ctx).changes] == [DeleteSecret]
    assert jsm_ours(world) == [] and world.jsm.heartbeat(HEARTBEAT) is None and vault(world, "jsm") is None


def test_jsm_team_missing_is_named(world: World) -> None:
    world.customer(alerting={"provider": "jsm", "team": "no-such-team"})
    summary, _, _ = world.run(steps=STEPS, dry_run=True)
    failed = summary.results[-1]
    assert failed.status == "failed" and failed.message is not None
    assert "alerting.team" in failed.message and "kuvaq-sre" in failed.message


def test_switch_over_from_opsgenie(world: World) -> None:
    opsgenie_baseline(world)  # what a provider-opsgenie run leaves; customer.yaml now says jsm
    [old] = og_ours(world)
    assert HEARTBEAT in world.opsgenie.heartbeat_settings
    planned = run(world, dry_run=True)
    assert planned.plan is not None
    targets = [(c.action, " ".join(c.target.split()[:2])) for c in planned.plan.changes]
    assert targets == [
        (Action.CREATE, "jsm integration"),
        (Action.CREATE, "jsm heartbeat"),
        (Action.UPDATE, f"secret {NAMESPACE}/{SECRET}"),
        (Action.DELETE, "opsgenie heartbeat"),
        (Action.DELETE, "opsgenie integration"),
        (Action.DELETE, f"vault secret/{world.vault.prefix}/kuvaq/alertmanager/opsgenie"),
    ]
    assert "switch-over to JSM" in planned.plan.changes[-1].summary

    world.reset_logs()
    done = run(world)
    assert done.status == "done", done.message
    [new] = jsm_ours(world)
    assert receiver(deployed(world), "opsgenie", "opsgenie_configs")["api_key"] == new.api_key
    assert og_ours(world) == [] and HEARTBEAT not in world.opsgenie.heartbeat_settings
    assert vault(world, "opsgenie") is None
    assert vault(world, "jsm").custom_metadata["integration_id"] == new.id
    # JSM accepted a test alert before anything of OpsGenie was deleted.
    first_alert = min(c.at for c in world.jsm.log.calls if c.path.endswith("/v2/alerts"))
    first_delete = min(c.at for c in world.opsgenie.log.calls if c.method == "DELETE")
    assert first_alert < first_delete
    assert old.id not in world.opsgenie.integrations
    world.reset_logs()
    assert run(world).status == "up-to-date" and world.writes() == 0


def test_unfinished_switch_over_without_the_opsgenie_key_says_what_to_do(world: World) -> None:
    opsgenie_baseline(world)
    doc = world.document(alerting={"provider": "jsm"})
    del doc["alerting"]["api_key"]
    world.customer(doc)
    summary, _, _ = world.run(steps=STEPS, dry_run=True)
    failed = summary.results[-1]
    assert failed.status == "failed" and failed.message is not None
    assert "alerting.api_key" in failed.message
    assert "switch-over from OpsGenie is not finished" in failed.message
    assert og_ours(world)  # nothing of OpsGenie was touched
