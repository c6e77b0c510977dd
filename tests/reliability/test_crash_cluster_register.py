"""Crash anywhere in cluster-register (hub mode) and end where an uninterrupted registration ends.

A hub world costs one more Kubernetes emulator; the registration alone is run
(``--only cluster-register``: it requires no other step). Every crash point is
visited in one chain: each run is SIGKILLed, with everything it started, right
after its first write, so the next run's first write is the next write the
registration has left to make. The writes inside one batch to a cluster (the
ServiceAccount, ClusterRole, ClusterRoleBinding and token Secret go in one
playbook) are crashed after at its first and its last write only: after any write
between them the batch is partly applied, as after its first, and the next run
applies it whole again, so they are the same crash point twice (``batch_middles``).
When a run finally completes, the end state must
be the clean run's (same objects in both clusters, same Vault paths), the token
must be the same in the token Secret, Vault and the hub's cluster Secret, a
further run must make no write, and no secret may be left anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bootstrap.clients import argocd
from steps import cluster_register
from tests.fixtures.vault import OpenBao
from tests.fixtures.world import World, open_world
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

RUN = ("run", "customer.yaml", "--only", "cluster-register", "-p", "1")
MAX_RUNS = 30


def snapshot(world: World) -> dict[str, Any]:
    """The registration's footprint: our objects in both clusters, the hub Secret's labels, Vault."""
    ours = [
        f"{o['kind']} {o['metadata'].get('namespace') or '-'}/{o['metadata']['name']}"
        for o in world.kube.objects()
        if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "gitops-bootstrap"
    ]
    hub_secrets = {
        o["metadata"]["name"]: (o["metadata"].get("labels"), sorted(o.get("data") or {}))
        for o in world.hub.objects("Secret")
        if (o["metadata"].get("labels") or {}).get("argocd.argoproj.io/secret-type") == "cluster"
    }
    vault = {p: (sorted(s.data), dict(s.custom_metadata)) for p, s in harness.vault_tree(world).items()}
    return {"customer": sorted(ours), "hub": hub_secrets, "vault": vault}


def invariants(world: World) -> list[str]:
    problems = []
    if (world.state()["steps"].get("cluster-register") or {}).get("status") != "done":
        problems.append("checkpoint: cluster-register is not done")
    tokens = [
        o["metadata"]["name"]
        for o in world.kube.objects("Secret")
        if o.get("type") == cluster_register.TOKEN_TYPE
    ]
    if len(tokens) != 1:
        problems.append(f"token Secrets {tokens}, expected exactly one")
        return problems
    live = argocd.secret_data(world.kube.get("v1", "Secret", cluster_register.NAMESPACE, tokens[0]))["token"]
    stored = world.vault.client.read(f"{world.vault.prefix}/kuvaq/cluster-token") or {}
    hub_secret = world.hub.get("v1", "Secret", "argocd", "cluster-kuvaq")
    registered = json.loads(argocd.secret_data(hub_secret)["config"])["bearerToken"] if hub_secret else None
    if not (live == stored.get("token") == registered):
        problems.append("the token differs between the token Secret, Vault and the hub's cluster Secret")
    return problems


def batch_middles(writes: list[str]) -> set[str]:
    """The writes strictly inside a run of consecutive writes to one Kubernetes API (one playbook's batch).

    Crashing after one of them leaves the same state class as crashing after the batch's first
    write: some of the batch applied, its last object not; the next run re-applies the batch.
    """
    middles: set[str] = set()
    start = 0
    for end in range(1, len(writes) + 1):
        if end == len(writes) or writes[end].split()[0] != writes[start].split()[0]:
            if writes[start].startswith("kube "):
                middles |= set(writes[start + 1 : end - 1])
            start = end
    return middles


def test_crash_at_every_write_of_cluster_register_converges(
    openbao: OpenBao, tmp_path: Path, figures: Figures
) -> None:
    with open_world(tmp_path / "clean", openbao, hub=True) as world:
        clean = harness.run_cli(world, *RUN)
        assert clean.returncode == 0, clean.describe()
        assert invariants(world) == []
        expected = snapshot(world)
    middles = batch_middles(clean.writes)
    # The ClusterRole and its binding, between the ServiceAccount and the token Secret.
    assert len(middles) == 2, clean.writes
    with open_world(tmp_path / "crashed", openbao, hub=True) as world:
        runs: list[harness.CliRun] = []
        crashes: list[str] = []
        while len(runs) < MAX_RUNS:
            run = harness.run_cli(world, *RUN, on_write=lambda _n, write: write not in middles)
            runs.append(run)
            if run.killed_at is None:
                break
            crashes.append(run.killed_at)
        finished = runs[-1]
        assert finished.returncode == 0 and finished.killed_at is None, finished.describe()
        # Every write of the clean run was a crash point once (the chain walks them in order), except
        # the middles of a batch (see batch_middles) and a Vault metadata write: it follows its data
        # write at once (KV v2 has no atomic data + metadata), so the kill after the data write may or
        # may not land before it.
        points = [w for w in clean.writes if "/v1/secret/metadata/" not in w and w not in middles]
        assert not middles & set(crashes), crashes
        assert len(crashes) >= len(points), "\n".join(["crashes:", *crashes, "clean:", *clean.writes])
        problems = invariants(world) + harness.diff(expected, snapshot(world))
        further = harness.run_cli(world, *RUN)
        runs.append(further)
        if further.returncode != 0 or further.writes:
            problems.append(f"a further run exited {further.returncode} with writes {further.writes}")
        found = hygiene.scan(world, hygiene.cli_texts(runs))
        for point in crashes:
            figures.crash.add(not problems and not found, f"cluster-register: {point}")
        assert problems == [], problems
        assert found == [], found
