"""github-oauth against the GitHub and Kubernetes emulators (through real Ansible) and the real OpenBao.

The manifest-mode test plays the person's browser: it opens the local page the
step prints, posts the form to the emulator's GitHub form endpoint, confirms
"Create GitHub App" without following the redirect, and brings the redirect back
to the local listener (tests/backends/test_manifest_browser.py does it in chromium).
"""

from __future__ import annotations

import base64
import copy
import html
import json
import re
import threading
from typing import Any

import requests
import yaml

from bootstrap.clients import argocd
from bootstrap.step import Action
from steps.github_oauth import (
    GRAFANA_NS,
    GRAFANA_SECRET,
    ApplyObjects,
    CreateApp,
    GithubOauth,
    StoreCredentials,
)
from tests.fixtures.world import World
from tests.steps.cluster_run import run, secrets_in, state_text
from tests.unit.recording import RecordingReporter

NS = "argocd"
DOMAIN = "kuvaq.example.com"


def vault_path(world: World) -> str:
    return f"{world.vault.prefix}/kuvaq/github-oauth"


def dex_connector(world: World) -> dict[str, Any]:
    data = argocd.config_data(world.kube.get("v1", "ConfigMap", NS, argocd.CM))
    assert data["url"] == f"https://argocd.{DOMAIN}"
    [connector] = yaml.safe_load(data["dex.config"])["connectors"]
    return dict(connector)


def cluster_secrets(world: World) -> tuple[dict[str, str], dict[str, str]]:
    return (
        argocd.secret_data(world.kube.get("v1", "Secret", NS, argocd.SECRET)),
        argocd.secret_data(world.kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET)),
    )


def test_manual_gate_waits_then_continues(world: World) -> None:
    doc = world.document()
    secret = world.env.pop("GITHUB_OAUTH_CLIENT_SECRET")
    gate = copy.deepcopy(doc)
    del gate["argocd"]["sso"]["client_id"], gate["argocd"]["sso"]["client_secret"]
    world.customer(gate)
    waiting = run(world, (GithubOauth,))
    assert waiting.summary.exit_code() == 3 and waiting.result.status == "waiting"
    message = waiting.result.message or ""
    for expected in (
        "https://github.com/organizations/kuvaq/settings/apps/new",
        "argocd-kuvaq",
        f"https://argocd.{DOMAIN}/api/dex/callback",
        f"https://grafana.{DOMAIN}/login/github",
        "argocd.sso.client_secret",
    ):
        assert expected in message
    # one OAuth App cannot carry both callback hosts: the gate asks for a GitHub App only
    assert "settings/applications/new" not in message and "Members: read" in message
    assert world.state()["steps"]["github-oauth"]["status"] == "waiting"
    assert world.kube.log.writes == []

    # The credentials are named in the file but the reference does not resolve: bad input, not a wait.
    world.customer(doc)
    broken = run(world, (GithubOauth,))
    assert broken.summary.exit_code() == 4, broken.result.message
    assert "argocd.sso.client_secret" in (broken.result.message or "")
    assert "GITHUB_OAUTH_CLIENT_SECRET" in (broken.result.message or "")

    world.env["GITHUB_OAUTH_CLIENT_SECRET"] = "not-the-right-secret-000000"
    wrong = run(world, (GithubOauth,))
    assert wrong.summary.exit_code() == 1
    assert "argocd.sso.client_secret" in (wrong.result.message or "")
    assert world.vault.client.read(vault_path(world)) is None and world.kube.log.writes == []

    world.env["GITHUB_OAUTH_CLIENT_SECRET"] = secret
    done = run(world, (GithubOauth,))
    assert done.result.status == "done", done.result.message
    client_id = world.document()["argocd"]["sso"]["client_id"]
    assert done.result.outputs == {"mode": "manual", "client_id": client_id, "vault_path": vault_path(world)}
    assert world.vault.client.read(vault_path(world)) == {"client_id": client_id, "client_secret": secret}
    assert dex_connector(world) == {
        "type": "github",
        "id": "github",
        "name": "GitHub",
        "config": {
            "clientID": client_id,
            "clientSecret": "$dex.github.clientSecret",
            "orgs": [{"name": "kuvaq", "teams": ["sre"]}],
            "teamNameField": "slug",
            "useLoginAsID": False,
            "hostName": "127.0.0.1",  # the emulator is, to the tool, a GitHub Enterprise Server
        },
    }
    argo, grafana = cluster_secrets(world)
    assert argo == {"dex.github.clientSecret": secret}
    assert grafana == {"GF_AUTH_GITHUB_CLIENT_ID": client_id, "GF_AUTH_GITHUB_CLIENT_SECRET": secret}
    assert done.scans > 0 and done.leaks == []
    shown = json.dumps([str(e) for e in waiting.reporter.events + done.reporter.events])
    assert done.result.plan is not None and "GF_AUTH_GITHUB_CLIENT_SECRET: ********" in str(done.result.plan)
    assert secrets_in(shown + json.dumps(done.result.plan.to_json()) + state_text(world), [secret]) == []

    world.reset_logs()
    again = run(world, (GithubOauth,))
    assert again.result.status == "up-to-date" and world.writes() == 0 and again.scans == 0

    # A reference the file still names must resolve (as `bootstrap check` demands): invalid input.
    del world.env["GITHUB_OAUTH_CLIENT_SECRET"]
    assert run(world, (GithubOauth,)).summary.exit_code() == 4
    # Once stored, Vault is the source: a file without the client secret reference runs on Vault's.
    world.customer(gate)
    assert run(world, (GithubOauth,)).result.status == "up-to-date"


class Browser(RecordingReporter):
    """Plays the person: when the step prints its local URL, complete the flow in a thread."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: threading.Thread | None = None
        self.app_location = ""
        self.forged_status = 0

    def step_progress(self, step: str, text: str) -> None:
        super().step_progress(step, text)
        found = re.search(r"http://127\.0\.0\.1:\d+/", text)
        if found and self.thread is None:
            self.thread = threading.Thread(target=self._browse, args=(found.group(0),), daemon=True)
            self.thread.start()

    def _browse(self, local: str) -> None:
        forged = requests.get(f"{local}callback", params={"code": "forged", "state": "guessed"}, timeout=5)
        self.forged_status = forged.status_code
        page = requests.get(local, timeout=5).text
        action = html.unescape(re.search(r'action="([^"]+)"', page).group(1))  # type: ignore[union-attr]
        manifest = html.unescape(re.search(r'name="manifest" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
        page = requests.post(action, data={"manifest": manifest}, timeout=5)
        assert page.status_code == 200, page.text  # GitHub's "Create GitHub App" confirmation
        confirm = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
        ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        base = action.split("/organizations/")[0]
        posted = requests.post(base + confirm, data={"ticket": ticket}, allow_redirects=False, timeout=5)
        assert posted.status_code == 302
        self.app_location = posted.headers["location"]
        assert self.app_location.startswith(local)
        requests.get(self.app_location, timeout=5).raise_for_status()


def test_manifest_flow_end_to_end(world: World) -> None:
    doc = world.document()
    doc["argocd"]["sso"] = {"mode": "manifest", "teams": ["sre"], "admin_team": "sre"}
    world.customer(doc)

    planned = run(world, (GithubOauth,), dry_run=True).result.plan
    assert planned is not None and planned.changes[0].action == Action.CREATE
    assert planned.changes[0].target == "GitHub App argocd-kuvaq in kuvaq"
    assert world.writes() == 0 and world.github.apps == {}

    browser = Browser()
    done = run(world, (Patient,), reporter=browser)
    assert done.result.status == "done", done.result.message
    assert browser.forged_status == 400  # a wrong state is refused and the listener kept waiting
    [app] = world.github.apps.values()
    assert app.name == "argocd-kuvaq" and app.owner == "kuvaq"
    assert app.manifest["url"] == f"https://argocd.{DOMAIN}"
    assert app.manifest["callback_urls"] == [
        f"https://argocd.{DOMAIN}/api/dex/callback",
        f"https://grafana.{DOMAIN}/login/github",
    ]
    assert app.manifest["public"] is False and "hook_attributes" not in app.manifest
    assert app.manifest["default_permissions"] == {"members": "read", "emails": "read"}
    assert app.manifest["request_oauth_on_install"] is True
    stored = world.vault.client.read_version(vault_path(world))
    assert stored is not None
    assert app.webhook_secret is None  # an App without a webhook
    assert stored.data == {"client_id": app.client_id, "client_secret": app.client_secret, "pem": app.pem}
    assert stored.custom_metadata == {"mode": "manifest", "app_id": str(app.id), "app_slug": app.slug}
    assert done.result.outputs == {
        "mode": "manifest",
        "client_id": app.client_id,
        "app_slug": app.slug,
        "vault_path": vault_path(world),
    }
    assert dex_connector(world)["config"]["clientID"] == app.client_id
    argo, grafana = cluster_secrets(world)
    assert argo["dex.github.clientSecret"] == grafana["GF_AUTH_GITHUB_CLIENT_SECRET"] == app.client_secret
    assert done.leaks == []
    shown = json.dumps([str(e) for e in browser.events])
    assert secrets_in(shown + state_text(world), [app.client_secret, app.pem]) == []
    assert app.pem.splitlines()[1] not in shown

    world.reset_logs()
    again = run(world, (GithubOauth,))  # the Vault record is the proof the App exists
    assert again.result.status == "up-to-date" and world.writes() == 0 and len(world.github.apps) == 1


class Patient(GithubOauth):
    callback_timeout = 300.0  # a broken browser thread fails the test instead of hanging it


class Impatient(GithubOauth):
    callback_timeout = 0.3


def test_manifest_flow_nobody_comes_back(world: World) -> None:
    doc = world.document()
    doc["argocd"]["sso"] = {"mode": "manifest"}
    world.customer(doc)
    waited = run(world, (Impatient,))
    assert waited.summary.exit_code() == 3
    assert "nobody completed the GitHub App creation" in (waited.result.message or "")
    assert world.writes() == 0 and world.vault.client.read(vault_path(world)) is None


def test_web_url_for_the_form() -> None:
    from bootstrap.clients.github_manifest import web_url

    assert web_url("https://api.github.com") == "https://github.com"
    assert web_url("https://ghe.example.com/api/v3") == "https://ghe.example.com"
    assert web_url("http://127.0.0.1:8123/") == "http://127.0.0.1:8123"


def test_a_default_app_name_too_long_for_github_is_invalid_input(world: World) -> None:
    """customer.name may have 32 characters; "argocd-" + that exceeds GitHub's 34 (REFERENCE §11)."""
    doc = world.document()
    doc["argocd"]["sso"] = {"mode": "manifest"}
    doc["customer"]["name"] = "k" * 30
    world.customer(doc)
    summary = run(world, (GithubOauth,), dry_run=True).summary
    assert summary.exit_code() == 4
    message = summary.results[0].message or ""
    assert "argocd.sso.app_name" in message and "34" in message
    assert world.github.apps == {}


_OBJECT_PATHS = {
    argocd.CM: f"/api/v1/namespaces/{NS}/configmaps/{argocd.CM}",
    argocd.SECRET: f"/api/v1/namespaces/{NS}/secrets/{argocd.SECRET}",
    GRAFANA_SECRET: f"/api/v1/namespaces/{GRAFANA_NS}/secrets/{GRAFANA_SECRET}",
}


def _writes(world: World, op: object) -> dict[str, list[tuple[str, str]]]:
    """The calls an operation is, per server. Server-side apply is a PATCH of the object
    (kubernetes.io/docs/reference/using-api/server-side-apply/); KV v2 writes data, then metadata
    (developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2). Checking the client credentials is
    GitHub's POST /applications/{client_id}/token answering 404, which writes nothing; the
    manifest flow's own write is the code conversion (docs.github.com/rest/apps/apps
    #create-a-github-app-from-a-manifest)."""
    vault = f"/v1/secret/%s/{vault_path(world)}"
    match op:
        case StoreCredentials():
            return {"vault": [("POST", vault % "data"), ("POST", vault % "metadata")]}
        case CreateApp():
            return {
                "github": [("POST", "/app-manifests/{code}/conversions")],
                "vault": [("POST", vault % "data"), ("POST", vault % "metadata")],
            }
        case ApplyObjects(names=names, namespaces=namespaces):
            # One playbook: every missing namespace first, then the objects (playbooks/apply.yml).
            return {
                "namespaces": [("PATCH", f"/api/v1/namespaces/{ns}") for ns in namespaces],
                "kube": [("PATCH", _OBJECT_PATHS[n]) for n in names],
            }
    raise AssertionError(f"unexpected operation {op!r}")


def _apply_is_the_plan(world: World, browser: Browser | None = None) -> list[object]:
    """Plan, apply, and check GitHub's, the cluster's and Vault's writes are the plan's operations,
    in order, and no more; then the plan is empty. ``browser`` plays the person of the manifest
    flow (its own form posts to GitHub's web pages are the person's, not the step's)."""
    step = Patient()
    plan = step.plan(world.context())
    ops = [c.payload for c in plan.changes]
    world.reset_logs()
    ctx = world.context()
    if browser is not None:
        ctx.progress = lambda text: browser.step_progress(step.id, text)
    step.apply(ctx, plan)
    expected: dict[str, list[tuple[str, str]]] = {"github": [], "vault": [], "namespaces": [], "kube": []}
    for op in ops:
        for server, calls in _writes(world, op).items():
            expected[server] += calls
    expected["kube"] = expected.pop("namespaces") + expected["kube"]
    logs = {"github": world.github.log, "vault": world.vault_proxy.log, "kube": world.kube.log}  # type: ignore[union-attr]
    made = {k: [(w.method, w.path) for w in log.writes] for k, log in logs.items()}
    made["github"] = [
        (method, re.sub(r"^/app-manifests/[^/]+/", "/app-manifests/{code}/", path))
        for method, path in made["github"]
        if not path.startswith("/organizations/")
    ]
    assert made == expected
    assert step.plan(world.context()).empty
    return ops


def test_apply_performs_exactly_the_planned_operations(world: World) -> None:
    """Manual mode, three starting states in a row (a playbook run costs seconds): the credentials
    already in Vault and nothing in the cluster; Grafana's Secret edited by hand; new credentials
    in customer.yaml (checked, stored, rolled out)."""
    client_id = world.document()["argocd"]["sso"]["client_id"]
    secret = world.env["GITHUB_OAUTH_CLIENT_SECRET"]
    world.vault.client.write(
        vault_path(world), {"client_id": client_id, "client_secret": secret}, 0, {"mode": "manual"}
    )
    assert _apply_is_the_plan(world) == [
        ApplyObjects((argocd.CM,), (NS,)),
        ApplyObjects((argocd.SECRET,)),
        ApplyObjects((GRAFANA_SECRET,), (GRAFANA_NS,)),
    ]

    grafana = world.kube.get("v1", "Secret", GRAFANA_NS, GRAFANA_SECRET)
    assert grafana is not None
    grafana["data"]["GF_AUTH_GITHUB_CLIENT_ID"] = base64.b64encode(b"edited-by-hand").decode()
    world.session().services.kube.apply(
        {k: grafana[k] for k in ("apiVersion", "kind", "data")}
        | {"metadata": {"name": GRAFANA_SECRET, "namespace": GRAFANA_NS}},
        field_manager="kubectl-edit",
    )
    assert _apply_is_the_plan(world) == [ApplyObjects((GRAFANA_SECRET,))]

    new_secret = "rotated-by-a-person-000000000000"
    world.github.add_oauth_app("Iv1.rotated", new_secret)
    world.env["GITHUB_OAUTH_CLIENT_SECRET"] = new_secret
    doc = world.document()
    doc["argocd"]["sso"]["client_id"] = "Iv1.rotated"
    world.customer(doc)
    assert _apply_is_the_plan(world) == [
        StoreCredentials("Iv1.rotated", 1),
        ApplyObjects((argocd.CM,)),
        ApplyObjects((argocd.SECRET,)),
        ApplyObjects((GRAFANA_SECRET,)),
    ]
    assert cluster_secrets(world)[1]["GF_AUTH_GITHUB_CLIENT_SECRET"] == new_secret


def test_manifest_mode_apply_performs_exactly_the_planned_operations(world: World) -> None:
    """Manifest mode from nothing: the App (one code conversion, its credentials to Vault), then the
    namespaces and objects with the new App's credentials, and nothing else."""
    doc = world.document()
    doc["argocd"]["sso"] = {"mode": "manifest", "teams": ["sre"], "admin_team": "sre"}
    world.customer(doc)
    browser = Browser()
    assert _apply_is_the_plan(world, browser) == [
        CreateApp(),
        ApplyObjects((argocd.CM, argocd.SECRET, GRAFANA_SECRET), (NS, GRAFANA_NS)),
    ]
    [app] = world.github.apps.values()
    assert cluster_secrets(world)[1]["GF_AUTH_GITHUB_CLIENT_SECRET"] == app.client_secret
