"""Running one or many customers: what ``run``, ``plan`` and ``destroy`` share.

Each customer gets its own session, lock and checkpoint; a failure of one
customer never stops the others (its outcome is recorded and the run goes
on), and the process exit code is the worst of theirs. Customers run
concurrently up to ``parallel``; within a customer, independent steps run
concurrently too unless ``parallel`` is 1 (the sequential behaviour).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from bootstrap import engine, outcome, preflight, reporting, secrets, session
from bootstrap import step as step_contract
from bootstrap.errors import BootstrapError, ExitCode
from bootstrap.reporting import Reporter, Summary
from bootstrap.step import Step

Mode = Literal["run", "plan", "destroy", "destroy-plan", "rotate", "rotate-plan"]
_PREVIEWS = ("plan", "destroy-plan", "rotate-plan")
"""Modes that only read: no lock, no checkpoint written."""
STEP_PARALLELISM = 4


@dataclass(frozen=True)
class Options:
    mode: Mode
    selection: engine.Selection = field(default_factory=engine.Selection)
    parallel: int = STEP_PARALLELISM
    state_dir: Path | None = None
    state_url: str | None = None
    json_output: bool = False
    force: bool = False
    break_lock: bool = False
    full_diff: bool = False
    skip_checks: bool = False
    """Run and plan start with the preflight checks unless this is set."""
    rotation: str = ""
    """What ``rotate`` replaces (one of the steps' ``rotations``)."""
    document_to: TextIO | None = None
    """Where the ``--output json`` document of one customer goes instead of stdout (a destroy's
    preview, printed only if the person declines)."""


@dataclass(frozen=True)
class CustomerResult:
    """One customer's command: its exit code and either the engine's summary or the error that ended it."""

    path: Path
    customer: str
    exit_code: int
    summary: Summary | None = None
    error: str | None = None


def execute_one(
    path: Path,
    steps: Sequence[type[Step]],
    opts: Options,
    reporter: Reporter,
    step_parallel: int,
    catch: bool = True,
) -> CustomerResult:
    """One customer end to end; with ``catch``, bootstrap errors become a CustomerResult (fleet runs)."""
    try:
        sess = session.open_session(path, opts.state_dir, force=opts.force, state_url=opts.state_url)
        checked = opts.mode in ("run", "plan") and not opts.skip_checks
        eng = engine_for(sess, steps, reporter, checked)
        # A preview only reads (the checkpoint is replaced atomically), so it runs beside a run.
        preview = opts.mode in _PREVIEWS
        lock = contextlib.nullcontext(None) if preview else sess.store.lock(break_lock=opts.break_lock)
        with lock as notice:
            if notice:
                reporter.notice(notice)
            if opts.mode in ("destroy", "destroy-plan"):
                summary = eng.destroy(sess.context, opts.selection, dry_run=preview)
            elif opts.mode in ("rotate", "rotate-plan"):
                summary = eng.rotate(sess.context, opts.rotation, dry_run=preview)
            else:
                summary = eng.run(
                    sess.context, opts.selection, dry_run=opts.mode == "plan", parallel=step_parallel
                )
        if summary.failed and opts.mode == "run" and summary.exit_code() != ExitCode.INTERRUPTED:
            failed = next(r.step for r in summary.results if r.status in outcome.HALTING)
            reporter.notice(f"fix the cause, then run the same command again to resume from {failed}")
        return CustomerResult(path, sess.config.customer.name, summary.exit_code(), summary)
    except BootstrapError as exc:
        if not catch:
            raise
        return CustomerResult(path, path.parent.name, exc.exit_code, error=secrets.REDACTOR.redact(str(exc)))


def engine_for(
    sess: session.Session, steps: Sequence[type[Step]], reporter: Reporter, checked: bool = False
) -> engine.Engine:
    """The one way an Engine is built for a customer: fresh steps, the session's store and redactor.

    ``checked`` adds the preflight checks before the first step (run and plan).
    """
    return engine.Engine(
        step_contract.for_config(steps, sess.config),
        sess.store,
        reporter,
        sess.redactor,
        preflight=preflight.hook if checked else None,
    )


def execute(paths: Sequence[Path], steps: Sequence[type[Step]], opts: Options) -> int:
    """Run ``opts.mode`` for every customer file; returns the process exit code."""
    if len(paths) == 1:
        reporter = _reporter(opts, prefix=None)
        # Errors propagate to the CLI's one handler, which prints them (and, with --output json,
        # one document with their details).
        return execute_one(paths[0], steps, opts, reporter, opts.parallel, catch=False).exit_code
    step_parallel = 1 if opts.parallel <= 1 else STEP_PARALLELISM

    def one(path: Path) -> CustomerResult:
        return execute_one(
            path, steps, opts, _reporter(opts, prefix=path.parent.name, quiet=True), step_parallel
        )

    pool = ThreadPoolExecutor(max_workers=max(1, opts.parallel), thread_name_prefix="customer")
    try:
        customers = list(pool.map(one, paths))
    finally:
        # On Ctrl-C, do not wait for the customers still running: the process exits 130 at once
        # and what they started dies with it (their checkpoints were saved before each side effect).
        pool.shutdown(wait=False, cancel_futures=True)
    _print_fleet(customers, opts)
    return outcome.worst([o.exit_code for o in customers])


def _reporter(opts: Options, prefix: str | None, quiet: bool = False) -> Reporter:
    redactor = secrets.REDACTOR
    if quiet:
        return reporting.PrefixedReporter(redactor, prefix or "")
    if opts.json_output:
        return reporting.JsonReporter(redactor, stdout=opts.document_to)
    return reporting.ConsoleReporter(redactor, full_diff=opts.full_diff)


def _print_fleet(
    customers: list[CustomerResult], opts: Options, write: Callable[[str], object] | None = None
) -> None:
    redact = secrets.REDACTOR.redact_obj
    if opts.json_output:
        doc = {
            "exit_code": outcome.worst([o.exit_code for o in customers]),
            "customers": [
                {
                    "file": str(o.path),
                    "customer": o.customer,
                    "exit_code": o.exit_code,
                    "error": o.error,
                    "summary": o.summary.to_json() if o.summary else None,
                }
                for o in customers
            ],
        }
        (write or sys.stdout.write)(json.dumps(redact(doc), indent=2) + "\n")
        return
    reporting.print_fleet_table(
        [(o.customer, str(o.path), o.exit_code, _describe(o)) for o in customers], secrets.REDACTOR
    )


def _describe(o: CustomerResult) -> str:
    """The whole reason, not its first line: a fleet table is where a person looks first."""
    if o.error:
        return o.error
    if o.summary is None:
        return ""
    detail = o.summary.line().removeprefix(f"{o.summary.customer}: ")
    stopped = [r for r in o.summary.results if r.status in outcome.STOPPING and r.message]
    return "\n".join([detail, *(f"{r.step}: {r.message}" for r in stopped)])
