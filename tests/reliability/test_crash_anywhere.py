"""Crash anywhere, run again, and end where an uninterrupted run ends.

A clean run of the whole workflow (``bootstrap run customer.yaml -p 1``) counts
its N successful writes across GitHub, Slack, OpsGenie, the Kubernetes API and
Vault, attributing each to the step that was running (read from the
checkpoint at the moment of the write). A crashed run is SIGKILLed, with every
process it started, right after a chosen write; the same command run again
must exit 0 and leave the same end state as the clean run (same resources, no
duplicates, no orphans, the cross-service invariants of
``harness.check_invariants``), a further run must make no write, and no secret
may be left anywhere (``hygiene.scan``).

Two samplings:

- ``BOOTSTRAP_CRASH_STRIDE=n`` (``.ci/reliability`` uses 1): for every n-th k in
  1..N, a fresh world, a run killed after its k-th write, then a run to the end.
  Crash points run two at a time, each in its own world;
- unset (the default suite): one chain in one world — a run killed in the
  middle of the first step, the re-run killed in the middle of the second, and
  so on through every step, then a run to the end. Seven crash points for the
  price of about one run, so the default suite crashes inside every step in
  about two minutes.

Steps run sequentially (``-p 1``) so the k-th write is the same write in every
run: a failing crash point is reproduced by its k alone. Concurrency adds no
state a step can be left in (each step's own writes keep their order).
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.vault import OpenBao
from tests.fixtures.world import World, open_world
from tests.reliability import harness, hygiene
from tests.reliability.figures import Figures

RUN = harness.RUN
WORKERS = 2


@dataclass(frozen=True)
class Outcome:
    k: int
    write: str
    step: str
    problems: list[str]
    secrets: list[str]


def _stride() -> int | None:
    stride = os.environ.get("BOOTSTRAP_CRASH_STRIDE")
    return max(1, int(stride)) if stride else None


def _middles(ref: harness.Reference) -> dict[str, int]:
    """step → which of its writes is its middle one (1-based, counted within the step)."""
    counts: dict[str, int] = {}
    for step in ref.steps:
        counts[step] = counts.get(step, 0) + 1
    return {step: (n + 1) // 2 for step, n in counts.items() if step != "?"}


def _settle(world: World, ref: harness.Reference, runs: list[harness.CliRun]) -> tuple[list[str], list[str]]:
    """Run to the end and check the end state; returns (problems, secrets found)."""
    problems = harness.resume(world, ref, runs)
    return problems, [str(f) for f in hygiene.scan(world, hygiene.cli_texts(runs))]


def _crash_point(k: int, ref: harness.Reference, base: Path, openbao: OpenBao) -> list[Outcome]:
    with open_world(base / f"k{k:03d}", openbao, light_manifest=True) as world:
        killed = harness.run_cli(world, *RUN, kill_after=k)
        step = harness.running_step(world)
        problems, secrets = _settle(world, ref, [killed])
        if killed.killed_at is None:
            problems.insert(0, f"the run never made write {k} (exit {killed.returncode})")
        return [Outcome(k, ref.writes[k - 1], step, problems, secrets)]


def _chain(world: World, ref: harness.Reference) -> list[Outcome]:
    """One world, one crash in the middle of each step in turn, then a run to the end."""
    middles = _middles(ref)
    runs: list[harness.CliRun] = []
    crashes: list[tuple[int, str, str]] = []
    for step, middle in middles.items():
        seen: list[str] = []

        def in_the_middle(
            _n: int, _write: str, step: str = step, middle: int = middle, seen: list[str] = seen
        ) -> bool:
            running = harness.running_step(world)
            seen.append(running)
            return running == step and seen.count(step) == middle

        run = harness.run_cli(world, *RUN, on_write=in_the_middle)
        runs.append(run)
        if run.killed_at is None:
            crashes.append((0, f"never reached write {middle} of {step} (exit {run.returncode})", step))
            break
        crashes.append((len(run.writes), run.killed_at, step))
    problems, secrets = _settle(world, ref, runs)
    return [
        Outcome(k, write, step, problems if k else [write, *problems], secrets) for k, write, step in crashes
    ]


def test_crash_anywhere_converges(
    clean_reference: harness.Reference,
    openbao: OpenBao,
    tmp_path_factory: pytest.TempPathFactory,
    figures: Figures,
) -> None:
    ref = clean_reference
    stride = _stride()
    if stride is None:
        with open_world(tmp_path_factory.mktemp("chain"), openbao, light_manifest=True) as fresh:
            outcomes = _chain(fresh, ref)
    else:
        base = tmp_path_factory.mktemp("crash")
        ks = list(range(1, len(ref.writes) + 1, stride))
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="crash") as pool:
            batches = pool.map(lambda k: _crash_point(k, ref, base, openbao), ks)
            outcomes = [o for batch in batches for o in batch]
    report = []
    for o in outcomes:
        ok = not o.problems and not o.secrets
        with figures.lock:
            figures.crash.add(ok, f"k={o.k} ({o.write}, in {o.step}): {'; '.join(o.problems + o.secrets)}")
        report.append(dataclasses.asdict(o))
    with figures.lock:
        # One scan per world that crashed (a chain is one world).
        scanned = {id(o.secrets): o.secrets for o in outcomes}.values()
        figures.scans += len(scanned)
        figures.secrets_found += sum(len(s) for s in scanned)
    converged = len([o for o in outcomes if not o.problems and not o.secrets])
    print(f"\n{converged}/{len(outcomes)} crash points converged")
    failed = [r for r in report if r["problems"] or r["secrets"]]
    assert not failed, json.dumps(failed, indent=2)
    missing = [sid for sid in harness.STEP_IDS if sid in ref.steps and sid not in {o.step for o in outcomes}]
    assert not missing, f"no crash point inside {missing}; lower BOOTSTRAP_CRASH_STRIDE"
