"""Helpers for the OpsGenie → JSM switch-over tests: a cheap OpsGenie starting point, an in-process
kill switch, and the two facts every crash point must satisfy.

The in-process kill: after the k-th successful write to any backend (JSM,
OpsGenie, Kubernetes, Vault) every later request of that run is refused, as if
the process had died the moment the write was answered (Ansible's own requests
to the cluster included).
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.clients.opsgenie import OpsGenieClient
from sandbox import customer as sandbox_customer
from sandbox.httpemu import Fault, Request, Response
from steps import alertmanager_opsgenie as am_step
from steps.alertmanager_opsgenie import AlertmanagerOpsgenie
from steps.slack_channel import SlackChannel
from tests.fixtures.world import World

NAME = "alertmanager-kuvaq"
HEARTBEAT = "kuvaq-alertmanager"
TEAM = sandbox_customer.TEAM
NAMESPACE = "monitoring"
SECRET = "alertmanager-gitops-bootstrap"
STEPS = (SlackChannel, AlertmanagerOpsgenie)


@dataclass
class Dead(Fault):
    """Refuses every request once ``flag`` is set (a process killed at that moment sends nothing more)."""

    flag: threading.Event = field(default_factory=threading.Event)

    def should_fire(self) -> bool:
        return self.flag.is_set()


@dataclass
class Killer:
    """Counts successful writes across servers; sets the flag once the k-th has been answered."""

    after: int = 10**6
    """Kill after this many writes …"""
    at: str | None = None
    """… or after the first write whose ``server METHOD path`` matches this regex."""
    flag: threading.Event = field(default_factory=threading.Event)
    writes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, world: World) -> None:
        for server in world.servers:
            original = server.dispatch

            def counted(req: Request, server: Any = server, original: Any = original) -> Response:
                resp: Response = original(req)
                if server.is_write(req.method, req.path) and resp.status < 400:
                    with self._lock:
                        self.writes.append(f"{server.name} {req.method} {req.path}")
                        label = self.writes[-1]
                        if len(self.writes) >= self.after or (self.at and re.search(self.at, label)):
                            self.flag.set()
                return resp

            server.dispatch = counted
            server.faults.add(Dead("status", status=418, flag=self.flag))

    def disarm(self, world: World) -> None:
        for server in world.servers:
            del server.dispatch  # back to the class's method
            server.faults.rules[:] = [r for r in server.faults.rules if not isinstance(r, Dead)]


def opsgenie_baseline(world: World) -> None:
    """What a finished provider-opsgenie run leaves, built without Ansible; then customer.yaml says jsm."""
    summary, _, _ = world.run(steps=(SlackChannel,))
    assert summary.results[0].status == "done"
    session = world.session()
    cfg, services = session.config, session.services
    og: OpsGenieClient = services.opsgenie
    created = og.create_integration(NAME, "API", TEAM)
    og.enable_integration(created.id)
    services.vault.write(
        am_step.vault_path(cfg), {"api_key": created.api_key}, cas=0, metadata={"integration_id": created.id}
    )
    og.create_heartbeat(HEARTBEAT, TEAM, 10)
    webhook = og.heartbeat_webhook(HEARTBEAT, TEAM, created.api_key)
    text = am_step.dump(am_step.render(cfg, created.api_key, sandbox_customer.SLACK_TOKEN, webhook))
    services.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, "t")
    services.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {"alertmanager.yaml": base64.b64encode(text.encode()).decode()},
        },
        am_step.FIELD_MANAGER,
    )
    world.customer(alerting={"provider": "jsm"})


def deployed(world: World) -> dict[str, Any]:
    secret = world.kube.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret is not None
    data: dict[str, Any] = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    return data


def delivery_problems(world: World) -> list[str]:
    """Why the deployed Secret would not page anyone right now (empty: it would)."""
    config = deployed(world)
    [target] = next(r for r in config["receivers"] if r["name"] == "opsgenie")["opsgenie_configs"]
    [ping] = next(r for r in config["receivers"] if r["name"] == "heartbeat")["webhook_configs"]
    key = target["api_key"]
    if target["api_url"].startswith(world.jsm.url):
        live = [i for i in world.jsm.integrations.values() if i.api_key == key and i.enabled]
        beat = world.jsm.heartbeat(HEARTBEAT) is not None and ping["url"].startswith(world.jsm.url)
    else:
        live = [i for i in world.opsgenie.integrations.values() if i.api_key == key and i.enabled]
        beat = HEARTBEAT in world.opsgenie.heartbeat_settings and ping["url"].startswith(world.opsgenie.url)
    return ([] if live else [f"no enabled integration has the key at {target['api_url']}"]) + (
        [] if beat else ["the heartbeat the Secret pings does not exist"]
    )


def leftovers(world: World) -> list[str]:
    """What the finished switch-over must not leave behind, and what it must leave."""
    problems = []
    if [i for i in world.opsgenie.integrations.values() if i.name == NAME]:
        problems.append("an OpsGenie integration is left")
    if HEARTBEAT in world.opsgenie.heartbeat_settings:
        problems.append("the OpsGenie heartbeat is left")
    if world.vault.client.read(f"{world.vault.prefix}/kuvaq/alertmanager/opsgenie") is not None:
        problems.append("the OpsGenie key is left in Vault")
    ours = [i for i in world.jsm.integrations.values() if i.name == NAME]
    stored = world.vault.client.read(f"{world.vault.prefix}/kuvaq/alertmanager/jsm") or {}
    config = deployed(world)
    [target] = next(r for r in config["receivers"] if r["name"] == "opsgenie")["opsgenie_configs"]
    if len(ours) != 1 or not ours[0].enabled:
        problems.append(f"{len(ours)} JSM integrations, expected one enabled")
    elif not (ours[0].api_key == stored.get("api_key") == target["api_key"]):
        problems.append("the JSM key differs between the integration, Vault and the Secret")
    if len([h for (_, n), h in world.jsm.heartbeats.items() if n == HEARTBEAT]) != 1:
        problems.append("not exactly one JSM heartbeat")
    return problems
