"""What happened to a step, and what a command's results mean as a process exit code.

Guarantees:
- one vocabulary, ``Outcome``, for the engine, the reporters, ``--output json``
  and the fleet table: no step status is a bare string compared in several places;
- a ``StepResult`` is a frozen value: once the engine has decided an outcome,
  nothing downstream rewrites it;
- one function, ``exit_code``, maps a command's step results to the exit code of
  DESIGN.md §7, and one order, ``worst``, combines several customers' codes; the
  CLI and the fleet runner both use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from bootstrap.errors import ExitCode
from bootstrap.step import Outputs, Plan


class Outcome(StrEnum):
    """The one vocabulary for what happened to a step: summary lines, the status table and JSON alike."""

    DONE = "done"
    """Applied (or, for destroy, removed)."""
    UP_TO_DATE = "up-to-date"
    """Nothing to change (for destroy: nothing left to remove)."""
    CHANGED = "changed"
    """A preview (plan, destroy or rotate plan) found changes to make; only previews have it."""
    FAILED = "failed"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    """Not started: a step it requires did not succeed in this run."""
    STAGED = "staged"
    """``rotate``: a new credential is in place beside the old one, rolled out by the steps that follow."""


SUCCESS = frozenset({Outcome.DONE, Outcome.UP_TO_DATE})
"""Outcomes a dependent step may build on."""
HALTING = frozenset({Outcome.FAILED, Outcome.INTERRUPTED})
"""Outcomes after which no new step starts. A step waiting for a person blocks only its dependents."""
STOPPING = HALTING | {Outcome.WAITING}
"""Outcomes that end a strictly ordered sequence (destroy, a rotation's staging)."""


@dataclass(frozen=True)
class StepResult:
    step: str
    status: Outcome
    plan: Plan | None = None
    outputs: Outputs = field(default_factory=dict)
    message: str | None = None
    seconds: float = 0.0
    invalid_input: bool = False
    """A failure found bad input (unknown addon, unknown kit version): exit 4 rather than 1."""


def previewed(plan: Plan) -> Outcome:
    """A preview's outcome: whether its plan found changes."""
    return Outcome.UP_TO_DATE if plan.empty else Outcome.CHANGED


def exit_code(results: Iterable[StepResult]) -> ExitCode:
    """The process exit code of one customer's command (DESIGN.md §7).

    Interrupted beats failed (the checkpoint is saved, run again); a failure that is
    only bad input is 4; a person's turn is 3; a preview with changes is 2.
    """
    listed = list(results)
    found = {r.status for r in listed}
    if Outcome.INTERRUPTED in found:
        return ExitCode.INTERRUPTED
    if Outcome.FAILED in found:
        invalid = all(r.invalid_input for r in listed if r.status is Outcome.FAILED)
        return ExitCode.INVALID_INPUT if invalid else ExitCode.FAILED
    if Outcome.WAITING in found:
        return ExitCode.WAITING
    if Outcome.CHANGED in found:
        return ExitCode.CHANGES
    return ExitCode.OK


_SEVERITY = (
    ExitCode.INTERRUPTED,
    ExitCode.FAILED,
    ExitCode.INVALID_INPUT,
    ExitCode.LOCKED,
    ExitCode.WAITING,
    ExitCode.CHANGES,
    ExitCode.OK,
)
"""Worst first, for a fleet: one interrupted or failed customer decides the process's code."""


def worst(codes: Iterable[int]) -> int:
    """The exit code of several customers' commands: the most severe of theirs."""
    present = set(codes)
    return next((int(c) for c in _SEVERITY if c in present), max(present, default=0))
