"""The real Alertmanager, configured by alertmanager-opsgenie for provider jsm, reaches the JSM emulator.

The Secret the step applied is handed, unchanged but for its timings, to a
real Alertmanager: an alert must arrive at JSM's ingestion API with the
integration's key, resolving it must close it there, and the always-firing
Watchdog must ping the heartbeat through the REST API (basic auth), which
makes the heartbeat Responsive: the dead-man's switch works end to end.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import requests
import yaml

from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
from steps.slack_channel import SlackChannel
from tests.e2e.test_alert_delivery import eventually, now, routes_to
from tests.fixtures.alertmanager import AlertmanagerFactory
from tests.fixtures.world import World

NAMESPACE = "monitoring"
SECRET = "alertmanager-gitops-bootstrap"


def test_alert_and_watchdog_heartbeat_reach_jsm(
    world: World, alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    world.customer(alerting={"provider": "jsm"})
    summary, _, _ = world.run(steps=(SlackChannel, AlertmanagerOpsgenie))
    assert [r.status for r in summary.results] == ["done", "done"], [r.message for r in summary.results]
    integration = world.jsm.integrations[summary.results[1].outputs["integration_id"]]
    heartbeat = world.jsm.heartbeat("kuvaq-alertmanager")
    assert heartbeat is not None and heartbeat.pings == 0

    secret = world.kube.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret is not None
    config: dict[str, Any] = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    config["route"]["group_wait"] = "0s"
    config["route"]["group_interval"] = "1s"
    config["global"]["resolve_timeout"] = "1m"
    text = yaml.safe_dump(config)
    path = tmp_path / "am.yml"
    path.write_text(text)
    assert routes_to(path, "alertname=Watchdog") == "heartbeat"
    assert routes_to(path, "alertname=DiskFull", "namespace=shop", "severity=critical") == "opsgenie,slack"
    assert routes_to(path, "alertname=DiskFull", "namespace=shop", "severity=warning") == "slack"

    am = alertmanager_factory.start(text)
    watchdog = {"labels": {"alertname": "Watchdog", "severity": "none"}, "startsAt": now(-60)}
    disk = {
        "labels": {"alertname": "DiskFull", "namespace": "shop", "severity": "critical"},
        "startsAt": now(-60),
    }
    requests.post(f"{am.url}/api/v2/alerts", json=[watchdog, disk], timeout=5).raise_for_status()

    opened = eventually(
        "the alert reaches JSM",
        lambda: next((a for a in world.jsm.alerts if a.message == "DiskFull in shop"), None),
    )
    assert opened.api_key == integration.api_key and opened.integration_id == integration.id
    assert opened.body["priority"] == "P2" and opened.body["responders"] == [
        {"type": "team", "name": "kuvaq-sre"}
    ]
    eventually("Watchdog pings the heartbeat", lambda: True if heartbeat.pings else None)
    found = world.session().services.jsm.find_heartbeat("kuvaq-alertmanager", "kuvaq-sre")
    assert found is not None and found.pinged and not found.expired
    ping_calls = [c for c in world.jsm.log.calls if c.path.endswith("/heartbeats/ping")]
    assert ping_calls and all(c.method == "POST" and c.status == 202 for c in ping_calls)

    resolved = {**disk, "endsAt": now(-1)}
    requests.post(f"{am.url}/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
    eventually("JSM closes the alert", lambda: True if opened.status == "closed" else None)

    # verify() agrees: the heartbeat is pinged, a test alert goes through.
    AlertmanagerOpsgenie().verify(world.session().context)
