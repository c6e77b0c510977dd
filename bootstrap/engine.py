"""The engine: run steps in dependency order and record what happened.

Guarantees:
- every step is *planned* (observed) on every run; a ``done`` step is skipped
  only when its input digest is unchanged **and** its plan is empty, so drift
  and leftovers of a crashed run are seen rather than trusted away;
- the checkpoint is saved before each apply (status ``running`` plus the
  intents the step records) and after it, so an interruption at any point
  leaves a consistent file and the next run resumes from the failed step;
- dry-run is "plan every step and stop": no step is told it is a dry run;
- a rotation (``Rotatable``) stages the new credential, rolls it out by running
  the step and every step that requires it, and retires the old one only after
  all of them succeeded; any ``run`` finishes a staged rotation the same way, so
  a crash at any point of ``rotate`` converges with either command;
- the engine never imports ``steps``; the caller hands it the tuple.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from bootstrap import checkpoint
from bootstrap.checkpoint import State, Status, Store
from bootstrap.errors import BootstrapError, ConfigError, RetryableError, StepError, WaitingForHuman
from bootstrap.reporting import Reporter, StepResult, Summary
from bootstrap.secrets import Redactor
from bootstrap.step import Context, Plan, Rotatable, Step

_STOPPING = frozenset({"failed", "waiting", "interrupted"})
_SUCCESS = frozenset({"done", "up-to-date"})
MAX_ATTEMPTS = 3
MAX_RETRY_DELAY = 30.0


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
    chosen = ordered
    if selection.from_:
        chosen = chosen[ids.index(selection.from_) :]
    if selection.only:
        chosen = [s for s in chosen if s.id in selection.only]
    return [s for s in chosen if s.id not in selection.skip]


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
        self.reporter = reporter
        self.redactor = redactor
        self.retry_delay_cap = retry_delay_cap
        self._lock = threading.RLock()  # one writer of the state (and its file) at a time

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
        chosen = select(self.steps, selection)
        summary = Summary(customer=customer, mode="plan" if dry_run else "run")
        state = self.store.load(customer)
        self._check_requirements(chosen, state, dry_run)
        if self.preflight is not None:
            self.preflight(ctx, chosen)
        ctx.outputs = _OutputsView(state)
        self.reporter.run_started(customer, summary.mode, [s.id for s in chosen])
        if parallel <= 1:
            results = self._run_sequential(chosen, ctx, state, dry_run)
        else:
            results = self._run_concurrent(chosen, ctx, state, dry_run, parallel)
        if not dry_run:
            self._retire(chosen, ctx, state, results)
        summary.results.extend(results[s.id] for s in chosen if s.id in results)
        self.reporter.run_finished(summary)
        return summary

    def _run_sequential(
        self, chosen: list[Step], ctx: Context, state: State, dry_run: bool
    ) -> dict[str, StepResult]:
        results: dict[str, StepResult] = {}
        for step in chosen:
            results[step.id] = result = self._run_step(step, ctx, state, dry_run)
            if result.status in _STOPPING:
                break
        return results

    def _run_concurrent(
        self, chosen: list[Step], ctx: Context, state: State, dry_run: bool, parallel: int
    ) -> dict[str, StepResult]:
        chosen_ids = {s.id for s in chosen}
        results: dict[str, StepResult] = {}
        pending = list(chosen)
        running: dict[Future[StepResult], Step] = {}
        stopped = False

        def ready(step: Step) -> bool:
            if dry_run:
                return True
            return all(
                r not in chosen_ids or (r in results and results[r].status in _SUCCESS) for r in step.requires
            )

        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="step")
        try:
            while pending or running:
                if not stopped:
                    for step in [s for s in pending if ready(s)][: parallel - len(running)]:
                        pending.remove(step)
                        running[pool.submit(self._run_step, step, ctx, state, dry_run)] = step
                if not running:
                    break  # what is left waits on a step that did not succeed
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    step = running.pop(fut)
                    results[step.id] = result = fut.result()
                    stopped = stopped or result.status in _STOPPING
        except KeyboardInterrupt:
            for step in running.values():
                self._fail(state, step.id, Status.FAILED, "interrupted")
                results[step.id] = StepResult(step.id, "interrupted", message="interrupted")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    def _check_requirements(self, chosen: list[Step], state: State, dry_run: bool) -> None:
        chosen_ids = {s.id for s in chosen}
        for step in chosen:
            for req in step.requires:
                if req in chosen_ids or dry_run:
                    continue
                if state.record(req).status != Status.DONE:
                    raise ConfigError(
                        f"step {step.id} needs {req}, which has never succeeded; "
                        f"run it first (drop --only/--skip/--from, or add --only {req})"
                    )

    def _run_step(self, step: Step, ctx: Context, state: State, dry_run: bool) -> StepResult:
        rec = state.record(step.id)
        digest = step.digest(ctx.config)
        started = time.monotonic()
        self.reporter.step_started(step.id)
        ctx = self._step_context(ctx, state, step)
        attempt = 0
        backoff = 0.0
        while True:
            attempt += 1
            try:
                if backoff:
                    # Inside the try, so Ctrl-C during a back-off is recorded like any other interruption.
                    time.sleep(backoff)
                plan = step.plan(ctx)
                self.reporter.step_planned(step.id, plan)
                if dry_run:
                    return StepResult(step.id, "planned", plan, seconds=time.monotonic() - started)
                if plan.empty:
                    up_to_date = rec.status == Status.DONE and rec.digest == digest
                    if not up_to_date:
                        # Nothing to change, but the step was never seen to succeed (a failed verify,
                        # a crashed run, new inputs): check its post-condition before calling it done.
                        step.verify(ctx)
                    reason = "up to date" if up_to_date else "adopted"
                    self._finish(state, step.id, digest, plan.outputs)
                    self.reporter.step_skipped(step.id, reason)
                    return StepResult(
                        step.id, "up-to-date", plan, dict(plan.outputs), seconds=time.monotonic() - started
                    )
                with self._lock:
                    rec.status = Status.RUNNING
                    rec.attempts += 1
                    rec.started = checkpoint.now()
                    rec.error = None
                    self.store.save(state)
                outputs = step.apply(ctx, plan)
                step.verify(ctx)
                self._finish(state, step.id, digest, outputs)
                self.reporter.step_applied(step.id, outputs)
                return StepResult(step.id, "done", plan, dict(outputs), seconds=time.monotonic() - started)
            except WaitingForHuman as exc:
                message = self.redactor.redact(str(exc))
                self._fail(state, step.id, Status.WAITING, message)
                self.reporter.step_waiting(step.id, message)
                return StepResult(step.id, "waiting", message=message, seconds=time.monotonic() - started)
            except RetryableError as exc:
                message = self.redactor.redact(str(exc))
                if attempt < MAX_ATTEMPTS:
                    self.reporter.step_failed(step.id, message, retrying=True)
                    backoff = min(exc.delay if exc.delay is not None else 2.0**attempt, self.retry_delay_cap)
                    continue
                return self._failed(
                    state,
                    step.id,
                    f"{message} (gave up after {attempt} attempts; run the same command again to resume)",
                    started,
                )
            except ConfigError as exc:
                # Found while observing (unknown addon, unknown kit version): invalid input, exit 4.
                result = self._failed(state, step.id, self.redactor.redact(str(exc)), started)
                result.invalid_input = True
                return result
            except StepError as exc:
                return self._failed(state, step.id, self.redactor.redact(str(exc)), started)
            except KeyboardInterrupt:
                self._fail(state, step.id, Status.FAILED, "interrupted")
                self.reporter.step_failed(
                    step.id, "interrupted; the checkpoint is saved, run again to resume", retrying=False
                )
                return StepResult(
                    step.id, "interrupted", message="interrupted", seconds=time.monotonic() - started
                )
            except BootstrapError:
                raise
            except Exception as exc:  # a bug or an unmapped library error: record it, never lose state
                message = self.redactor.redact(f"unexpected {type(exc).__name__}: {exc}")
                return self._failed(state, step.id, message, started)

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
        return StepResult(step_id, "failed", message=message, seconds=time.monotonic() - started)

    def _intend(self, state: State, step_id: str, what: str) -> None:
        with self._lock:
            self._intend_locked(state, step_id, what)

    def _intend_locked(self, state: State, step_id: str, what: str) -> None:
        state.record(step_id).intents.append({"at": checkpoint.now(), "what": self.redactor.redact(what)})
        del state.record(step_id).intents[:-20]  # keep the file small on long-lived customers
        self.store.save(state)

    def _finish(self, state: State, step_id: str, digest: str, outputs: dict[str, object]) -> None:
        with self._lock:
            self._finish_locked(state, step_id, digest, outputs)

    def _finish_locked(self, state: State, step_id: str, digest: str, outputs: dict[str, object]) -> None:
        rec = state.record(step_id)
        rec.status = Status.DONE
        rec.digest = digest
        rec.finished = checkpoint.now()
        rec.error = None
        rec.outputs = dict(self.redactor.redact_obj(dict(outputs)))
        self.store.save(state)

    def _fail(self, state: State, step_id: str, status: Status, message: str) -> None:
        with self._lock:
            self._fail_locked(state, step_id, status, message)

    def _fail_locked(self, state: State, step_id: str, status: Status, message: str) -> None:
        rec = state.record(step_id)
        rec.status = status
        rec.error = message
        rec.finished = checkpoint.now()
        self.store.save(state)

    # -- rotate ----------------------------------------------------------------
    def rotate(self, ctx: Context, what: str, dry_run: bool = False) -> Summary:
        """Stage a new credential, roll it out through the step and its dependents, retire the old one.

        Every phase re-observes what is there, so a crashed rotation is finished
        by running ``rotate`` again (a staged credential is not generated twice)
        or by a plain ``run``.
        """
        customer = ctx.config.customer.name
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
        staged = self._stage(step, ctx, state, what, dry_run)
        summary.results.append(staged)
        if not dry_run and staged.status not in _STOPPING:
            results = self._run_sequential(rollout, ctx, state, dry_run=False)
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
        started = time.monotonic()
        self.reporter.step_started(step.id)
        ctx = self._step_context(ctx, state, step)
        try:
            plan = step.plan_rotate(ctx, what)
            self.reporter.step_planned(step.id, plan)
            if dry_run:
                return StepResult(step.id, "planned", plan, seconds=time.monotonic() - started)
            if plan.empty:
                self.reporter.step_skipped(step.id, f"a new {what} is already staged; finishing its rotation")
                return StepResult(step.id, "up-to-date", plan, seconds=time.monotonic() - started)
            with self._lock:
                rec = state.record(step.id)
                rec.status = Status.RUNNING  # the rollout below records done once the new credential is live
                rec.attempts += 1
                rec.started = checkpoint.now()
                rec.error = None
                self.store.save(state)
            outputs = step.rotate(ctx, plan)
            self.reporter.step_applied(step.id, outputs)
            return StepResult(step.id, "staged", plan, dict(outputs), seconds=time.monotonic() - started)
        except (StepError, ConfigError) as exc:
            message = self.redactor.redact(str(exc))
            if isinstance(exc, RetryableError):
                message += " (run the same rotate again to resume)"
            return self._failed(state, step.id, message, started)
        except KeyboardInterrupt:
            self._fail(state, step.id, Status.FAILED, "interrupted during rotate")
            return StepResult(
                step.id, "interrupted", message="interrupted", seconds=time.monotonic() - started
            )

    def _retire(self, chosen: list[Step], ctx: Context, state: State, results: dict[str, StepResult]) -> None:
        """Finish staged rotations whose step and dependents all succeeded in this run."""
        for step in chosen:
            if not isinstance(step, Rotatable):
                continue
            rollout = {step.id} | self._dependents(step.id)
            if not all(sid in results and results[sid].status in _SUCCESS for sid in rollout):
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
        chosen = list(reversed(select(self.steps, selection)))
        summary = Summary(customer=customer, mode="destroy-plan" if dry_run else "destroy")
        state = self.store.load(customer)
        ctx.outputs = _OutputsView(state)
        self.reporter.run_started(customer, summary.mode, [s.id for s in chosen])
        for step in chosen:
            result = self._destroy_step(step, ctx, state, dry_run)
            summary.results.append(result)
            if result.status in _STOPPING:
                break
        self.reporter.run_finished(summary)
        return summary

    def _destroy_step(self, step: Step, ctx: Context, state: State, dry_run: bool) -> StepResult:
        started = time.monotonic()
        self.reporter.step_started(step.id)
        ctx = self._step_context(ctx, state, step)
        try:
            plan = step.plan_destroy(ctx)
            self.reporter.step_planned(step.id, plan)
            if dry_run:
                return StepResult(step.id, "planned", plan, seconds=time.monotonic() - started)
            if not plan.empty:
                with self._lock:
                    rec = state.record(step.id)
                    rec.status = Status.RUNNING
                    rec.started = checkpoint.now()
                    self.store.save(state)
                step.destroy(ctx, plan)
            with self._lock:
                state.steps.pop(step.id, None)
                self.store.save(state)
            self.reporter.step_applied(step.id, {})
            return StepResult(
                step.id, "removed" if not plan.empty else "absent", plan, seconds=time.monotonic() - started
            )
        except RetryableError as exc:
            message = f"{self.redactor.redact(str(exc))} (run the same destroy again to resume)"
            return self._failed(state, step.id, message, started)
        except (StepError, ConfigError) as exc:
            return self._failed(state, step.id, self.redactor.redact(str(exc)), started)
        except KeyboardInterrupt:
            self._fail(state, step.id, Status.FAILED, "interrupted during destroy")
            return StepResult(
                step.id, "interrupted", message="interrupted", seconds=time.monotonic() - started
            )
        except BootstrapError:
            raise
        except Exception as exc:  # record it, never lose state
            message = self.redactor.redact(f"unexpected {type(exc).__name__}: {exc}")
            return self._failed(state, step.id, message, started)

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
