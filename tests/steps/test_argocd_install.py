"""argocd-install against the Kubernetes emulator (through real Ansible) and the real OpenBao.

argocd-dir and deploy-key run for real (GitHub emulator, Vault). argocd-users
and github-oauth are stood in for by `Prerequisite`s (their own tests cover
them) with the admin password hash seeded where argocd-users puts it: each
Ansible run costs seconds, and this file runs exactly two.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bootstrap.clients import argocd
from bootstrap.errors import RetryableError
from bootstrap.step import Action, Context, Outputs, Plan, Step, StepId
from sandbox import argocd_manifest
from steps.argocd_dir import ArgocdDir
from steps.argocd_install import DIGEST_ANNOTATION, INITIAL_ADMIN, VERSION_ANNOTATION, ArgocdInstall
from steps.deploy_key import DeployKey
from tests.fixtures.world import World
from tests.steps.cluster_run import destroy, run, secrets_in, state_text

NS = "argocd"
REPO_SECRET = "repo-kuvaq-infra"


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
        (Action.UPDATE, "Argo CD v3.3.0 in argocd"),
        (Action.CREATE, f"Secret argocd/{REPO_SECRET}"),
        (Action.CREATE, "Application argocd/kuvaq-root"),
        (Action.DELETE, f"Secret argocd/{INITIAL_ADMIN}"),
    ]
    assert "missing: CustomResourceDefinition/applications.argoproj.io" in planned.changes[0].diff
    assert "+ sshPrivateKey: ********" in planned.changes[1].diff
    assert world.kube.log.writes == []
    assert run(world, STEPS[:2]).result.status == "done"  # the infra repo's argocd/ and the deploy key

    # First attempt, called directly (the engine would retry it): one workload is held back.
    world.kube.hold(NS, "Deployment", "argocd-repo-server")
    sess = world.session()
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
    digest = hashlib.sha256(argocd_manifest.render("v3.3.0").encode()).hexdigest()
    assert result.outputs == {"version": "v3.3.0", "manifest_sha256": digest, "root_app": "argocd/kuvaq-root"}
    annotations = world.kube.get("v1", "Namespace", None, NS)["metadata"]["annotations"]
    assert annotations == {VERSION_ANNOTATION: "v3.3.0", DIGEST_ANNOTATION: digest}
    for name in argocd_manifest.DEPLOYMENTS:
        deployment = world.kube.get("apps/v1", "Deployment", NS, name)
        assert deployment["metadata"]["namespace"] == NS
        assert deployment["status"]["availableReplicas"] == 1
    key = private_key(world)
    repo = world.kube.get("v1", "Secret", NS, REPO_SECRET)
    assert repo["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "repository"}
    assert argocd.secret_data(repo) == {
        "type": "git",
        "url": "git@github.com:kuvaq/infra.git",
        "sshPrivateKey": key,
    }
    app = world.kube.get("argoproj.io/v1alpha1", "Application", NS, "kuvaq-root")
    assert app["spec"]["source"] == {
        "repoURL": "git@github.com:kuvaq/infra.git",
        "targetRevision": "main",
        "path": "argocd",
    }
    assert app["spec"]["destination"]["server"] == "https://kubernetes.default.svc"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert world.kube.get("v1", "Secret", NS, INITIAL_ADMIN) is None
    assert done.leaks == []
    shown = json.dumps([str(e) for e in done.reporter.events] + [planned.to_json(), result.plan.to_json()])
    assert secrets_in(shown + state_text(world), [key, *key.splitlines()[1:-1]]) == []

    world.reset_logs()
    again = run(world, STEPS)
    assert again.result.status == "up-to-date" and world.writes() == 0 and again.scans == 0

    # Cache hit: the manifest source may disappear, the cached copy is used.
    Path(world.argocd_manifest.removeprefix("file://")).unlink()
    assert run(world, STEPS).result.status == "up-to-date"

    gone = destroy(world, STEPS, dry_run=True).results[0].plan
    assert gone is not None
    targets = [c.target for c in gone.changes]
    assert targets[:3] == [
        "Application argocd/kuvaq-root",
        f"Secret argocd/{REPO_SECRET}",
        "StatefulSet argocd/argocd-application-controller",
    ]
    assert targets[-1] == "CustomResourceDefinition applications.argoproj.io"
    assert "Secret argocd/argocd-secret" not in targets and "ConfigMap argocd/argocd-cm" not in targets
    assert world.kube.log.writes == []

    # A new version is seen as outdated images without applying anything.
    url, _ = argocd_manifest.write(world.dir / "manifests", "v3.3.1")
    world.customer(argocd={"version": "v3.3.1", "install_url": url})
    upgrade = run(world, STEPS, dry_run=True).result.plan
    assert upgrade is not None
    [change] = upgrade.changes
    assert change.target == "Argo CD v3.3.0 -> v3.3.1 in argocd"
    assert "outdated: Deployment/argocd-server (quay.io/argoproj/argocd:v3.3.0)" in change.diff
    assert world.kube.log.writes == []


def test_sha256_mismatch_names_both_digests(world: World) -> None:
    world.customer(argocd={"sha256": "0" * 64})
    result = run(world, STEPS).result
    assert result.status == "failed"
    digest = hashlib.sha256(argocd_manifest.render("v3.3.0").encode()).hexdigest()
    assert "argocd.sha256" in (result.message or "") and digest in (result.message or "")
    assert "0" * 64 in (result.message or "")
    assert world.kube.log.writes == []


@pytest.fixture
def http_manifest() -> Iterator[tuple[str, list[str]]]:
    body = argocd_manifest.render("v3.3.0").encode()
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
    digest = hashlib.sha256(argocd_manifest.render("v3.3.0").encode()).hexdigest()
    world.customer(argocd={"install_url": url, "sha256": digest})
    for _ in range(2):
        planned = run(world, STEPS, dry_run=True).result
        assert planned.status == "planned" and planned.plan is not None
        assert planned.plan.changes[0].summary == f"server-side apply 14 objects from {url}"
    assert hits == ["/v3.3.0/manifests/install.yaml"]
    assert world.kube.log.writes == []
