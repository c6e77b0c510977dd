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

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bootstrap import side_by_side
from bootstrap.step import Context, Plan, Step

Outputs = Callable[[str], Mapping[str, Any]]
"""A step id → the outputs the checkpoint holds for it now."""


@dataclass(frozen=True)
class _Early:
    seen: dict[str, dict[str, Any]]
    """The outputs of each required step when the plan started."""
    plan: side_by_side.Pending[Plan | None]


class EarlyPlans:
    """Starts ``steps``' plans now, at most ``workers`` at a time; ``take`` hands one over in its turn."""

    def __init__(
        self, steps: Sequence[Step], context_for: Callable[[Step], Context], outputs: Outputs, workers: int
    ) -> None:
        self._outputs = outputs
        self._dropped = threading.Event()
        seen: list[dict[str, dict[str, Any]]] = [{r: dict(outputs(r)) for r in s.requires} for s in steps]
        calls = [functools.partial(self._plan, step, context_for(step)) for step in steps]
        started = side_by_side.start(calls, workers, "early")
        self._early: dict[str, _Early] = {
            s.id: _Early(o, p) for s, o, p in zip(steps, seen, started, strict=True)
        }

    def _plan(self, step: Step, ctx: Context) -> Plan | None:
        return None if self._dropped.is_set() else step.plan(ctx)

    def take(self, step_id: str) -> Plan | None:
        """The early plan of ``step_id`` if there is one and it still holds (once: a retry plans again)."""
        early = self._early.pop(step_id, None)
        if early is None:
            return None
        early.plan.wait()
        if any(dict(self._outputs(r)) != seen for r, seen in early.seen.items()):
            return None
        try:
            return early.plan.result()
        except Exception:  # planned again in its turn, where failures are retried and reported
            return None

    def drop(self) -> None:
        """The run will not use them (failed checks, Ctrl-C): plans not yet started never start."""
        self._dropped.set()
        self._early.clear()


def never(what: str) -> None:
    """A plan announces no side effect; one that tries is stopped (it would be a bug in the step)."""
    raise RuntimeError(f"a plan announced a side effect: {what}")
