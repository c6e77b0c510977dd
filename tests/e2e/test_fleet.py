"""A fleet run through the CLI: customers run side by side and one's failure stops no other.

Three customers seeded the way ``bootstrap sandbox up --customers N`` seeds them
(own infra repo, own channel and Vault path, derived from the name) run with
``--parallel 3``. The second one's Slack token is wrong: its slack-channel step
fails naming the problem, the two others complete, and the process exits with
the worst code (1). The steps are the two cheapest (no playbook), which is
enough to exercise the fleet runner and keeps the test fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sandbox import customer as sandbox_customer
from sandbox import seed
from tests.fixtures.world import World

NAMES = ("c001", "c002", "c003")
BROKEN = "c002"
STEPS = ("--only", "deploy-key", "--only", "slack-channel")


def _fleet(world: World) -> list[Path]:
    seed.seed_customers(world.github, list(NAMES))
    world.env["WRONG_SLACK_TOKEN"] = "xoxb-wrong-0000000000-bot"
    paths = []
    for name in NAMES:
        doc = sandbox_customer.document(world.endpoints, name=name, vault_prefix=world.vault.prefix)
        if name == BROKEN:
            doc["slack"]["token"] = "env:WRONG_SLACK_TOKEN"
        path = world.dir / "inventory" / name / "customer.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def test_one_customer_failing_does_not_stop_the_others(world: World) -> None:
    paths = _fleet(world)
    proc = world.cli("run", *map(str, paths), *STEPS, "--parallel", "3", "--output", "json")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 1
    outcomes = {c["customer"]: c for c in doc["customers"]}
    assert set(outcomes) == set(NAMES)
    for name in NAMES:
        if name == BROKEN:  # its preflight stops it before any step: nothing of it was written
            assert outcomes[name]["exit_code"] == 1
            assert outcomes[name]["summary"] is None
            assert "slack" in outcomes[name]["error"].lower() and "token" in outcomes[name]["error"].lower()
        else:
            steps = {s["id"]: s for s in outcomes[name]["summary"]["steps"]}
            assert steps["deploy-key"]["status"] == "done"
            assert outcomes[name]["exit_code"] == 0
            assert steps["slack-channel"]["status"] == "done"
            assert steps["slack-channel"]["outputs"]["channel_name"] == f"alerts-{name}"
    assert "xoxb-wrong" not in proc.stdout + proc.stderr

    # Each customer has its own checkpoint: the healthy ones now re-run as a no-op.
    world.reset_logs()
    again = world.cli("run", *map(str, paths[::2]), *STEPS, "--parallel", "3", "--output", "json")
    assert again.returncode == 0, again.stderr
    assert world.writes() == 0
