"""argocd-install against the Kubernetes emulator (through real Ansible) and the real OpenBao.

argocd-dir and deploy-key run for real (GitHub emulator, Vault). argocd-users
and github-oauth are stood in for by `Prerequisite`s (their own tests cover
them) with the admin password hash seeded where argocd-users puts it: each
Ansible run costs seconds, and this file runs exactly two.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from bootstrap.clients import argocd
from bootstrap.clients.kubernetes import KubeClient
from bootstrap.errors import RetryableError
from bootstrap.step import Action, Change, Context, Outputs, Plan, Step, StepId
from sandbox import argocd_manifest
from sandbox import customer as sandbox_customer
from steps import argocd_install as install
from steps.argocd_dir import ArgocdDir
from steps.argocd_install import DIGEST_ANNOTATION, INITIAL_ADMIN, VERSION_ANNOTATION, ArgocdInstall
from steps.deploy_key import DeployKey
from tests.fixtures.world import World
from tests.steps.cluster_run import apply_from, destroy, kube_writes, run, secrets_in, state_text

NS = "argocd"
REPO_SECRET = "repo-kuvaq-infra"
KIT_CREDS = "creds-kuvaq-kit"
VERSION = argocd_manifest.VERSION
INFRA_URL = "git@127.0.0.1:kuvaq/infra.git"


class Prerequisite(Step):
    """A required step already done elsewhere: empty plan, the outputs the real step records."""

    outputs: ClassVar[Outputs] = {}

    def plan(self, ctx: Context) -> Plan:
        return Plan(outputs=dict(self.outputs))

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        raise AssertionError("a prerequisite stand-in is never applied")

    def verify(self, ctx: Context) -> None:
        pass

    def plan_destroy(self, ctx: Context) -> Plan:
        return Plan()

    def destroy(self, ctx: Context, plan: Plan) -> None:
        pass


def prerequisite(step_id: str, outputs: Outputs) -> type[Step]:
    return type(step_id, (Prerequisite,), {"id": StepId(step_id), "title": step_id, "outputs": outputs})


STEPS = (
    ArgocdDir,
    DeployKey,
    prerequisite("argocd-users", {"users": ["admin"]}),
    prerequisite("github-oauth", {"mode": "manual"}),
    ArgocdInstall,
)


def private_key(world: World) -> str:
    """The key the real deploy-key step stored."""
    record = world.vault.client.read(f"{world.vault.prefix}/kuvaq/deploy-key")
    assert record is not None
    return record["private_key"]


def seed_argocd_users(world: World) -> None:
    """What argocd-users and Argo CD's first start leave: our admin hash, and the initial admin secret."""
    world.kube.seed(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        argocd.secret(argocd.SECRET, NS, {"admin.password": argocd.b64("$2b$10$" + "h" * 53)}),
        argocd.secret(INITIAL_ADMIN, NS, {"password": argocd.b64("initial-admin-pw-123")}),
    )


def test_install_waits_then_is_idempotent(world: World) -> None:
    seed_argocd_users(world)
    world.customer(argocd={"wait_timeout": 5})
    world.reset_logs()

    planned = run(world, STEPS, dry_run=True).result.plan
    assert planned is not None
    assert [(c.action, c.target) for c in planned.changes] == [
        (Action.UPDATE, f"Argo CD {VERSION} in argocd"),
        (Action.CREATE, f"Secret argocd/{REPO_SECRET}"),
        (Action.CREATE, f"Secret argocd/{KIT_CREDS}"),
        (Action.CREATE, "AppProject argocd/kuvaq"),
        (Action.CREATE, "Application argocd/kuvaq-root"),
        (Action.DELETE, f"Secret argocd/{INITIAL_ADMIN}"),
    ]
    assert "+ password: ********" in planned.changes[2].diff
    assert "missing: CustomResourceDefinition/applications.argoproj.io" in planned.changes[0].diff
    assert "+ sshPrivateKey: ********" in planned.changes[1].diff
    assert world.kube.log.writes == []
    assert run(world, STEPS[:2]).result.status == "done"  # the infra repo's argocd/ and the deploy key

    # First attempt, called directly (the engine would retry it): one workload is held back.
    world.kube.hold(NS, "Deployment", "argocd-repo-server")
    sess = world.session()
    # Called directly, the step sees what the engine would give it: deploy-key's recorded outputs.
    sess.context.outputs = {sid: rec.outputs for sid, rec in sess.store.load("kuvaq").steps.items()}
    step = ArgocdInstall()
    with pytest.raises(RetryableError, match=r"Deployment/argocd-repo-server") as caught:
        step.apply(sess.context, step.plan(sess.context))
    assert "argocd-server" not in str(caught.value).replace("argocd-repo-server", "")
    world.kube.release(NS, "Deployment", "argocd-repo-server")

    done = run(world, STEPS)
    result = done.result
    assert result.status == "done", result.message
    assert result.plan is not None
    assert [c.target for c in result.plan.changes] == [f"Secret argocd/{INITIAL_ADMIN}"]
    digest = argocd_manifest.SHA256
    assert result.outputs == {
        "version": VERSION,
        "manifest_sha256": digest,
        "root_app": "argocd/kuvaq-root",
        "project": "argocd/kuvaq",
    }
    annotations = world.kube.get("v1", "Namespace", None, NS)["metadata"]["annotations"]
    assert annotations == {VERSION_ANNOTATION: VERSION, DIGEST_ANNOTATION: digest}
    for name in argocd_manifest.workloads("Deployment"):
        deployment = world.kube.get("apps/v1", "Deployment", NS, name)
        assert deployment["metadata"]["namespace"] == NS
        assert deployment["status"]["availableReplicas"] == 1
    key = private_key(world)
    repo = world.kube.get("v1", "Secret", NS, REPO_SECRET)
    assert repo["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "repository"}
    assert argocd.secret_data(repo) == {"type": "git", "url": INFRA_URL, "sshPrivateKey": key}
    creds = world.kube.get("v1", "Secret", NS, KIT_CREDS)
    assert creds["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "repo-creds"}
    kit_url = f"https://127.0.0.1:{world.github.port}/acme-sre/kit-core.git"
    assert argocd.secret_data(creds) == {
        "type": "git",
        "url": kit_url,
        "username": "x-access-token",
        "password": sandbox_customer.KIT_TOKEN,
    }
    # The cluster holds exactly Git's root.yaml and project.yaml (one definition each).
    git = world.github.read_tree(*sandbox_customer.INFRA_REPO.split("/"), "main")
    for record, kind, name in (
        ("root.yaml", "Application", "kuvaq-root"),
        ("project.yaml", "AppProject", "kuvaq"),
    ):
        want = yaml.safe_load(git[f"argocd/{record}"])
        live = world.kube.get("argoproj.io/v1alpha1", kind, NS, name)
        assert live["spec"] == want["spec"], record
        assert (
            live["metadata"]["finalizers" if kind == "Application" else "labels"]
            == want["metadata"]["finalizers" if kind == "Application" else "labels"]
        )
    known = world.kube.get("v1", "ConfigMap", NS, "argocd-ssh-known-hosts-cm")["data"]["ssh_known_hosts"]
    assert known.endswith(f"127.0.0.1 {sandbox_customer.GIT_HOST_KEY}\n") and "github.com" in known
    notifications = world.kube.get("v1", "ConfigMap", NS, argocd.NOTIFICATIONS_CM)["data"]
    assert notifications == argocd.notifications("alerts-kuvaq", world.slack.url.rstrip("/") + "/api/")
    assert "{{.app.metadata.name}}" in notifications["template.app-health-degraded"]
    token = argocd.secret_data(world.kube.get("v1", "Secret", NS, argocd.NOTIFICATIONS_SECRET))
    assert token == {"slack-token": sandbox_customer.SLACK_TOKEN}
    assert world.kube.get("v1", "Secret", NS, INITIAL_ADMIN) is None
    assert done.leaks == []
    shown = json.dumps([str(e) for e in done.reporter.events] + [planned.to_json(), result.plan.to_json()])
    assert secrets_in(shown + state_text(world), [key, *key.splitlines()[1:-1]]) == []

    world.reset_logs()
    again = run(world, STEPS)
    assert again.result.status == "up-to-date" and world.writes() == 0 and again.scans == 0
    # The manifest's cluster-scoped objects are read with one label-selected list per kind, not one by one.
    cluster_scoped = re.compile(r"/(customresourcedefinitions|clusterroles|clusterrolebindings)/")
    one_by_one = [c.path for c in world.kube.log.calls if c.method == "GET" and cluster_scoped.search(c.path)]
    assert one_by_one == []

    # Cache hit: the manifest source may disappear, the cached copy is used.
    Path(world.argocd_manifest.removeprefix("file://")).unlink()
    assert run(world, STEPS).result.status == "up-to-date"

    gone = destroy(world, STEPS, dry_run=True).results[0].plan
    assert gone is not None
    targets = [c.target for c in gone.changes]
    assert targets[:4] == [
        "Application argocd/kuvaq-root",
        "AppProject argocd/kuvaq",
        f"Secret argocd/{REPO_SECRET}",
        f"Secret argocd/{KIT_CREDS}",
    ]
    deleted = [c.target for c in gone.changes if c.action is Action.DELETE]
    assert deleted[-1] == "CustomResourceDefinition applications.argoproj.io"
    # The shared objects stay for the other steps; only the keys the install set leave them.
    assert "Secret argocd/argocd-secret" not in deleted and "ConfigMap argocd/argocd-cm" not in deleted
    assert [c.target for c in gone.changes if c.action is Action.UPDATE] == ["ConfigMap argocd/argocd-cm"]
    assert world.kube.log.writes == []

    # A new version is seen as outdated images without applying anything.
    newer = world.dir / "manifests" / "install-v3.3.15.yaml"
    newer.write_text(argocd_manifest.text().replace(f"argocd:{VERSION}", "argocd:v3.3.15"))
    world.customer(argocd={"version": "v3.3.15", "install_url": newer.as_uri(), "sha256": None})
    upgrade = run(world, STEPS, dry_run=True).result.plan
    assert upgrade is not None
    [change] = upgrade.changes
    assert change.target == f"Argo CD {VERSION} -> v3.3.15 in argocd"
    assert "Deployment/argocd-server (" in change.diff and f"argocd:{VERSION})" in change.diff
    assert world.kube.log.writes == []


def test_sha256_mismatch_names_both_digests(world: World) -> None:
    world.customer(argocd={"sha256": "0" * 64})
    result = run(world, STEPS).result
    assert result.status == "failed"
    digest = argocd_manifest.SHA256
    assert "argocd.sha256" in (result.message or "") and digest in (result.message or "")
    assert "0" * 64 in (result.message or "")
    assert world.kube.log.writes == []


@pytest.fixture
def http_manifest() -> Iterator[tuple[str, list[str]]]:
    body = argocd_manifest.text().encode()
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3.3.0/manifests/install.yaml", hits
    finally:
        server.shutdown()
        server.server_close()


def test_http_manifest_is_downloaded_once(world: World, http_manifest: tuple[str, list[str]]) -> None:
    url, hits = http_manifest
    world.customer(argocd={"install_url": url, "sha256": argocd_manifest.SHA256})
    for _ in range(2):
        planned = run(world, STEPS, dry_run=True).result
        assert planned.status == "changed" and planned.plan is not None
        assert planned.plan.changes[0].summary == f"server-side apply 59 objects from {url}"
    assert hits == ["/v3.3.0/manifests/install.yaml"]
    assert world.kube.log.writes == []


def test_enterprise_host_without_its_ssh_host_keys_is_refused(world: World) -> None:
    """Argo CD checks every SSH host key and knows only public hosts (argocd-ssh-known-hosts-cm)."""
    world.customer(github={"ssh_known_hosts": []})
    result = run(world, STEPS, dry_run=True).result
    assert result.status == "failed"
    assert "github.ssh_known_hosts" in (result.message or "") and "ssh-keyscan 127.0.0.1" in (
        result.message or ""
    )
    assert world.kube.log.writes == []


def _plural(kind: str) -> str:
    """A kind's resource name in its REST path: lower case, plural (NetworkPolicy → networkpolicies)."""
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


Written = tuple[str, str]
"""A write to the Kubernetes API as (resource, name): ``("secrets", "repo-kuvaq-infra")``."""


def _written(world: World) -> list[tuple[str, Written]]:
    return [(method, (resource, name)) for method, resource, name in kube_writes(world)]


def _implied(op: object) -> tuple[set[Written], set[Written]]:
    """What one planned operation writes to the Kubernetes API: (must, may).

    Server-side apply of an object already as wanted stores nothing, so an operation applying
    many objects must write the ones the plan saw missing or outdated and may write the rest;
    every other operation writes exactly its own object (a Delete is checked as a DELETE).
    """
    match op:
        case install.ApplyManifest():
            every = {(_plural(o["kind"]), o["metadata"]["name"]) for o in op.objects}
            drifted = {
                (_plural(kind), name) for kind, name in (r.split("/") for r in op.missing + op.outdated)
            }
            return drifted, every
        case install.ApplyNotifications():
            return set(), {(_plural(o["kind"]), o["metadata"]["name"]) for o in op.objects}
        case install.ApplyRepoSecret():
            return {("secrets", REPO_SECRET)}, {("secrets", REPO_SECRET)}
        case install.ApplyKitCreds():
            return {("secrets", KIT_CREDS)}, {("secrets", KIT_CREDS)}
        case install.ApplyRecord(doc=dict() as doc):
            one = {(_plural(doc["kind"]), doc["metadata"]["name"])}
            return one, one
        case install.Delete():
            one = {(_plural(op.ref.kind), op.ref.name)}
            return one, one
        case install.WaitForWorkloads():
            return set(), set()
    raise AssertionError(f"no writes known for {op!r}")


def _drift(world: World, start: str) -> None:
    """Bring an installed customer into ``start`` by hand (as someone with kubectl would)."""
    kube = KubeClient(str(world.kube.kubeconfig_path), "sandbox")
    if start == "workload image outdated":
        live = kube.get("apps/v1", "Deployment", NS, "argocd-server")
        assert live is not None
        live["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/argoproj/argocd:v3.3.13"
        meta = {"name": "argocd-server", "namespace": NS}
        kube.apply(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": live["spec"]}, "kubectl"
        )
    elif start == "repo Secret drifted":
        kube.apply(argocd.secret(REPO_SECRET, NS, {"url": argocd.b64("git@elsewhere:x/y.git")}), "kubectl")
    elif start == "notifications drifted":
        data = {"service.slack": "token: $slack-token\n"}
        kube.apply(argocd.config_map(argocd.NOTIFICATIONS_CM, NS, data), "kubectl")
    elif start == "initial admin Secret back":
        world.kube.seed(argocd.secret(INITIAL_ADMIN, NS, {"password": argocd.b64("initial-admin-pw-123")}))
    else:
        raise AssertionError(start)


def _apply_is_the_plan(world: World, start: str) -> list[Change]:
    """Plan, apply, and check the Kubernetes writes against the plan's operations; re-plan is empty."""
    step = ArgocdInstall()
    ctx, plan = apply_from(world, step, start)
    written = _written(world)
    implied = [_implied(c.payload) for c in plan.changes]
    objects = [w for _, w in written]
    assert len(objects) == len(set(objects)), (start, "an object written twice", written)
    assert set(objects) <= set().union(*(may for _, may in implied)), (start, "a write the plan did not list")
    for change, (must, _) in zip(plan.changes, implied, strict=True):
        assert must <= set(objects), (start, change.target, must - set(objects))
    # The deletions are the plan's, in its order, and come after everything it applies.
    deleted = [
        w
        for c, (must, _) in zip(plan.changes, implied, strict=True)
        if isinstance(c.payload, install.Delete)
        for w in must
    ]
    assert [w for m, w in written if m == "DELETE"] == deleted, start
    methods = [m for m, _ in written]
    assert methods == sorted(methods, key=lambda m: m == "DELETE"), start
    assert world.writes() == len(written), (start, "writes beyond the cluster")  # no Vault, GitHub, Slack
    step.verify(ctx)
    assert step.plan(ctx).empty, start
    return list(plan.changes)


def test_apply_performs_exactly_the_planned_operations(world: World) -> None:
    """From each starting state, apply writes what its plan's operations imply, and only that.

    The states follow one another in one world (an install costs a playbook run; each state
    starts from the previous one converged): fresh, then by-hand drifts of an installed customer.
    """
    world.use_light_manifest()  # the subject is apply against plan, not the CRD schemas
    seed_argocd_users(world)
    world.customer(argocd={"wait_timeout": 120})
    assert run(world, STEPS[:2]).result.status == "done"
    fresh = _apply_is_the_plan(world, "fresh")
    assert [type(c.payload) for c in fresh] == [
        install.ApplyManifest,
        install.ApplyRepoSecret,
        install.ApplyKitCreds,
        install.ApplyRecord,
        install.ApplyRecord,
        install.Delete,
    ]
    for start, payloads, touched in (
        ("workload image outdated", [install.ApplyManifest], [("deployments", "argocd-server")]),
        ("repo Secret drifted", [install.ApplyRepoSecret], [("secrets", REPO_SECRET)]),
        ("notifications drifted", [install.ApplyNotifications], [("configmaps", argocd.NOTIFICATIONS_CM)]),
        ("initial admin Secret back", [install.Delete], [("secrets", INITIAL_ADMIN)]),
    ):
        _drift(world, start)
        changes = _apply_is_the_plan(world, start)
        assert [type(c.payload) for c in changes] == payloads, start
        assert [w for _, w in _written(world)] == touched, start
