"""``bootstrap destroy``: everything ours goes, in reverse order, resumably, and only when asked.

After a full run (in the shared onboarded world, conftest.py): ``destroy --dry-run``
lists what would go (exit 2) and changes nothing; ``destroy --yes`` killed
part-way and run again removes every resource of the customer
(``harness.leftovers``: deploy key, argocd/ files — removed by a new commit —,
the Slack channel archived, the OpsGenie integration, Vault paths including the
SSO app record, the Alertmanager Secret, Argo CD and its root Application, the
users' keys in the shared Argo CD objects — removed, not merely disowned); one
more destroy is a no-op. (``destroy`` declined at a terminal, or refused without
``--yes`` and without one (exit 4), writing nothing, is held by the console
snapshots, tests/console/test_snapshots.py, on a whole onboarding too.)
"""

from __future__ import annotations

import pytest

from tests.fixtures.world import World
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

DESTROY = ("destroy", "customer.yaml", "--yes")
KILL_AT = 6
"""A write in the middle of destroy (past the Argo CD objects, before Vault is emptied)."""


@pytest.mark.spends_onboarded_world
def test_destroy_removes_everything_resumably(onboarded_world: World, figures: Figures) -> None:
    world = onboarded_world  # the reference run's world: onboarding it again would be one more full run
    run = harness.run_cli(world, *harness.RUN)  # settles it (a no-op when the last user left it converged)
    assert run.returncode == 0, run.describe()
    commits_before = len(world.github.repos[("kuvaq", "infra")].commits)
    secrets = hygiene.secrets_of(world)  # Vault is emptied below: collect what to look for now
    keys = harness.owned_data_keys(world)  # what our steps put into shared Argo CD objects
    assert keys, "no keys of ours in the cluster after a full run?"

    preview = harness.run_cli(world, "destroy", "customer.yaml", "--dry-run")
    assert preview.returncode == 2 and preview.writes == [], preview.describe()
    assert harness.leftovers(world), "nothing to destroy after a full run?"

    killed = harness.run_cli(world, *DESTROY, kill_after=KILL_AT)
    assert killed.killed_at is not None, killed.describe()
    done = harness.run_cli(world, *DESTROY)
    assert done.returncode == 0, done.describe()
    assert harness.leftovers(world) == []
    assert harness.remaining_keys(world, keys) == []  # gone, not merely disowned
    assert len(world.github.repos[("kuvaq", "infra")].commits) > commits_before  # removal is a new commit

    again = harness.run_cli(world, *DESTROY)
    assert again.returncode == 0 and again.writes == [], again.describe()
    idle = harness.run_cli(world, "destroy", "customer.yaml", "--dry-run")
    assert idle.returncode == 0 and idle.writes == [], idle.describe()

    found = [str(f) for f in hygiene.scan(world, hygiene.cli_texts([run, preview, killed, done]), secrets)]
    with figures.lock:
        figures.scans += 1
        figures.secrets_found += len(found)
    assert found == []
