"""Killed or interrupted at any wall-clock moment, the tool leaves no process and no writer behind.

What a CI timeout or a closed terminal does is signal the tool's *process group*;
nothing reaches what the tool started in other sessions (ansible-runner starts
ansible-playbook through pexpect, in a new session, and ansible's workers each
start another). So, at random moments drawn over the span of a clean run:

- ``SIGKILL`` to the group: within a grace period no process of the run may be
  left (``harness.run_cli_signalled`` follows every process it saw below the
  tool, and anything mentioning the run's private dirs), and once they are gone
  nothing may write to any service; the run is then resumed to the end, which
  must converge to the clean run's end state with no secret left anywhere;
- ``SIGINT`` to the group (Ctrl-C in a terminal), with the default concurrency:
  exit 130 with running steps recorded ``interrupted``, no traceback, no line
  about a step after "run interrupted", no advice to "fix the cause", no
  process left; the seconds from Ctrl-C to exit go into the figures (median;
  ``BOOTSTRAP_STRICT_TIMING=1``, as ``.ci/reliability`` sets, also asserts ≤ 2 s).

Meanwhile a watcher scans the world's files (the Ansible private dirs included)
for every secret over and over, so a secret that is on disk only for a moment
is found too. ``BOOTSTRAP_KILLS`` / ``BOOTSTRAP_INTERRUPTS`` set how many signals
(the default suite sends two of each); ``BOOTSTRAP_SEED`` replays a sequence.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics

import pytest

from tests.fixtures.vault import OpenBao
from tests.fixtures.world import open_world
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

CTRL_C_BUDGET = 2.0


def _rng() -> tuple[random.Random, int]:
    seed = int(os.environ.get("BOOTSTRAP_SEED") or random.SystemRandom().randrange(1 << 30))
    return random.Random(seed), seed


def test_process_group_kills_at_random_moments_leave_no_orphan_and_converge(
    clean_reference: harness.Reference,
    openbao: OpenBao,
    tmp_path_factory: pytest.TempPathFactory,
    figures: Figures,
) -> None:
    rng, seed = _rng()
    kills = int(os.environ.get("BOOTSTRAP_KILLS") or 2)
    span = max(clean_reference.seconds, 5.0)
    problems: list[str] = []
    with (
        open_world(tmp_path_factory.mktemp("pgkill"), openbao, light_manifest=True) as world,
        hygiene.watching(world) as watch,
    ):
        runs: list[harness.CliRun] = []
        landed = 0
        for i in range(kills):
            # After a number of the run's writes (a first run makes ~98): inside some step's apply,
            # however fast the run; a time may come after a short run has finished.
            after, at_write = span + 300.0, rng.randint(1, 60 if i == 0 else 25)
            killed = harness.run_cli_signalled(world, *harness.RUN, after=after, at_write=at_write)
            runs.append(killed.run)
            if not killed.signalled:
                continue  # the resumed run finished before its moment: nothing was left to kill
            landed += 1
            with figures.lock:
                figures.kills += 1
                figures.orphans += len(killed.survivors)
                figures.late_writes += len(killed.late_writes)
            where = f"kill {i + 1} after write {at_write} (seed {seed})"
            problems += [f"{where}: survivor {s}" for s in killed.survivors]
            problems += [f"{where}: write after every process was gone: {w}" for w in killed.late_writes]
        problems += harness.resume(world, clean_reference, runs)
        found = [str(f) for f in hygiene.scan(world, hygiene.cli_texts(runs))]
    with figures.lock:
        figures.scans += 1
        figures.secrets_found += len(found)
        figures.live_scans += watch.scans
        figures.live_scans_in_playbooks += watch.scans_during_playbooks
        figures.live_secrets += len(watch.findings)
    assert problems == []
    assert landed or kills == 0, f"no kill landed (seed {seed})"
    assert found == [] and sorted(watch.findings) == []
    assert watch.scans_during_playbooks > 0 or kills == 0, "the watcher never saw a playbook running"


def test_ctrl_c_stops_promptly_and_records_interrupted_steps(
    openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory, figures: Figures
) -> None:
    rng, seed = _rng()
    interrupts = int(os.environ.get("BOOTSTRAP_INTERRUPTS") or 2)
    run_args = ("run", "customer.yaml")  # the default concurrency: steps in threads
    seconds: list[float] = []
    with open_world(tmp_path_factory.mktemp("ctrlc"), openbao, light_manifest=True) as world:
        for i in range(interrupts):
            state_file = world.dir / ".bootstrap" / "state.json"
            before = world.state() if state_file.exists() else None
            if i == 0:
                # The first lands by time: loading, the checks, planning or an early apply.
                after, at_write = rng.uniform(0.5, 3.0), None
                when = f"at {after:.1f}s"
            else:
                # The others after a number of writes: inside some step's apply, however fast the
                # run (a light manifest on a quiet machine finishes a whole run in seconds).
                after, at_write = 300.0, rng.randint(1, 25)
                when = f"after write {at_write}"
            got = harness.run_cli_signalled(
                world, *run_args, after=after, sig=signal.SIGINT, at_write=at_write
            )
            if not got.signalled:
                continue
            where = f"Ctrl-C {i + 1} {when} (seed {seed})"
            run = got.run
            assert run.returncode == 130, f"{where}: {run.describe()}"
            seconds.append(got.exit_seconds)
            assert got.survivors == [], f"{where}: {got.survivors}"
            assert got.late_writes == [], f"{where}: {got.late_writes}"
            assert "Traceback" not in run.stderr and "fix the cause" not in run.stderr, run.describe()
            lines = run.stderr.splitlines()
            started = any(re.match(r"run customer .*step\(s\)", ln) for ln in lines)
            if "before any write" in run.stderr or not started:
                # Ctrl-C while loading or checking: no step started, so nothing may have been recorded.
                assert "interrupted" in run.stderr, f"{where}: nothing said\n{run.stderr[-3000:]}"
                after_signal = world.state() if state_file.exists() else None
                assert after_signal == before, f"{where}: the checkpoint changed before any step started"
                continue
            marks = [n for n, line in enumerate(lines) if "run interrupted" in line]
            assert marks, f"{where}: no 'run interrupted' line\n{run.stderr[-3000:]}"
            after_mark = lines[marks[0] + 1 :]
            about_steps = [ln for ln in after_mark if any(sid in ln for sid in harness.STEP_IDS)]
            assert about_steps == [], f"{where}: step output after 'run interrupted': {about_steps}"
            statuses = {sid: rec["status"] for sid, rec in world.state()["steps"].items()}
            assert "running" not in statuses.values(), f"{where}: {statuses}"
            assert "interrupted" in statuses.values(), f"{where}: {statuses}"
            # An interrupted step may have no intents: Ctrl-C can land while its apply re-observes,
            # before its first announced side effect. What may exist is proven by the resume below.
        harness.settle(world)
        assert harness.check_invariants(world) == []
    assert seconds, f"no Ctrl-C landed while the run was busy (seed {seed})"
    with figures.lock:
        figures.ctrl_c_seconds += seconds
    if os.environ.get("BOOTSTRAP_STRICT_TIMING") and seconds:
        assert statistics.median(seconds) <= CTRL_C_BUDGET, seconds
