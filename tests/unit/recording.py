"""A reporter that records the engine's event sequence (doit's FakeReporter).

Tests assert on ``events`` (a list of ``(event, step, detail)`` tuples) instead
of on console text, so they do not break when the wording of output changes.
"""

from __future__ import annotations

from typing import Any

from bootstrap.reporting import Summary
from bootstrap.step import Outputs, Plan

Event = tuple[str, str, Any]


class RecordingReporter:
    """Implements ``bootstrap.reporting.Reporter``; keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.summary: Summary | None = None

    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        self.events.append(("run_started", customer, (mode, tuple(steps))))

    def notice(self, text: str) -> None:
        self.events.append(("notice", "", text))

    def step_started(self, step: str) -> None:
        self.events.append(("step_started", step, None))

    def step_progress(self, step: str, text: str) -> None:
        self.events.append(("step_progress", step, text))

    def step_planned(self, step: str, plan: Plan) -> None:
        self.events.append(("step_planned", step, len(plan.changes)))

    def step_skipped(self, step: str, reason: str) -> None:
        self.events.append(("step_skipped", step, reason))

    def step_applied(self, step: str, outputs: Outputs) -> None:
        self.events.append(("step_applied", step, dict(outputs)))

    def step_failed(self, step: str, message: str, retrying: bool) -> None:
        self.events.append(("step_retrying" if retrying else "step_failed", step, message))

    def step_waiting(self, step: str, message: str) -> None:
        self.events.append(("step_waiting", step, message))

    def run_finished(self, summary: Summary) -> None:
        self.summary = summary
        self.events.append(("run_finished", summary.customer, summary.exit_code()))

    # -- queries -----------------------------------------------------------------
    def of(self, event: str) -> list[Event]:
        return [e for e in self.events if e[0] == event]

    def steps_with(self, event: str) -> list[str]:
        """Step ids that got ``event``, in order."""
        return [e[1] for e in self.events if e[0] == event]
