"""The OpsGenie → JSM switch-over, killed after a write, converges on the next run.

With the state frozen at the kill, the Secret in the cluster must still
deliver to an enabled integration whose heartbeat exists (alerts reach one
provider at every moment); a plain run afterwards must finish the switch-over
with nothing of OpsGenie left and exactly one JSM integration, whose key is
Vault's and the Secret's. In-process (tests/steps/switch_over.py) rather than
through the subprocess harness, and the OpsGenie starting point is built
without Ansible, so each crash point costs about one Ansible run.

By default the three writes that matter most are crashed after (the new JSM
integration before its key is stored; the Secret rolled to JSM; the OpsGenie
integration deleted but its Vault record not); ``BOOTSTRAP_CRASH_STRIDE=n``
(``.ci/reliability`` uses 1) crashes after every n-th write of a reference run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootstrap.clients import budget
from tests.fixtures.vault import OpenBao
from tests.fixtures.world import open_world
from tests.reliability.figures import Figures
from tests.steps.switch_over import STEPS, Killer, delivery_problems, leftovers, opsgenie_baseline

pytestmark = pytest.mark.reliability

DEFAULT_POINTS = (
    r"jsm-emulator POST .*/v1/integrations$",
    r"kube.* /api/v1/namespaces/monitoring/secrets/",
    r"opsgenie-emulator DELETE /v2/integrations/",
)


def _crash_and_converge(directory: Path, openbao: OpenBao, killer: Killer) -> list[str]:
    with open_world(directory, openbao) as world:
        opsgenie_baseline(world)
        killer.arm(world)
        world.run(steps=STEPS)
        killer.disarm(world)
        during = delivery_problems(world)
        summary, _, _ = world.run(steps=STEPS)
        result = summary.results[-1]
        after = leftovers(world) if result.status in ("done", "up-to-date") else [str(result.message)]
        where = killer.writes[-1] if killer.writes else "nothing"
        return [f"killed after write {len(killer.writes)} ({where}): {p}" for p in during + after]


def test_switch_over_converges_after_a_crash(
    tmp_path: Path, openbao: OpenBao, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    for service in ("jsm", "opsgenie"):  # the process-wide budgets would only pace this test
        monkeypatch.setitem(budget._budgets, service, budget.Budget(0))
    stride = os.environ.get("BOOTSTRAP_CRASH_STRIDE")
    failures: list[str] = []

    def crash(directory: Path, killer: Killer) -> None:
        problems = _crash_and_converge(directory, openbao, killer)
        with figures.lock:
            figures.crash.add(not problems, "; ".join(problems))
        failures.extend(problems)

    if stride is None:
        for n, pattern in enumerate(DEFAULT_POINTS):
            killer = Killer(at=pattern)
            crash(tmp_path / f"p{n}", killer)
            assert killer.flag.is_set(), f"no write matched {pattern}"
    else:
        with open_world(tmp_path / "reference", openbao) as world:
            opsgenie_baseline(world)
            counter = Killer()
            counter.arm(world)
            world.run(steps=STEPS)
            counter.disarm(world)
            assert leftovers(world) == []
            total = len(counter.writes)
        for k in range(1, total + 1, max(1, int(stride))):
            crash(tmp_path / f"k{k}", Killer(after=k))
    assert not failures, "\n".join(failures)
