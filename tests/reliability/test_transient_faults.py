"""Transient faults are retried away; persistent ones stop with a way forward; auth errors are not retried.

1. The whole workflow runs with 429s (Retry-After 0 or 1), 5xx answers,
   connection resets and a timeout injected into the calls of every service
   (GitHub, Slack, OpsGenie, the Kubernetes API, Vault). It must exit 0 and
   leave exactly the end state of a clean run. Each fault that fired counts
   towards "transient faults recovered X/X".
2. The same kinds of fault, made persistent on one service at a time, stop
   the run: exit 1, a message that says what to do, and a checkpoint in which
   the failed step is ``failed`` with that error and every earlier step ``done``.
3. 401/403 are not retried: the call log shows exactly one attempt and the
   message names the token, scope or permission.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.httpemu import Fault
from tests.fixtures.world import World
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

VAULT_DATA = r"/v1/secret/data/"


def _transient(world: World) -> list[tuple[str, Fault]]:
    """A few faults on every service, at call numbers spread over the run."""
    rules: list[tuple[str, Fault]] = []
    for name, server in (
        ("github", world.github),
        ("slack", world.slack),
        ("opsgenie", world.opsgenie),
        ("kube", world.kube),
        ("vault", world.vault_proxy),
    ):
        # Sporadic, as transient faults are: far enough apart that one step's bounded retries
        # are not all spent on one burst (the engine tries a step 3 times; the Kubernetes client
        # leaves 429/5xx to it). Services with few calls see only the first faults.
        for fault in (
            Fault("ratelimit", nth=2, retry_after=0),
            Fault("status", nth=12, status=503),
            Fault("reset", nth=30),
            Fault("ratelimit", nth=60, retry_after=1),
            Fault("status", nth=100, status=502),
        ):
            rules.append((name, server.faults.add(fault)))
    # Vault's client gives up on a call after 10 s: one read answered later than that.
    rules.append(("vault", world.vault_proxy.faults.add(Fault("timeout", method="GET", nth=33, seconds=11))))
    return rules


def test_transient_faults_everywhere_are_recovered(
    world: World, clean_reference: harness.Reference, figures: Figures
) -> None:
    world.use_light_manifest()  # as the reference run's: same objects and calls, less CPU
    rules = _transient(world)
    run = harness.run_cli(world, *harness.RUN)
    fired = [(name, f) for name, f in rules if f.fired]
    for server in world.servers:
        server.faults.clear()
    ok = run.returncode == 0
    problems = [] if ok else [f"exit {run.returncode}: {run.stderr[-2000:]}"]
    if ok:
        problems += harness.check_invariants(world)
        problems += harness.diff(clean_reference.snapshot, harness.snapshot(world))
    found = [str(f) for f in hygiene.scan(world, hygiene.cli_texts([run]))]
    with figures.lock:
        for name, f in fired:
            figures.faults.add(
                not problems, f"{name} {f.kind} {f.status if f.kind == 'status' else ''} #{f.nth}"
            )
        figures.scans += 1
        figures.secrets_found += len(found)
    assert not problems, "\n".join(problems)
    assert found == []
    assert {name for name, _ in fired} == {"github", "slack", "opsgenie", "kube", "vault"}, fired


PERSISTENT = [
    # service, fault, the step that fails first, words the message must contain
    ("github", Fault("status", status=503), "argocd-dir", "run the same command again"),
    ("vault", Fault("reset"), "deploy-key", "run the same command again"),
    ("kube", Fault("ratelimit", retry_after=0), "argocd-users", "run the same command again"),
    ("slack", Fault("status", status=500), "slack-channel", "run the same command again"),
    ("opsgenie", Fault("ratelimit", retry_after=0), "alertmanager-opsgenie", "run the same command again"),
]


def _server(world: World, name: str) -> Any:
    return {
        "github": world.github,
        "slack": world.slack,
        "opsgenie": world.opsgenie,
        "kube": world.kube,
        "vault": world.vault_proxy,
    }[name]


def test_persistent_faults_stop_with_a_way_forward(onboarded_world: World) -> None:
    world = onboarded_world
    harness.settle(world)
    order = list(harness.STEP_IDS)
    for name, fault, step, advice in PERSISTENT:
        server = _server(world, name)
        server.faults.add(fault)
        try:
            # The steps' own handling is under test here: the preflight would stop the run first.
            run = harness.run_cli(world, *harness.RUN, "--skip-checks")
        finally:
            server.faults.clear()
        assert run.returncode == 1, f"{name} {fault.kind}: {run.describe()}"
        assert advice in run.stderr and "Traceback" not in run.stderr, run.stderr
        steps = world.state()["steps"]
        assert steps[step]["status"] == "failed" and steps[step]["error"], (name, steps[step])
        assert steps[step]["error"] in run.stderr or steps[step]["error"][:60] in run.stderr
        earlier = order[: order.index(step)]
        assert all(steps[s]["status"] == "done" for s in earlier), {s: steps[s]["status"] for s in earlier}
        healed = harness.run_cli(world, *harness.RUN)
        assert healed.returncode == 0, healed.describe()


AUTH = [
    # service, method, path regex, status, the step that meets it, words the message must contain
    ("github", "GET", r"/repos/kuvaq/infra/keys$", 401, "deploy-key", "github.token"),
    ("opsgenie", "GET", r"/v2/integrations$", 403, "alertmanager-opsgenie", "alerting.api_key"),
    ("vault", "GET", VAULT_DATA + r".*/deploy-key$", 403, "deploy-key", "token needs read on secret/data"),
    ("kube", "GET", r"/configmaps/argocd-cm$", 403, "argocd-users", "needs permission to get configmaps"),
]


def test_auth_errors_are_not_retried(onboarded_world: World) -> None:
    world = onboarded_world
    harness.settle(world)
    for service, method, path, status, step, words in AUTH:
        server = _server(world, service)
        world.reset_logs()
        server.faults.add(Fault("status", method=method, path=path, status=status))
        try:
            run = harness.run_cli(world, *harness.RUN, "--skip-checks")
        finally:
            server.faults.clear()
        assert run.returncode == 1, run.describe()
        attempts = [c for c in server.log.calls if c.method == method and re.search(path, c.path)]
        assert len(attempts) == 1, f"{service} {status} was retried: {attempts}"
        assert world.state()["steps"][step]["status"] == "failed"
        assert words.lower() in run.stderr.lower(), run.stderr
        harness.settle(world)
