"""An alert travels from the real Alertmanager to OpsGenie and Slack with what the steps configured.

slack-channel and alertmanager-opsgenie run against the emulators; the config
that landed in the Kubernetes emulator's Secret is handed, unchanged but for
its timings, to a real Alertmanager; an alert posted to it must reach the
OpsGenie emulator with the integration's key and the Slack emulator in the
channel, and resolving it must close it at OpsGenie. Then the steps are
destroyed.
"""

from __future__ import annotations

import base64
import datetime
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
from steps.slack_channel import SlackChannel
from tests.fixtures.alertmanager import AlertmanagerFactory
from tests.fixtures.world import World

NAMESPACE = "monitoring"
SECRET = "alertmanager-gitops-bootstrap"
DEADLINE = 120.0  # generous: on a busy machine Alertmanager and the emulators are slow
T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None]) -> T:
    """Poll ``probe`` until it returns something, failing after a generous deadline."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def now(offset: float = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return moment.isoformat().replace("+00:00", "Z")


def routes_to(config: Path, *labels: str) -> str:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    out = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def test_alert_reaches_opsgenie_and_slack_then_closes(
    world: World, alertmanager_factory: AlertmanagerFactory, tmp_path: Path
) -> None:
    summary, _, _ = world.run(steps=(SlackChannel, AlertmanagerOpsgenie))
    assert [r.status for r in summary.results] == ["done", "done"], [r.message for r in summary.results]
    integration_id = summary.results[1].outputs["integration_id"]
    key = world.opsgenie.integrations[integration_id].api_key

    secret = world.kube.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret is not None
    config: dict[str, Any] = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    assert config["route"]["group_wait"] == "30s"  # production timings in the Secret …
    # … shortened here only, so the test needs no 30 s wait; everything else is what the cluster got.
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
    channel = world.slack.channel_by_name("alerts-kuvaq")
    assert channel is not None
    messages_before = len(channel.messages)
    alert = {
        "labels": {"alertname": "DiskFull", "namespace": "shop", "severity": "critical"},
        "annotations": {"summary": "disk almost full"},
        "startsAt": now(-60),
    }
    requests.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    def from_alertmanager() -> Any:
        return next((a for a in world.opsgenie.alerts if a.message == "DiskFull in shop"), None)

    opened = eventually("the alert reaches OpsGenie", from_alertmanager)
    assert opened.api_key == key and opened.integration_id == integration_id
    assert opened.priority == "P2" and opened.tags == ["kuvaq"]
    assert opened.responders == [{"type": "team", "name": "kuvaq-sre"}]
    posted = eventually(
        "the alert reaches Slack",
        lambda: channel.messages[messages_before] if len(channel.messages) > messages_before else None,
    )
    assert "DiskFull" in str(posted.get("attachments")) and "FIRING" in str(posted.get("attachments"))

    resolved = {**alert, "endsAt": now(-1)}
    requests.post(f"{am.url}/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
    eventually("OpsGenie closes the alert", lambda: True if opened.status == "closed" else None)
    assert opened.close_requests[-1]["api_key"] == key
    eventually(
        "Slack hears it is resolved",
        lambda: True if "RESOLVED" in str(channel.messages[-1].get("attachments")) else None,
    )

    # Roll back: the Secret, the integration and the Vault record go; the channel is archived.
    ctx = world.session().context
    for step in (AlertmanagerOpsgenie(), SlackChannel()):
        step.destroy(ctx, step.plan_destroy(ctx))
        assert step.plan_destroy(ctx).empty
    assert world.kube.get("v1", "Secret", NAMESPACE, SECRET) is None
    assert integration_id not in world.opsgenie.integrations
    assert world.vault.client.read(f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie") is None
    assert channel.archived
