"""The engine against small fake steps whose plan() really observes an in-memory "remote".

Each fake step keeps ``world.remote[step id]`` equal to a value derived from
the config, the way a real step keeps a GitHub key or a Slack channel in line
with customer.yaml: plan() compares, apply() writes, verify() re-checks.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bootstrap import checkpoint, config, engine
from bootstrap.checkpoint import FileStore, Status
from bootstrap.config import CustomerConfig
from bootstrap.engine import Engine, Selection
from bootstrap.errors import ConfigError, Interrupted, PermanentError, RetryableError, WaitingForHuman
from bootstrap.reporting import Summary
from bootstrap.secrets import MASK, Redactor, Secrets
from bootstrap.services import Services
from bootstrap.step import Action, Change, Context, Outputs, Plan, Step, StepId
from tests.unit.bad_inputs import EXAMPLE
from tests.unit.recording import RecordingReporter

SECRET = "s3cr3t-Token-Value-0123456789"


@dataclass
class World:
    """The fake remote and the knobs the tests turn."""

    remote: dict[str, str] = field(default_factory=dict)
    applies: list[str] = field(default_factory=list)
    verifies: list[str] = field(default_factory=list)
    on_apply: dict[str, list[BaseException]] = field(default_factory=dict)
    """Raised (one per apply call, in order) before the side effect."""
    on_verify: dict[str, BaseException] = field(default_factory=dict)
    during_apply: Callable[[str, Context], None] | None = None
    during_plan: Callable[[str], None] | None = None
    extra_outputs: dict[str, Outputs] = field(default_factory=dict)


class FakeStep(Step):
    title = "fake"
    reads: ClassVar[tuple[str, ...]] = ("customer.display_name",)

    def __init__(self, world: World) -> None:
        self.world = world

    def desired(self, ctx: Context) -> str:
        return f"{self.id}:{ctx.config.customer.display_name}"

    def plan(self, ctx: Context) -> Plan:
        if self.world.during_plan is not None:
            self.world.during_plan(self.id)
        current, want = self.world.remote.get(self.id), self.desired(ctx)
        if current == want:
            return Plan(outputs={"value": want})
        action = Action.CREATE if current is None else Action.UPDATE
        return Plan(changes=(Change(action, f"fake/{self.id}", diff=f"-{current}\n+{want}"),))

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        ctx.intend(f"write fake/{self.id}")
        if self.world.during_apply is not None:
            self.world.during_apply(self.id, ctx)
        pending = self.world.on_apply.get(self.id)
        if pending:
            raise pending.pop(0)
        self.world.remote[self.id] = self.desired(ctx)
        self.world.applies.append(self.id)
        return {"value": self.desired(ctx), **self.world.extra_outputs.get(self.id, {})}

    def verify(self, ctx: Context) -> None:
        self.world.verifies.append(self.id)
        if self.id in self.world.on_verify:
            raise self.world.on_verify[self.id]
        if self.world.remote.get(self.id) != self.desired(ctx):
            raise PermanentError(f"fake/{self.id} does not hold the desired value")

    def plan_destroy(self, ctx: Context) -> Plan:
        return Plan(
            changes=(Change(Action.DELETE, f"fake/{self.id}"),) if self.id in self.world.remote else ()
        )

    def destroy(self, ctx: Context, plan: Plan) -> None:
        self.world.remote.pop(self.id, None)


class StepA(FakeStep):
    id = StepId("a")
    # kit.cloud is read but does not change what the step writes: a digest change with an empty plan.
    reads = ("customer.display_name", "kit.cloud")


class StepB(FakeStep):
    id = StepId("b")
    requires = (StepId("a"),)


class StepC(FakeStep):
    id = StepId("c")
    requires = (StepId("b"),)


class Harness:
    """One customer's engine, store, reporter and world; ``run`` builds a fresh reporter each time."""

    def __init__(self, tmp_path: Path, steps: Sequence[type[FakeStep]] = (StepA, StepB, StepC)) -> None:
        self.world = World()
        self.store = FileStore(tmp_path / ".bootstrap")
        self.redactor = Redactor()
        self.tmp_path = tmp_path
        self.step_classes = steps
        self.config = config_with()
        self.reporter = RecordingReporter()

    def context(self) -> Context:
        secrets = Secrets(self.redactor, self.tmp_path, environ={})
        services = Services(self.config, secrets, self.tmp_path)
        return Context(config=self.config, secrets=secrets, services=services, workdir=self.store.directory)

    def run(self, selection: Selection | None = None, dry_run: bool = False) -> Summary:
        self.reporter = RecordingReporter()
        eng = Engine(
            [cls(self.world) for cls in self.step_classes],
            self.store,
            self.reporter,
            self.redactor,
            retry_delay_cap=0.0,
        )
        return eng.run(self.context(), selection or Selection(), dry_run=dry_run)

    def status(self, step: str) -> Status:
        return self.store.load("kuvaq").record(step).status


def config_with(display: str = "Kuvaq Oy", cloud: str = "aws") -> CustomerConfig:
    text = EXAMPLE.replace("display_name: Kuvaq Oy", f"display_name: {display}")
    return config.parse_text(text.replace("  cloud: aws ", f"  cloud: {cloud} "))


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off delays the engine asked for; nothing really sleeps."""
    asked: list[float] = []

    def pause(_stopping: threading.Event, seconds: float) -> bool:
        asked.append(seconds)
        return False

    monkeypatch.setattr(engine, "pause", pause)
    return asked


def statuses(summary: Summary) -> list[tuple[str, str]]:
    return [(r.step, r.status) for r in summary.results]


# -- order and the idempotent re-run ------------------------------------------------------


def test_dependency_order(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps=(StepC, StepA, StepB))
    h.run()
    assert h.reporter.steps_with("step_started") == ["a", "b", "c"]
    assert h.world.applies == ["a", "b", "c"]
    assert h.reporter.events[0] == ("run_started", "kuvaq", ("run", ("a", "b", "c")))


def test_order_keeps_the_given_order_where_requires_allow(h: Harness) -> None:
    class Free(FakeStep):
        id = StepId("free")

    steps = [cls(h.world) for cls in (Free, StepB, StepA)]
    assert [s.id for s in engine.order(steps)] == ["free", "a", "b"]


def test_cycle_and_unknown_requirement_are_errors(h: Harness) -> None:
    class Loop(FakeStep):
        id = StepId("loop")
        requires = (StepId("loop"),)

    class Orphan(FakeStep):
        id = StepId("orphan")
        requires = (StepId("missing"),)

    with pytest.raises(ConfigError, match="cycle through loop"):
        engine.order([Loop(h.world)])
    with pytest.raises(ConfigError, match="orphan requires unknown step missing"):
        engine.order([Orphan(h.world)])


def test_first_run_applies_second_run_changes_nothing(h: Harness) -> None:
    first = h.run()
    assert statuses(first) == [("a", "done"), ("b", "done"), ("c", "done")]
    assert first.exit_code() == 0
    assert h.reporter.of("step_applied") == [
        ("step_applied", "a", {"value": "a:Kuvaq Oy"}),
        ("step_applied", "b", {"value": "b:Kuvaq Oy"}),
        ("step_applied", "c", {"value": "c:Kuvaq Oy"}),
    ]
    state = h.store.load("kuvaq")
    assert all(state.record(s).status is Status.DONE for s in "abc")
    assert state.record("a").attempts == 1

    h.world.applies.clear()
    second = h.run()
    assert h.world.applies == []
    assert statuses(second) == [("a", "up-to-date"), ("b", "up-to-date"), ("c", "up-to-date")]
    assert h.reporter.of("step_skipped") == [
        ("step_skipped", "a", "up to date"),
        ("step_skipped", "b", "up to date"),
        ("step_skipped", "c", "up to date"),
    ]
    assert second.exit_code() == 0
    assert h.reporter.events[-1] == ("run_finished", "kuvaq", 0)


def test_event_sequence_of_one_step(tmp_path: Path) -> None:
    h = Harness(tmp_path, steps=(StepA,))
    h.run()
    assert [e[0] for e in h.reporter.events] == [
        "run_started",
        "step_started",
        "step_planned",
        "step_applied",
        "run_finished",
    ]


def test_drift_on_a_done_step_is_reapplied(h: Harness) -> None:
    h.run()
    h.world.applies.clear()
    h.world.remote["b"] = "edited by hand"
    summary = h.run()
    assert h.world.applies == ["b"]
    assert statuses(summary) == [("a", "up-to-date"), ("b", "done"), ("c", "up-to-date")]
    assert h.world.remote["b"] == "b:Kuvaq Oy"


def test_deleted_remote_of_a_done_step_is_recreated(h: Harness) -> None:
    h.run()
    h.world.applies.clear()
    del h.world.remote["a"]
    h.run()
    assert h.world.applies == ["a"]


def test_input_change_reruns_the_steps_that_read_it(h: Harness) -> None:
    h.run()
    before = h.store.load("kuvaq").record("b").digest
    h.world.applies.clear()
    h.config = config_with(display="Kuvaq Group")
    summary = h.run()
    assert h.world.applies == ["a", "b", "c"]
    assert h.world.remote["b"] == "b:Kuvaq Group"
    assert h.store.load("kuvaq").record("b").digest != before
    assert summary.exit_code() == 0


def test_digest_change_with_nothing_to_change_is_verified_and_recorded(h: Harness) -> None:
    h.run()
    h.world.applies.clear()
    h.world.verifies.clear()
    old = h.store.load("kuvaq").record("a").digest
    h.config = config_with(
        cloud="gcp"
    )  # only StepA reads kit.cloud, and its remote value does not depend on it
    h.run()
    assert h.world.applies == []
    assert h.world.verifies == ["a"]
    assert ("step_skipped", "a", "adopted") in h.reporter.events
    assert h.store.load("kuvaq").record("a").digest not in (None, old)


# -- failure, resume, retry, waiting --------------------------------------------------------


def test_failure_stops_the_run_and_the_checkpoint_is_consistent(h: Harness) -> None:
    h.world.on_apply["b"] = [PermanentError("the token needs Administration: write on kuvaq/infra")]
    summary = h.run()
    assert statuses(summary) == [("a", "done"), ("b", "failed"), ("c", "skipped")]
    assert summary.exit_code() == 1
    assert h.reporter.steps_with("step_started") == ["a", "b"]
    assert h.reporter.of("step_failed") == [
        ("step_failed", "b", "the token needs Administration: write on kuvaq/infra")
    ]
    assert "c" not in h.world.remote
    state = h.store.load("kuvaq")
    assert state.record("a").status is Status.DONE
    assert state.record("b").status is Status.FAILED
    assert state.record("b").error == "the token needs Administration: write on kuvaq/infra"
    assert state.record("b").finished is not None
    assert "c" not in state.steps


def test_resume_after_fixing_the_cause(h: Harness) -> None:
    h.world.on_apply["b"] = [PermanentError("forbidden")]
    h.run()
    h.world.applies.clear()
    summary = h.run()  # the cause is gone: on_apply["b"] is used up
    assert statuses(summary) == [("a", "up-to-date"), ("b", "done"), ("c", "done")]
    assert h.world.applies == ["b", "c"]
    state = h.store.load("kuvaq")
    assert state.record("b").error is None
    assert state.record("b").attempts == 2


def test_retryable_error_is_retried_then_succeeds(h: Harness, sleeps: list[float]) -> None:
    h.world.on_apply["a"] = [RetryableError("429 rate limited", delay=0.0), RetryableError("502", delay=0.0)]
    summary = h.run()
    assert statuses(summary)[0] == ("a", "done")
    assert h.reporter.of("step_retrying") == [
        ("step_retrying", "a", "429 rate limited"),
        ("step_retrying", "a", "502"),
    ]
    assert h.store.load("kuvaq").record("a").attempts == 3
    assert summary.exit_code() == 0


def test_retry_delay_is_capped(tmp_path: Path, sleeps: list[float]) -> None:
    h = Harness(tmp_path, steps=(StepA,))
    h.world.on_apply["a"] = [RetryableError("slow down", delay=3600.0)]
    h.run()
    assert sleeps == []  # the harness caps delays at 0: no wait at all
    eng = Engine([StepA(h.world)], h.store, RecordingReporter(), h.redactor, retry_delay_cap=7.5)
    h.world.on_apply["a"] = [RetryableError("slow down", delay=3600.0)]
    h.world.remote.clear()
    eng.run(h.context())
    assert sleeps[-1] == 7.5


def test_persistent_retryable_error_gives_up(h: Harness, sleeps: list[float]) -> None:
    h.world.on_apply["a"] = [RetryableError("503 unavailable") for _ in range(engine.MAX_ATTEMPTS)]
    summary = h.run()
    assert statuses(summary) == [("a", "failed"), ("b", "skipped"), ("c", "skipped")]
    message = summary.results[0].message or ""
    assert f"gave up after {engine.MAX_ATTEMPTS} attempts" in message
    assert "run the same command again" in message
    assert len(h.reporter.of("step_retrying")) == engine.MAX_ATTEMPTS - 1
    assert h.status("a") is Status.FAILED
    assert summary.exit_code() == 1


def test_waiting_for_a_person(h: Harness) -> None:
    h.world.on_apply["b"] = [WaitingForHuman("create the OAuth app at https://github.com/settings/apps/new")]
    summary = h.run()
    assert statuses(summary) == [("a", "done"), ("b", "waiting"), ("c", "skipped")]
    assert summary.exit_code() == 3
    assert h.reporter.steps_with("step_waiting") == ["b"]
    assert h.status("b") is Status.WAITING
    assert "github.com/settings/apps/new" in (h.store.load("kuvaq").record("b").error or "")


def test_failed_verify_is_not_trusted_on_the_next_run(h: Harness) -> None:
    """apply() succeeded but the post-condition did not hold: an empty plan is not enough to call it done."""
    h.world.on_verify["a"] = PermanentError("workloads not Available after 600s")
    assert statuses(h.run()) == [("a", "failed"), ("b", "skipped"), ("c", "skipped")]
    assert h.world.remote["a"] == "a:Kuvaq Oy"  # the change itself was made

    summary = h.run()
    assert statuses(summary) == [("a", "failed"), ("b", "skipped"), ("c", "skipped")]
    assert h.status("a") is Status.FAILED

    del h.world.on_verify["a"]
    summary = h.run()
    assert statuses(summary) == [("a", "up-to-date"), ("b", "done"), ("c", "done")]
    assert h.status("a") is Status.DONE


def test_unexpected_exception_is_recorded_as_a_failure(h: Harness) -> None:
    h.world.on_apply["a"] = [KeyError("spec")]
    summary = h.run()
    assert statuses(summary) == [("a", "failed"), ("b", "skipped"), ("c", "skipped")]
    assert (h.store.load("kuvaq").record("a").error or "").startswith("unexpected KeyError")


def test_keyboard_interrupt_in_apply(h: Harness) -> None:
    h.world.on_apply["b"] = [KeyboardInterrupt()]
    summary = h.run()
    assert statuses(summary) == [("a", "done"), ("b", "interrupted"), ("c", "skipped")]
    assert summary.exit_code() == 130
    rec = h.store.load("kuvaq").record("b")
    assert rec.status is Status.INTERRUPTED
    assert rec.error is not None and rec.error.startswith("interrupted")
    assert [i["what"] for i in rec.intents] == ["write fake/b"]  # what may exist is kept
    assert "c" not in h.store.load("kuvaq").steps
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the run


def test_keyboard_interrupt_during_the_preflight_checks_says_so_and_records_nothing(h: Harness) -> None:
    """Ctrl-C while the checks read: no step started, so the checkpoint must not change."""

    def checks(_ctx: Context, _steps: Sequence[Step]) -> None:
        raise KeyboardInterrupt

    reporter = RecordingReporter()
    eng = Engine([StepA(h.world)], h.store, reporter, h.redactor, preflight=checks)
    with pytest.raises(KeyboardInterrupt):
        eng.run(h.context())
    assert [e[2] for e in reporter.events if e[0] == "notice"] == [
        "run interrupted in the preflight checks, before any write"
    ]
    assert h.store.load("kuvaq").steps == {}
    assert h.world.applies == []


def test_keyboard_interrupt_during_back_off(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_stopping: threading.Event, seconds: float) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "pause", interrupted)
    h.world.on_apply["a"] = [RetryableError("429", delay=5.0)]
    eng = Engine([StepA(h.world)], h.store, RecordingReporter(), h.redactor, retry_delay_cap=30.0)
    summary = eng.run(h.context())
    assert summary.exit_code() == 130
    assert h.store.load("kuvaq").record("a").status is Status.INTERRUPTED


class StepP(FakeStep):
    id = StepId("p")


class StepQ(FakeStep):
    id = StepId("q")


def test_ctrl_c_during_concurrent_steps_stops_the_run_and_records_no_late_finish(h: Harness) -> None:
    """Ctrl-C while two steps are in their side effects (threads that keep going for a while).

    The run returns at once; both are recorded ``interrupted`` with their intents; nothing
    about steps is reported after the "run interrupted" notice; when the threads finish
    later, neither is recorded done, and a further side effect is refused (its intent).
    """
    both_in_apply = threading.Barrier(3)
    release = threading.Event()
    finished: list[str] = []
    refused: list[str] = []

    def during_apply(step_id: str, ctx: Context) -> None:
        both_in_apply.wait(timeout=120)
        release.wait(timeout=120)
        try:
            ctx.intend(f"one more write to fake/{step_id}")
        except Interrupted:
            refused.append(step_id)
            raise
        finally:
            finished.append(step_id)

    h.world.during_apply = during_apply
    reporter = RecordingReporter()
    eng = Engine([StepP(h.world), StepQ(h.world)], h.store, reporter, h.redactor)

    def press_ctrl_c() -> None:
        both_in_apply.wait(timeout=120)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    summary = eng.run(h.context(), parallel=2)
    presser.join(timeout=120)
    assert summary.exit_code() == 130
    assert sorted(statuses(summary)) == [("p", "interrupted"), ("q", "interrupted")]
    notices = [i for i, e in enumerate(reporter.events) if e[0] == "notice" and "interrupted" in e[2]]
    assert len(notices) == 1
    after = reporter.events[notices[0] + 1 :]

    release.set()
    deadline = time.monotonic() + 120  # generous: only a starved machine takes more than milliseconds
    while any(t.name.startswith("step") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(finished) == ["p", "q"] and sorted(refused) == ["p", "q"]
    state = h.store.load("kuvaq")
    for sid in ("p", "q"):
        rec = state.record(sid)
        assert rec.status is Status.INTERRUPTED, sid
        assert [i["what"] for i in rec.intents] == [f"write fake/{sid}"]
    assert [e[0] for e in after] == ["run_finished"]  # nothing of steps, then or later
    assert reporter.events[notices[0] + 1 :] == after
    assert h.world.applies == []  # the refused intent stopped the side effect
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_step_still_planning_at_ctrl_c_never_starts_its_apply(h: Harness) -> None:
    """Ctrl-C while a step plans in its thread: once its plan returns, it must not be
    recorded ``running`` (the process exits at once and would leave it so) nor apply."""
    planning = threading.Event()
    release = threading.Event()

    def slow_plan(step_id: str) -> None:
        planning.set()
        release.wait(timeout=120)

    h.world.during_plan = slow_plan
    eng = Engine([StepP(h.world)], h.store, RecordingReporter(), h.redactor)

    def press_ctrl_c() -> None:
        planning.wait(timeout=120)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    summary = eng.run(h.context(), parallel=2)
    presser.join(timeout=120)
    assert summary.exit_code() == 130
    release.set()
    deadline = time.monotonic() + 120
    while any(t.name.startswith("step") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    rec = h.store.load("kuvaq").record("p")
    assert rec.status is Status.INTERRUPTED
    assert rec.attempts == 0
    assert h.world.applies == []


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_applies_nothing_and_exits_2(h: Harness) -> None:
    summary = h.run(dry_run=True)
    assert h.world.applies == []
    assert h.world.remote == {}
    assert statuses(summary) == [("a", "changed"), ("b", "changed"), ("c", "changed")]
    assert summary.exit_code() == 2
    assert h.reporter.of("step_planned") == [("step_planned", s, 1) for s in "abc"]
    assert not h.store.path.exists()


def test_dry_run_without_changes_exits_0(h: Harness) -> None:
    h.run()
    h.world.applies.clear()
    summary = h.run(dry_run=True)
    assert h.world.applies == []
    assert summary.exit_code() == 0
    assert not summary.has_changes


# -- selection ----------------------------------------------------------------------------------


def test_only_skip_from(h: Harness) -> None:
    h.run()
    h.world.applies.clear()
    for s in "abc":
        h.world.remote[s] = "drifted"
    h.run(Selection(only=("b",)))
    assert h.world.applies == ["b"]
    h.run(Selection(skip=("a",)))
    assert h.world.applies == ["b", "c"]
    h.world.remote["b"] = "drifted"
    h.run(Selection(from_="b"))
    assert h.world.applies == ["b", "c", "b"]
    assert h.world.remote["a"] == "drifted"


@pytest.mark.parametrize(
    "selection", [Selection(only=("nope",)), Selection(skip=("nope",)), Selection(from_="nope")]
)
def test_unknown_step_id_lists_the_valid_ones(h: Harness, selection: Selection) -> None:
    with pytest.raises(ConfigError) as info:
        h.run(selection)
    assert info.value.exit_code == 4
    assert str(info.value) == "unknown step 'nope'; steps are: a, b, c"


@pytest.mark.parametrize("selection", [Selection(only=("c",)), Selection(from_="c"), Selection(skip=("b",))])
def test_selected_step_whose_requirement_never_succeeded(h: Harness, selection: Selection) -> None:
    with pytest.raises(ConfigError) as info:
        h.run(selection)
    assert "which has never succeeded" in str(info.value)
    assert "--only" in str(info.value)
    assert h.world.remote == {}


def test_requirement_check_passes_once_it_succeeded_and_is_skipped_in_dry_run(h: Harness) -> None:
    assert h.run(Selection(only=("c",)), dry_run=True).exit_code() == 2
    h.run()
    h.world.remote["c"] = "drifted"
    h.world.applies.clear()
    h.run(Selection(only=("c",)))
    assert h.world.applies == ["c"]


# -- what goes into the checkpoint ----------------------------------------------------------------


def test_intent_is_saved_before_the_side_effect(h: Harness) -> None:
    seen: dict[str, dict[str, Any]] = {}

    def read_checkpoint(step_id: str, ctx: Context) -> None:
        seen[step_id] = json.loads(h.store.path.read_text())["steps"][step_id]
        assert step_id not in h.world.remote  # the side effect has not happened yet

    h.world.during_apply = read_checkpoint
    h.run()
    for step_id, rec in seen.items():
        assert rec["status"] == "running"
        assert [i["what"] for i in rec["intents"]] == [f"write fake/{step_id}"]
        assert rec["started"] is not None
    assert set(seen) == {"a", "b", "c"}


def test_outputs_of_earlier_steps_reach_later_ones(h: Harness) -> None:
    got: list[object] = []
    h.world.during_apply = lambda step_id, ctx: got.append(ctx.output_of("a", "value"))
    h.run()
    assert got[1:] == ["a:Kuvaq Oy", "a:Kuvaq Oy"]


def test_outputs_of_an_empty_plan_are_recorded(h: Harness) -> None:
    """A resource a crashed run left behind: plan() finds it, nothing is applied, its outputs are adopted."""
    h.world.remote.update({"a": "a:Kuvaq Oy", "b": "b:Kuvaq Oy"})
    summary = h.run()
    assert h.world.applies == ["c"]
    assert ("step_skipped", "a", "adopted") in h.reporter.events
    state = h.store.load("kuvaq")
    assert state.record("a").status is Status.DONE
    assert state.record("a").outputs == {"value": "a:Kuvaq Oy"}
    assert summary.results[0].outputs == {"value": "a:Kuvaq Oy"}


def test_secret_never_reaches_the_checkpoint(h: Harness) -> None:
    h.redactor.register(SECRET)
    h.world.extra_outputs["a"] = {
        "token": SECRET,
        f"by-{SECRET}": [SECRET],
        "nested": {"k": f"Bearer {SECRET}"},
    }

    def leak(step_id: str, ctx: Context) -> None:
        ctx.intend(f"store {SECRET} in vault")

    h.world.during_apply = leak
    h.world.on_apply["b"] = [PermanentError(f"401 Bad credentials for token {SECRET}")]
    summary = h.run()
    text = h.store.path.read_text()
    assert SECRET not in text
    assert MASK in text
    assert SECRET not in (summary.results[1].message or "")
    assert all(SECRET not in str(e[2]) for e in h.reporter.of("step_failed"))
    h.world.on_apply["b"] = [ValueError(f"unexpected body containing {SECRET}")]
    h.run()
    assert SECRET not in h.store.path.read_text()


def test_engine_verify_reports_drift_without_changing_anything(h: Harness) -> None:
    h.run()
    h.world.remote["b"] = "edited by hand"
    eng = Engine([cls(h.world) for cls in (StepA, StepB, StepC)], h.store, RecordingReporter(), h.redactor)
    problems = eng.verify(h.context())
    assert problems == {"a": None, "b": "fake/b does not hold the desired value", "c": None}
    assert h.world.remote["b"] == "edited by hand"


# -- selections that select nothing, and who a waiting step blocks --------------------------------


@pytest.mark.parametrize(
    ("selection", "why"),
    [
        (Selection(only=("a",), skip=("a",)), "--only and --skip both name a"),
        (Selection(only=("a",), from_="b"), "--only a comes before --from b"),
        (Selection(skip=("a", "b", "c")), "leaves no step to run"),
    ],
)
def test_a_selection_that_selects_nothing_is_invalid(h: Harness, selection: Selection, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        h.run(selection)
    assert h.world.applies == []


def test_every_missing_requirement_is_named_at_once(tmp_path: Path) -> None:
    class Other(FakeStep):
        id = StepId("other")

    class Both(FakeStep):
        id = StepId("both")
        requires = (StepId("a"), StepId("other"))

    h = Harness(tmp_path, steps=(StepA, Other, Both))
    with pytest.raises(ConfigError) as info:
        h.run(Selection(only=("both",)))
    assert "both needs a" in str(info.value) and "both needs other" in str(info.value)
    assert "--only a --only other" in str(info.value)


def test_a_waiting_step_blocks_only_its_dependents(tmp_path: Path) -> None:
    class Free(FakeStep):
        id = StepId("free")

    h = Harness(tmp_path, steps=(StepA, StepB, StepC, Free))
    h.world.on_apply["b"] = [WaitingForHuman("create the GitHub App, then run again")]
    summary = h.run()
    assert statuses(summary) == [("a", "done"), ("b", "waiting"), ("c", "skipped"), ("free", "done")]
    assert summary.results[2].message == "not started: needs b (waiting)"
    assert summary.exit_code() == 3
    assert sum(summary.counts().values()) == 4


def test_a_no_op_run_keeps_when_a_step_became_done_and_records_when_it_was_checked(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = itertools.count()
    monkeypatch.setattr(checkpoint, "now", lambda: f"2026-11-29T10:{next(stamps):05d}")
    h.run()
    first = h.store.load("kuvaq").record("a")
    h.run()
    again = h.store.load("kuvaq").record("a")
    assert again.finished == first.finished and again.checked is not None
    assert again.checked > (first.checked or "")
    assert again.attempts == first.attempts == 1


def test_an_adopted_step_counts_one_attempt(h: Harness) -> None:
    h.world.remote["a"] = "a:Kuvaq Oy"  # already in place: the plan is empty, the step is adopted
    h.run(Selection(only=("a",)))
    rec = h.store.load("kuvaq").record("a")
    assert rec.status is Status.DONE and rec.attempts == 1 and rec.finished == rec.checked
