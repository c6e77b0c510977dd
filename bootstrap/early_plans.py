"""Plans made while the preflight checks run: both only read, so neither needs to wait for the other.

Without this, every run spent the checks' round trips (about 2 s against services 50 ms away)
before its first plan started, although no plan depends on a check: on a re-run with nothing to
change, that was a third of the time. The engine still reports, records and writes nothing
until the checks have passed; what changes is only that the reading is already done by then.

An early plan is used only while what it was made from still holds. It is made from the
checkpoint's outputs of the steps it requires (the same view a plan made in its turn would
read); when its turn comes, the engine takes it only if those outputs are unchanged, that is,
no step it requires recorded new outputs in this run. Otherwise (a requirement applied and
may have changed what the step sees) the step plans again, as it always did. A step whose
requirements are not all recorded done is not planned early at all: its plan would read
outputs that do not exist yet. A plan that failed early is simply made again in its turn,
where failures are retried, reported and recorded as usual.

The threads are daemons: Ctrl-C during the checks exits at once, as before, instead of
waiting for reads nobody will use; and if the checks fail, the early plans are dropped unseen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bootstrap.step import Context, Plan, Step

Outputs = Callable[[str], Mapping[str, Any]]
"""A step id → the outputs the checkpoint holds for it now."""


@dataclass
class _Early:
    seen: dict[str, dict[str, Any]]
    """The outputs of each required step when the plan started."""
    done: threading.Event = field(default_factory=threading.Event)
    plan: Plan | None = None


class EarlyPlans:
    """Starts ``steps``' plans now, at most ``workers`` at a time; ``take`` hands one over in its turn."""

    def __init__(
        self, steps: Sequence[Step], context_for: Callable[[Step], Context], outputs: Outputs, workers: int
    ) -> None:
        self._outputs = outputs
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._dropped = threading.Event()
        self._early: dict[str, _Early] = {}
        for step in steps:
            early = _Early({r: dict(outputs(r)) for r in step.requires})
            self._early[step.id] = early
            threading.Thread(
                target=self._plan,
                args=(step, context_for(step), early),
                name=f"early-{step.id}",
                daemon=True,
            ).start()

    def _plan(self, step: Step, ctx: Context, early: _Early) -> None:
        try:
            with self._slots:
                if not self._dropped.is_set():
                    early.plan = step.plan(ctx)
        except BaseException:  # planned again in its turn, where failures are retried and reported
            early.plan = None
        finally:
            early.done.set()

    def take(self, step_id: str) -> Plan | None:
        """The early plan of ``step_id`` if there is one and it still holds (once: a retry plans again)."""
        early = self._early.pop(step_id, None)
        if early is None:
            return None
        early.done.wait()
        if any(dict(self._outputs(r)) != seen for r, seen in early.seen.items()):
            return None
        return early.plan

    def drop(self) -> None:
        """The run will not use them (failed checks, Ctrl-C): plans not yet started never start."""
        self._dropped.set()
        self._early.clear()


def never(what: str) -> None:
    """A plan announces no side effect; one that tries is stopped (it would be a bug in the step)."""
    raise RuntimeError(f"a plan announced a side effect: {what}")
