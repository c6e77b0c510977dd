"""Plans made while the preflight checks run (bootstrap/early_plans.py), through the engine.

The checks here are functions that wait for what the test needs to have happened by then (with
generous timeouts, never a sleep), so each test proves an order of events, not a timing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from bootstrap.engine import Engine, Selection
from bootstrap.errors import PermanentError
from bootstrap.reporting import Summary
from bootstrap.step import Context, Plan, Step, StepId
from tests.unit.recording import RecordingReporter
from tests.unit.test_engine import FakeStep, Harness, StepA

WAIT = 60.0


class StepB(FakeStep):
    """Writes what it reads from a's outputs: a plan made before a applied would be wrong."""

    id = StepId("b")
    requires = (StepId("a"),)
    seen: list[object]

    def desired(self, ctx: Context) -> str:
        return f"b:{ctx.outputs.get('a', {}).get('n')}"

    def plan(self, ctx: Context) -> Plan:
        type(self).seen.append(ctx.outputs.get("a", {}).get("n"))
        return super().plan(ctx)


class Plans:
    """Counts plans as they start; ``wait(n)`` returns once ``n`` have started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, step_id: str) -> None:
        with self._changed:
            self.started.append(step_id)
            self._changed.notify_all()

    def wait(self, n: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.started) >= n, timeout=WAIT)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    StepB.seen = []
    return Harness(tmp_path, (StepA, StepB))


def run(
    h: Harness, checks: object, parallel: int = 4, dry_run: bool = False
) -> tuple[Summary, RecordingReporter]:
    reporter = RecordingReporter()
    steps = [cls(h.world) for cls in h.step_classes]
    eng = Engine(steps, h.store, reporter, h.redactor, retry_delay_cap=0.0, preflight=checks)  # type: ignore[arg-type]
    return eng.run(h.context(), Selection(), dry_run=dry_run, parallel=parallel), reporter


def onboarded(h: Harness) -> Plans:
    h.run()
    plans = Plans()
    h.world.during_plan = plans
    return plans


def test_a_re_run_plans_while_the_checks_read_and_reports_nothing_before_they_pass(h: Harness) -> None:
    plans = onboarded(h)
    reporter_at_checks: list[object] = []

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        assert plans.wait(2), "the plans did not start while the checks ran"
        reporter_at_checks.append(len(plans.started))

    summary, reporter = run(h, checks)
    assert reporter_at_checks == [2]
    assert plans.started.count("a") == 1 and plans.started.count("b") == 1  # the early plans were used
    assert [r.status for r in summary.results] == ["up-to-date", "up-to-date"]
    assert reporter.events[0][0] == "run_started"  # nothing about a step came before the checks passed


def test_failed_checks_drop_the_early_plans_unseen(h: Harness) -> None:
    plans = onboarded(h)
    h.world.remote["a"] = "drifted"  # a would apply, if anything were applied
    before = (h.store.directory / "state.json").read_bytes()

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        assert plans.wait(2)
        raise PermanentError("the token lacks a scope")

    with pytest.raises(PermanentError):
        run(h, checks)
    assert (h.store.directory / "state.json").read_bytes() == before
    assert h.world.remote["a"] == "drifted"


def test_a_requirement_that_applies_makes_its_dependent_plan_again(h: Harness) -> None:
    plans = onboarded(h)
    h.world.remote["a"] = "drifted"
    h.world.extra_outputs["a"] = {"n": 2}  # what a records when it applies this time

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        assert plans.wait(2)

    summary, _ = run(h, checks)
    assert StepB.seen[-2:] == [None, 2]  # early (from the checkpoint), then again after a applied
    assert h.world.remote["b"] == "b:2"
    assert [r.status for r in summary.results] == ["done", "done"]


def test_a_step_whose_requirement_never_succeeded_is_not_planned_early(h: Harness) -> None:
    plans = Plans()
    h.world.during_plan = plans
    at_checks: list[list[str]] = []

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        assert plans.wait(1)
        at_checks.append(list(plans.started))

    run(h, checks)
    assert at_checks == [["a"]]
    assert StepB.seen == [None]  # planned once, in its turn, after a applied


def test_a_preview_plans_every_step_early(h: Harness) -> None:
    plans = Plans()
    h.world.during_plan = plans

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        assert plans.wait(2)

    summary, _ = run(h, checks, dry_run=True)
    assert sorted(plans.started) == ["a", "b"]
    assert h.world.applies == []
    assert summary.exit_code() == 2


def test_parallel_1_plans_nothing_early(h: Harness) -> None:
    plans = onboarded(h)
    at_checks: list[int] = []

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        at_checks.append(len(plans.started))

    run(h, checks, parallel=1)
    assert at_checks == [0]
    assert plans.started == ["a", "b"]
