"""The engine: run steps in dependency order and record what happened.

Guarantees:
- every step is *planned* (observed) on every run; a ``done`` step is skipped
  only when its input digest is unchanged **and** its plan is empty, so drift
  and leftovers of a crashed run are seen rather than trusted away;
- the checkpoint is saved before each apply (status ``running`` plus the
  intents the step records) and after it, so an interruption at any point
  leaves a consistent file and the next run resumes from the failed step;
- dry-run is "plan every step and stop": no step is told it is a dry run, and
  the checkpoint is not written (a failing plan records nothing);
- a rotation (``Rotatable``) stages the new credential, rolls it out by running
  the step and every step that requires it, and retires the old one only after
  all of them succeeded; any ``run`` finishes a staged rotation the same way, so
  a crash at any point of ``rotate`` converges with either command;
- an interruption (Ctrl-C) stops the run at once: running steps are recorded
  ``interrupted`` (with the intents they had recorded), services are told to
  cancel (waits give up, playbooks are stopped), a step that still finishes or
  tries another side effect afterwards is neither recorded nor allowed to, and
  the reporter prints nothing more about steps;
- the engine never imports ``steps``; the caller hands it the tuple.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from bootstrap import checkpoint, early_plans
from bootstrap.checkpoint import State, Status, Store
from bootstrap.early_plans import EarlyPlans
from bootstrap.errors import (
    BootstrapError,
    ConfigError,
    Interrupted,
    RetryableError,
    StepError,
    WaitingForHuman,
)
from bootstrap.outcome import HALTING, STOPPING, SUCCESS, Outcome, StepResult, previewed
from bootstrap.reporting import Reporter, Summary
from bootstrap.secrets import Redactor
from bootstrap.step import Context, Outputs, Plan, Rotatable, Step

_NONE = StepResult("", Outcome.SKIPPED)
MAX_ATTEMPTS = 3
MAX_RETRY_DELAY = 30.0


@dataclass(frozen=True)
class Phase:
    """How the guarded runner treats one kind of step work (run, rotate, destroy).

    The exception → outcome mapping is the same for all of them; what differs is
    only how often a transient failure is retried, what the person is told to do
    then, what an interruption is recorded as, and whether a ConfigError found
    while observing counts as invalid input (exit 4).
    """

    attempts: int
    resume: str
    interrupted: str
    config_error_is_input: bool = False
    counts_attempt: bool = True
    """Whether starting the side effects counts as an attempt of the step (destroy does not)."""

    def gave_up(self, attempt: int) -> str:
        tried = f"gave up after {attempt} attempts; " if self.attempts > 1 else ""
        return f" ({tried}{self.resume})"


INTERRUPTED = "interrupted; the checkpoint is saved, run the same command again to resume"
RUN = Phase(
    MAX_ATTEMPTS, "run the same command again to resume", INTERRUPTED, config_error_is_input=True
)
ROTATE = Phase(1, "run the same rotate again to resume", "interrupted during rotate")
DESTROY = Phase(1, "run the same destroy again to resume", "interrupted during destroy", counts_attempt=False)


@dataclass(frozen=True)
class Selection:
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    from_: str | None = None


def order(steps: Sequence[Step]) -> list[Step]:
    """Topological order that keeps the given order wherever ``requires`` allows."""
    by_id = {s.id: s for s in steps}
    done: list[Step] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(step: Step) -> None:
        if step.id in seen:
            return
        if step.id in visiting:
            raise ConfigError(f"steps form a cycle through {step.id}")
        visiting.add(step.id)
        for req in step.requires:
            if req not in by_id:
                raise ConfigError(f"step {step.id} requires unknown step {req}")
            visit(by_id[req])
        visiting.discard(step.id)
        seen.add(step.id)
        done.append(step)

    for s in steps:
        visit(s)
    return done


def select(steps: Sequence[Step], selection: Selection) -> list[Step]:
    """Apply --only/--skip/--from; unknown ids are input errors that list the valid ones."""
    ordered = order(steps)
    ids: list[str] = [s.id for s in ordered]
    for given in (*selection.only, *selection.skip, *([selection.from_] if selection.from_ else [])):
        if given not in ids:
            raise ConfigError(f"unknown step {given!r}; steps are: {', '.join(ids)}")
    both = sorted(set(selection.only) & set(selection.skip))
    if both:
        raise ConfigError(f"--only and --skip both name {', '.join(both)}; name each step in one of them")
    chosen = ordered
    if selection.from_:
        chosen = chosen[ids.index(selection.from_) :]
        before = [s for s in selection.only if s not in {c.id for c in chosen}]
        if before:
            raise ConfigError(
                f"--only {', '.join(before)} comes before --from {selection.from_} in the step order "
                f"({', '.join(ids)}); drop one of them"
            )
    if selection.only:
        chosen = [s for s in chosen if s.id in selection.only]
    chosen = [s for s in chosen if s.id not in selection.skip]
    if not chosen:
        raise ConfigError(
            "the selection (--only/--skip/--from) leaves no step to run; steps are: " + ", ".join(ids)
        )
    return chosen


def _not_started(step: Step, results: Mapping[str, StepResult]) -> StepResult:
    """The result of a selected step that never started, saying why (so the counts add up)."""
    blockers = [r for r in step.requires if r in results and results[r].status not in SUCCESS]
    if blockers:
        why = ", ".join(f"{r} ({results[r].status})" for r in blockers)
        return StepResult(step.id, Outcome.SKIPPED, message=f"not started: needs {why}")
    stopped = next((r.step for r in results.values() if r.status in HALTING), None)
    reason = f"the run stopped after {stopped} did not succeed" if stopped else "a step it needs did not run"
    return StepResult(step.id, Outcome.SKIPPED, message=f"not started: {reason}")


class _OutputsView(Mapping[str, Mapping[str, Any]]):
    """Live read-only view of recorded outputs: a step sees what earlier steps of this run recorded."""

    def __init__(self, state: State) -> None:
        self._state = state

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        return self._state.steps[key].outputs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._state.steps))

    def __len__(self) -> int:
        return len(self._state.steps)


def pause(stopping: threading.Event, seconds: float) -> bool:
    """Back off for ``seconds``; True (at once) when the run is interrupted meanwhile."""
    return stopping.wait(seconds)


class _Gate:
    """The reporter as the engine uses it: once the run is interrupted, step events are dropped.

    Steps still running in other threads when Ctrl-C arrives must not print after
    "run interrupted" (their outcome is recorded as interrupted, whatever they do next).
    """

    def __init__(self, inner: Reporter, stopping: threading.Event) -> None:
        self._inner = inner
        self._stopping = stopping

    def _open(self) -> bool:
        return not self._stopping.is_set()

    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        self._inner.run_started(customer, mode, steps)

    def notice(self, text: str) -> None:
        self._inner.notice(text)

    def run_finished(self, summary: Summary) -> None:
        self._inner.run_finished(summary)

    def step_started(self, step: str) -> None:
        if self._open():
            self._inner.step_started(step)

    def step_progress(self, step: str, text: str) -> None:
        if self._open():
            self._inner.step_progress(step, text)

    def step_planned(self, step: str, plan: Plan) -> None:
        if self._open():
            self._inner.step_planned(step, plan)

    def step_skipped(self, step: str, reason: str) -> None:
        if self._open():
            self._inner.step_skipped(step, reason)

    def step_applied(self, step: str, outputs: Outputs) -> None:
        if self._open():
            self._inner.step_applied(step, outputs)

    def step_failed(self, step: str, message: str, retrying: bool) -> None:
        if self._open():
            self._inner.step_failed(step, message, retrying)

    def step_waiting(self, step: str, message: str) -> None:
        if self._open():
            self._inner.step_waiting(step, message)


class Engine:
    def __init__(
        self,
        steps: Sequence[Step],
        store: Store,
        reporter: Reporter,
        redactor: Redactor,
        retry_delay_cap: float = MAX_RETRY_DELAY,
        preflight: Callable[[Context, Sequence[Step]], None] | None = None,
    ) -> None:
        self.steps = list(steps)
        self.preflight = preflight
        """Called with the chosen steps before the first one (run and plan); raises to stop the run."""
        self.store = store
        self._stopping = threading.Event()
        self.reporter: Reporter = _Gate(reporter, self._stopping)
        self.redactor = redactor
        self.retry_delay_cap = retry_delay_cap
        self._lock = threading.RLock()  # one writer of the state (and its file) at a time
        self._sigint: Any = None
        self._read_only = False
        self._early: EarlyPlans | None = None

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Around a public entry point: put back the Ctrl-C handler ``_interrupt`` replaced."""
        try:
            yield
        finally:
            if self._sigint is not None:
                signal.signal(signal.SIGINT, self._sigint)
                self._sigint = None

    def _save(self, state: State) -> None:
        """Save the checkpoint, except in a preview: plan and the --dry-run modes only read."""
        if not self._read_only:
            self.store.save(state)

    def _interrupt(self, ctx: Context) -> None:
        """First reaction to Ctrl-C (main thread): mute steps, tell services to stop, ignore more Ctrl-C."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if threading.current_thread() is threading.main_thread():
            # A second Ctrl-C would only break the recording below (restored when the run returns).
            self._sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.reporter.notice("run interrupted: stopping the running steps")
        cancel = getattr(ctx.services, "cancel", None)
        if callable(cancel):
            cancel()

    # -- run / plan ------------------------------------------------------------
    def run(
        self, ctx: Context, selection: Selection = Selection(), dry_run: bool = False, parallel: int = 1
    ) -> Summary:
        """Plan (and unless ``dry_run``, apply) the selected steps.

        With ``parallel > 1`` independent steps run concurrently: a step starts
        once every step it ``requires`` has finished successfully in this run
        (or, if not selected, is recorded done). After a failure no new step
        starts; running ones finish and are recorded. A plan has no order to
        respect (nothing is applied), so dry-run plans every step at once.
        """
        customer = ctx.config.customer.name
        self._read_only = dry_run
        chosen = select(self.steps, selection)
        summary = Summary(customer=customer, mode="plan" if dry_run else "run")
        state = self.store.load(customer)
        self._check_requirements(chosen, state, dry_run)
        ctx.outputs = _OutputsView(state)
        if self.preflight is not None:
            # The plans start now and read while the checks read; nothing is reported,
            # recorded or written before the checks pass (see bootstrap.early_plans).
            self._early = self._plan_early(chosen, ctx, state, dry_run, parallel)
            try:
                self.preflight(ctx, chosen)
            except BaseException as exc:
                self._early.drop()
                if isinstance(exc, KeyboardInterrupt):
                    # Nothing is recorded: the checks only read, and no step has started.
                    notice = f"{summary.mode} interrupted in the preflight checks, before any write"
                    self.reporter.notice(notice)
                raise
        self.reporter.run_started(customer, summary.mode, [s.id for s in chosen])
        with self._interruptible():
            try:
                if parallel <= 1:
                    results = self._run_sequential(chosen, ctx, state, dry_run)
                else:
                    results = self._run_concurrent(chosen, ctx, state, dry_run, parallel)
            finally:
                self._early = None
            if not dry_run and not self._stopping.is_set():
                self._retire(chosen, ctx, state, results)
        summary.results.extend(results.get(s.id) or _not_started(s, results) for s in chosen)
        self.reporter.run_finished(summary)
        return summary

    def _plan_early(
        self, chosen: list[Step], ctx: Context, state: State, dry_run: bool, parallel: int
    ) -> EarlyPlans:
        """Start the plans that can be made now: every step at once in a preview, else each step
        whose requirements are all recorded done (the others read outputs that do not exist yet).
        With ``parallel`` 1 nothing is planned early: one step at a time means one at a time."""
        recorded = dict(state.steps)  # read, never ``state.record`` (it adds records) from other threads
        done = {sid for sid, rec in recorded.items() if rec.status == Status.DONE}
        ready = [s for s in chosen if dry_run or set(s.requires) <= done] if parallel > 1 else []

        def outputs(step_id: str) -> Mapping[str, Any]:
            rec = state.steps.get(step_id)
            return rec.outputs if rec is not None else {}

        def context_for(step: Step) -> Context:
            return dataclasses.replace(ctx, progress=lambda _text: None, intend=early_plans.never)

        return EarlyPlans(ready, context_for, outputs, parallel)

    def _run_sequential(
        self, chosen: list[Step], ctx: Context, state: State, dry_run: bool
    ) -> dict[str, StepResult]:
        results: dict[str, StepResult] = {}
        chosen_ids = {s.id for s in chosen}
        for step in chosen:
            blocked = any(
                r in chosen_ids and results.get(r, _NONE).status not in SUCCESS for r in step.requires
            )
            if blocked and not dry_run:
                continue  # a step it needs is waiting or did not succeed: reported as not started
            results[step.id] = result = self._run_step(step, ctx, state, dry_run)
            if result.status in HALTING:
                break
        return results

    def _run_concurrent(
        self, chosen: list[Step], ctx: Context, state: State, dry_run: bool, parallel: int
    ) -> dict[str, StepResult]:
        chosen_ids = {s.id for s in chosen}
        results: dict[str, StepResult] = {}
        pending = list(chosen)
        running: dict[Future[StepResult], Step] = {}
        starting: Step | None = None
        stopped = False

        def ready(step: Step) -> bool:
            if dry_run:
                return True
            return all(
                r not in chosen_ids or (r in results and results[r].status in SUCCESS) for r in step.requires
            )

        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="step")
        try:
            while pending or running:
                if not stopped:
                    for step in [s for s in pending if ready(s)][: parallel - len(running)]:
                        pending.remove(step)
                        starting = step  # Ctrl-C may land between the submit and the bookkeeping
                        running[pool.submit(self._run_step, step, ctx, state, dry_run)] = step
                        starting = None
                if not running:
                    break  # what is left waits on a step that did not succeed
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    step = running.pop(fut)
                    results[step.id] = result = fut.result()
                    stopped = stopped or result.status in HALTING
        except KeyboardInterrupt:
            self._interrupt(ctx)
            for step in [*running.values(), *([starting] if starting is not None else [])]:
                self._record_interrupted(state, step.id, INTERRUPTED)
                results[step.id] = StepResult(step.id, Outcome.INTERRUPTED, message="interrupted")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    def _check_requirements(self, chosen: list[Step], state: State, dry_run: bool) -> None:
        chosen_ids = {s.id for s in chosen}
        missing = {
            (step.id, req)
            for step in chosen
            for req in step.requires
            if not dry_run and req not in chosen_ids and state.record(req).status != Status.DONE
        }
        if missing:
            needs = "; ".join(f"{s} needs {r}, which has never succeeded" for s, r in sorted(missing))
            reqs = sorted({req for _, req in missing})
            raise ConfigError(
                f"{needs}; run {'it' if len(reqs) == 1 else 'them'} first "
                f"(drop --only/--skip/--from, or add {' '.join(f'--only {r}' for r in reqs)})"
            )

    def _run_step(self, step: Step, ctx: Context, state: State, dry_run: bool) -> StepResult:
        rec = state.record(step.id)
        digest = step.digest(ctx.config)

        def phase(sctx: Context) -> StepResult:
            early = self._early.take(step.id) if self._early is not None else None
            plan = early if early is not None else step.plan(sctx)
            self.reporter.step_planned(step.id, plan)
            if dry_run:
                return StepResult(step.id, previewed(plan), plan)
            if plan.empty:
                up_to_date = rec.status == Status.DONE and rec.digest == digest
                if not up_to_date:
                    # Nothing to change, but the step was never seen to succeed (a failed verify,
                    # a crashed run, new inputs): check its post-condition before calling it done.
                    step.verify(sctx)
                reason = "up to date" if up_to_date else "adopted"
                self._finish(state, step.id, digest, plan.outputs, changed=not up_to_date)
                self.reporter.step_skipped(step.id, reason)
                return StepResult(step.id, Outcome.UP_TO_DATE, plan, dict(plan.outputs))
            self._mark_running(state, step.id, RUN)
            outputs = step.apply(sctx, plan)
            step.verify(sctx)
            self._finish(state, step.id, digest, outputs, changed=True)
            self.reporter.step_applied(step.id, outputs)
            return StepResult(step.id, Outcome.DONE, plan, dict(outputs))

        return self._guarded(step, ctx, state, RUN, phase)

    def _guarded(
        self, step: Step, ctx: Context, state: State, kind: Phase, phase: Callable[[Context], StepResult]
    ) -> StepResult:
        """Run one phase of one step and turn whatever it raises into a recorded outcome.

        The one place where exceptions become outcomes: a person's turn is ``waiting``;
        a transient failure is retried (``kind.attempts``, backing off as the error asks,
        capped) and then ``failed`` with what to do; a step or input error is ``failed``;
        Ctrl-C is ``interrupted`` (intents kept); any other exception is a bug or an
        unmapped library error, recorded ``failed`` so the state is never lost. The
        result carries the time the phase took.
        """
        started = time.monotonic()
        self.reporter.step_started(step.id)
        sctx = self._step_context(ctx, state, step)

        def timed(result: StepResult) -> StepResult:
            return dataclasses.replace(result, seconds=time.monotonic() - started)

        attempt = 0
        backoff = 0.0
        while True:
            attempt += 1
            try:
                # Inside the try, so Ctrl-C during a back-off is recorded like any other interruption.
                if backoff and pause(self._stopping, backoff):
                    raise Interrupted("interrupted")
                return timed(phase(sctx))
            except WaitingForHuman as exc:
                message = self.redactor.redact(str(exc))
                self._fail(state, step.id, Status.WAITING, message)
                self.reporter.step_waiting(step.id, message)
                return timed(StepResult(step.id, Outcome.WAITING, message=message))
            except RetryableError as exc:
                message = self.redactor.redact(str(exc))
                if attempt < kind.attempts:
                    self.reporter.step_failed(step.id, message, retrying=True)
                    backoff = min(exc.delay if exc.delay is not None else 2.0**attempt, self.retry_delay_cap)
                    continue
                return self._failed(state, step.id, message + kind.gave_up(attempt), started)
            except ConfigError as exc:
                # Found while observing (unknown addon, unknown kit version): invalid input, exit 4.
                failed = self._failed(state, step.id, self.redactor.redact(str(exc)), started)
                return dataclasses.replace(failed, invalid_input=kind.config_error_is_input)
            except StepError as exc:
                return self._failed(state, step.id, self.redactor.redact(str(exc)), started)
            except (KeyboardInterrupt, Interrupted) as exc:
                if isinstance(exc, KeyboardInterrupt):
                    self._interrupt(ctx)
                self._record_interrupted(state, step.id, kind.interrupted)
                return timed(StepResult(step.id, Outcome.INTERRUPTED, message="interrupted"))
            except BootstrapError:
                raise
            except Exception as exc:  # a bug or an unmapped library error: record it, never lose state
                message = self.redactor.redact(f"unexpected {type(exc).__name__}: {exc}")
                return self._failed(state, step.id, message, started)

    def _mark_running(self, state: State, step_id: str, kind: Phase) -> None:
        """Saved before a step's first side effect: a crash from then on leaves ``running`` and intents."""
        with self._lock:
            if self._stopping.is_set():
                # Ctrl-C came while this step planned: the run is over, never start its side effects
                # (recording ``running`` now would outlive the process, which exits at once).
                raise Interrupted("interrupted")
            rec = state.record(step_id)
            rec.status = Status.RUNNING
            rec.started = checkpoint.now()
            if kind.counts_attempt:
                rec.attempts += 1
                rec.error = None
            self._save(state)

    def _step_context(self, ctx: Context, state: State, step: Step) -> Context:
        """A step's own copy of the context: concurrent steps must not share progress/intent callbacks."""
        return dataclasses.replace(
            ctx,
            progress=lambda text: self.reporter.step_progress(step.id, text),
            intend=lambda what: self._intend(state, step.id, what),
        )

    def _failed(self, state: State, step_id: str, message: str, started: float) -> StepResult:
        self._fail(state, step_id, Status.FAILED, message)
        self.reporter.step_failed(step_id, message, retrying=False)
        return StepResult(step_id, Outcome.FAILED, message=message, seconds=time.monotonic() - started)

    def _intend(self, state: State, step_id: str, what: str) -> None:
        if self._stopping.is_set():
            # Every side effect is announced first: refusing the announcement stops it.
            raise Interrupted("interrupted before: " + self.redactor.redact(what))
        with self._lock:
            self._intend_locked(state, step_id, what)

    def _intend_locked(self, state: State, step_id: str, what: str) -> None:
        state.record(step_id).intents.append({"at": checkpoint.now(), "what": self.redactor.redact(what)})
        del state.record(step_id).intents[:-20]  # keep the file small on long-lived customers
        self._save(state)

    def _finish(
        self, state: State, step_id: str, digest: str, outputs: dict[str, object], changed: bool = True
    ) -> None:
        with self._lock:
            if self._stopping.is_set():
                # Finished after Ctrl-C: it stays recorded as interrupted, the next run re-observes it.
                raise Interrupted("interrupted")
            self._finish_locked(state, step_id, digest, outputs, changed)

    def _finish_locked(
        self, state: State, step_id: str, digest: str, outputs: dict[str, object], changed: bool = True
    ) -> None:
        """Record a step done. ``finished`` is when it last became done (applied or adopted);
        ``checked`` is when it was last observed up to date, so a no-op run does not rewrite history."""
        rec = state.record(step_id)
        stamp = checkpoint.now()
        if changed or rec.status != Status.DONE or rec.finished is None:
            if rec.status != Status.DONE and rec.attempts == 0:
                rec.attempts = 1  # adopted: observed done without an apply of ours, still one attempt
            rec.finished = stamp
        rec.status = Status.DONE
        rec.digest = digest
        rec.checked = stamp
        rec.error = None
        rec.outputs = dict(self.redactor.redact_obj(dict(outputs)))
        self._save(state)

    def _fail(self, state: State, step_id: str, status: Status, message: str) -> None:
        with self._lock:
            if self._stopping.is_set() and status is not Status.INTERRUPTED:
                status, message = Status.INTERRUPTED, INTERRUPTED  # whatever it became after Ctrl-C
            self._fail_locked(state, step_id, status, message)

    def _record_interrupted(self, state: State, step_id: str, message: str) -> None:
        """Record ``step_id`` as interrupted; its intents stay, so the next run knows what may exist."""
        self._fail(state, step_id, Status.INTERRUPTED, message)

    def _fail_locked(self, state: State, step_id: str, status: Status, message: str) -> None:
        rec = state.record(step_id)
        rec.status = status
        rec.error = message
        rec.finished = checkpoint.now()
        self._save(state)

    # -- rotate ----------------------------------------------------------------
    def rotate(self, ctx: Context, what: str, dry_run: bool = False) -> Summary:
        """Stage a new credential, roll it out through the step and its dependents, retire the old one.

        Every phase re-observes what is there, so a crashed rotation is finished
        by running ``rotate`` again (a staged credential is not generated twice)
        or by a plain ``run``.
        """
        customer = ctx.config.customer.name
        self._read_only = dry_run
        step = self._rotatable(what)
        state = self.store.load(customer)
        if not dry_run and state.record(step.id).digest is None:  # recorded only on success
            raise ConfigError(
                f"{step.id} has not succeeded yet, so there is nothing to rotate; run `bootstrap run` first"
            )
        ctx.outputs = _OutputsView(state)
        summary = Summary(customer=customer, mode="rotate-plan" if dry_run else "rotate")
        rollout = [s for s in order(self.steps) if s.id == step.id or s.id in self._dependents(step.id)]
        self.reporter.run_started(customer, summary.mode, [s.id for s in rollout])
        with self._interruptible():
            staged = self._stage(step, ctx, state, what, dry_run)
            summary.results.append(staged)
            if not dry_run and staged.status not in STOPPING:
                results = self._run_sequential(rollout, ctx, state, dry_run=False)
                if not self._stopping.is_set():
                    self._retire(rollout, ctx, state, results)
                summary.results.extend(results[s.id] for s in rollout if s.id in results)
        self.reporter.run_finished(summary)
        return summary

    def _rotatable(self, what: str) -> Step:
        offers = {w: s for s in order(self.steps) if isinstance(s, Rotatable) for w in s.rotations}
        if what not in offers:
            raise ConfigError(f"cannot rotate {what!r}; rotatable: {', '.join(sorted(offers)) or 'nothing'}")
        return offers[what]

    def _dependents(self, step_id: str) -> set[str]:
        """Ids of every step that requires ``step_id``, directly or through others."""
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for s in self.steps:
                if s.id not in found and any(r == step_id or r in found for r in s.requires):
                    found.add(s.id)
                    changed = True
        return found

    def _stage(self, step: Step, ctx: Context, state: State, what: str, dry_run: bool) -> StepResult:
        assert isinstance(step, Rotatable)
        rotatable = step

        def phase(sctx: Context) -> StepResult:
            plan = rotatable.plan_rotate(sctx, what)
            self.reporter.step_planned(step.id, plan)
            if dry_run:
                return StepResult(step.id, previewed(plan), plan)
            if plan.empty:
                self.reporter.step_skipped(step.id, f"a new {what} is already staged; finishing its rotation")
                return StepResult(step.id, Outcome.UP_TO_DATE, plan)
            # The rollout that follows records done once the new credential is live.
            self._mark_running(state, step.id, ROTATE)
            outputs = rotatable.rotate(sctx, plan)
            self.reporter.step_applied(step.id, outputs)
            return StepResult(step.id, Outcome.STAGED, plan, dict(outputs))

        return self._guarded(step, ctx, state, ROTATE, phase)

    def _retire(self, chosen: list[Step], ctx: Context, state: State, results: dict[str, StepResult]) -> None:
        """Finish staged rotations whose step and dependents all succeeded in this run."""
        for step in chosen:
            if not isinstance(step, Rotatable):
                continue
            rollout = {step.id} | self._dependents(step.id)
            if not all(sid in results and results[sid].status in SUCCESS for sid in rollout):
                continue  # the new credential is not proven live everywhere: keep the old one
            sctx = dataclasses.replace(ctx, intend=functools.partial(self._intend, state, step.id))
            try:
                plan: Plan = step.plan_retire(sctx)
                if plan.empty:
                    continue
                self.reporter.step_planned(step.id, plan)
                step.retire(sctx, plan)
                self.reporter.notice(f"{step.id}: retired the old credential ({plan.changes[0].summary})")
            except (StepError, ConfigError) as exc:
                message = self.redactor.redact(f"could not retire the old credential: {exc}")
                results[step.id] = self._failed(state, step.id, message, time.monotonic())

    # -- destroy ---------------------------------------------------------------
    def destroy(self, ctx: Context, selection: Selection = Selection(), dry_run: bool = False) -> Summary:
        """Undo the selected steps in reverse dependency order.

        Each step observes what is left (``plan_destroy``) before removing it,
        so an interrupted destroy is resumed by running it again, and a step
        whose resources are already gone is simply recorded as removed.
        """
        customer = ctx.config.customer.name
        self._read_only = dry_run
        chosen = list(reversed(select(self.steps, selection)))
        summary = Summary(customer=customer, mode="destroy-plan" if dry_run else "destroy")
        state = self.store.load(customer)
        ctx.outputs = _OutputsView(state)
        self.reporter.run_started(customer, summary.mode, [s.id for s in chosen])
        with self._interruptible():
            for step in chosen:
                result = self._destroy_step(step, ctx, state, dry_run)
                summary.results.append(result)
                if result.status in STOPPING:
                    break
        self.reporter.run_finished(summary)
        return summary

    def _destroy_step(self, step: Step, ctx: Context, state: State, dry_run: bool) -> StepResult:
        def phase(sctx: Context) -> StepResult:
            plan = step.plan_destroy(sctx)
            self.reporter.step_planned(step.id, plan)
            if dry_run:
                return StepResult(step.id, previewed(plan), plan)
            if not plan.empty:
                self._mark_running(state, step.id, DESTROY)
                step.destroy(sctx, plan)
            with self._lock:
                state.steps.pop(step.id, None)
                self._save(state)
            self.reporter.step_applied(step.id, {})
            # What it removed is done; nothing left to remove is up to date.
            return StepResult(step.id, Outcome.UP_TO_DATE if plan.empty else Outcome.DONE, plan)

        return self._guarded(step, ctx, state, DESTROY, phase)

    # -- status ----------------------------------------------------------------
    def verify(self, ctx: Context) -> dict[str, str | None]:
        """Run every recorded-done step's verify(); maps step id → None (ok) or the problem."""
        state = self.store.load(ctx.config.customer.name)
        ctx.outputs = {sid: rec.outputs for sid, rec in state.steps.items()}
        results: dict[str, str | None] = {}
        for step in order(self.steps):
            if state.record(step.id).status != Status.DONE:
                continue
            try:
                step.verify(ctx)
                results[step.id] = None
            except BootstrapError as exc:
                results[step.id] = self.redactor.redact(str(exc))
        return results
