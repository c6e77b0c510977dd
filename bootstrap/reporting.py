"""Reporters: how the engine's events reach a person or a program.

The engine only calls the ``Reporter`` protocol, so the console, JSON output
and the tests' recording reporter all see the same event sequence. Every
reporter passes text through the redaction registry before it leaves the
process: a secret that slipped into an error message is still masked.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from bootstrap import outcome
from bootstrap.errors import ExitCode
from bootstrap.outcome import Outcome, StepResult
from bootstrap.secrets import Redactor
from bootstrap.step import Action, Outputs, Plan

__all__ = ["ConsoleReporter", "JsonReporter", "Outcome", "Reporter", "StepResult", "Summary"]


_WORDS = {
    Outcome.DONE: "done",
    Outcome.UP_TO_DATE: "up to date",
    Outcome.CHANGED: "changed",
    Outcome.FAILED: "failed",
    Outcome.WAITING: "waiting",
    Outcome.INTERRUPTED: "interrupted",
    Outcome.SKIPPED: "skipped",
    Outcome.STAGED: "staged",
}


@dataclass
class Summary:
    customer: str
    mode: str  # run | plan | destroy | destroy-plan | rotate | rotate-plan
    results: list[StepResult] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status in outcome.HALTING for r in self.results)

    @property
    def has_changes(self) -> bool:
        return any(r.status is Outcome.CHANGED for r in self.results)

    def exit_code(self) -> ExitCode:
        return outcome.exit_code(self.results)

    def counts(self) -> dict[Outcome, int]:
        """Steps per outcome, in the vocabulary's order; they add up to the steps selected."""
        found = Counter(r.status for r in self.results)
        return {o: found[o] for o in Outcome if found[o]}

    def change_counts(self) -> dict[Action, int]:
        """Planned changes per action over all steps (what a plan would do)."""
        found = Counter(c.action for r in self.results if r.plan is not None for c in r.plan.changes)
        return {a: found[a] for a in Action}

    def line(self) -> str:
        """The line read first: ``kuvaq: 12 to create, 3 to update, 0 to delete, 4 steps up to date``."""
        counts = self.counts()
        if self.mode.endswith("plan"):
            changes = self.change_counts()
            parts = [f"{changes[a]} to {a}" for a in (Action.CREATE, Action.UPDATE, Action.DELETE)]
            if changes[Action.REPLACE]:
                parts.insert(2, f"{changes[Action.REPLACE]} to replace")
            others = [f"{n} {_WORDS[o]}" for o, n in counts.items() if o not in (Outcome.CHANGED,)]
            return f"{self.customer}: " + ", ".join(parts + [_steps(o) for o in others])
        return f"{self.customer}: {self.mode} " + ", ".join(f"{n} {_WORDS[o]}" for o, n in counts.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "mode": self.mode,
            "exit_code": int(self.exit_code()),
            "counts": {str(o): n for o, n in self.counts().items()},
            "notices": self.notices,
            "steps": [
                {
                    "id": r.step,
                    "status": str(r.status),
                    "seconds": round(r.seconds, 3),
                    "plan": r.plan.to_json() if r.plan is not None else None,
                    "outputs": r.outputs,
                    "message": r.message,
                }
                for r in self.results
            ],
        }


def _steps(counted: str) -> str:
    """``4 up to date`` → ``4 steps up to date`` (``1 step …``)."""
    number, _, rest = counted.partition(" ")
    return f"{number} {'step' if number == '1' else 'steps'} {rest}"


def plain() -> bool:
    """NO_COLOR (no-color.org) is set: text without any escape sequence, and no live line.

    rich alone drops only the colours and keeps bold, dim and italic; someone who asks for no
    colour (a screen reader, a log file on a terminal) gets plain text, progress as plain lines.
    """
    return bool(os.environ.get("NO_COLOR"))


def console(file: TextIO | None = None, soft_wrap: bool = True) -> Console:
    """The console every human output goes through (stderr unless told): NO_COLOR means plain."""
    return Console(
        file=file or sys.stderr,
        highlight=False,
        soft_wrap=soft_wrap,
        color_system=None if plain() else "auto",
    )


class Reporter(Protocol):
    def run_started(self, customer: str, mode: str, steps: list[str]) -> None: ...
    def notice(self, text: str) -> None: ...
    def step_started(self, step: str) -> None: ...
    def step_progress(self, step: str, text: str) -> None: ...
    def step_planned(self, step: str, plan: Plan) -> None: ...
    def step_skipped(self, step: str, reason: str) -> None: ...
    def step_applied(self, step: str, outputs: Outputs) -> None: ...
    def step_failed(self, step: str, message: str, retrying: bool) -> None: ...
    def step_waiting(self, step: str, message: str) -> None: ...
    def run_finished(self, summary: Summary) -> None: ...


_SYMBOL = {
    Action.CREATE: "[green]+[/]",
    Action.UPDATE: "[yellow]~[/]",
    Action.REPLACE: "[yellow]±[/]",
    Action.DELETE: "[red]-[/]",
}
DIFF_LINES = 12
"""Changed lines shown per change without ``--diff`` (the rest is counted, not printed)."""


@dataclass
class _Block:
    """What one step has to say, printed whole when it finishes so concurrent steps never interleave."""

    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    doing: str = "planning"


class ConsoleReporter:
    """Human output on stderr (stdout stays free for ``--output json``).

    Each step's lines are collected and printed as one block under its name
    when the step finishes, in the order steps finish: with concurrent steps a
    line is always under the step it belongs to. While steps work, a terminal
    shows a live line per running step (spinner, elapsed time, what it awaits);
    piped output gets plain progress lines prefixed with the step instead.
    Diffs show the changed lines only, at most ``DIFF_LINES`` per change,
    unless ``full_diff`` (``--diff``) asks for whole unified diffs.
    """

    def __init__(
        self,
        redactor: Redactor,
        stream: TextIO | None = None,
        verbose: bool = False,
        full_diff: bool = False,
    ) -> None:
        self.redactor = redactor
        self.console = console(stream)
        self.verbose = verbose
        self.full_diff = full_diff
        self.mode = "run"
        self._lock = threading.RLock()
        self._blocks: dict[str, _Block] = {}
        self._live: Live | None = None

    # -- output primitives ---------------------------------------------------------------------
    def _print(self, text: str) -> None:
        with self._lock:
            self.console.print(text)

    def _safe(self, text: str) -> str:
        return escape(self.redactor.redact(text))

    def _add(self, step: str, text: str) -> None:
        with self._lock:
            block = self._blocks.get(step)
            if block is None:
                self._print(text)
            else:
                block.lines.append(text)

    def _flush(self, step: str, closing: str | None = None) -> None:
        with self._lock:
            block = self._blocks.pop(step, None)
            lines = [f"[bold cyan]▶ {step}[/]", *(block.lines if block else [])]
            if closing:
                lines.append(closing)
            self._print("\n".join(lines))
            self._refresh()

    # -- live progress (terminals only) --------------------------------------------------------
    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._activity(), refresh=True)

    def _activity(self) -> Group:
        now = time.monotonic()
        rows = [
            Spinner(
                "dots",
                text=Text.from_markup(
                    f"[cyan]{step}[/] [dim]{now - block.started:4.0f}s[/] {self._safe(block.doing)}"
                ),
            )
            for step, block in self._blocks.items()
        ]
        return Group(*rows)

    # -- events ------------------------------------------------------------------------------
    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        self.mode = mode
        self._print(f"[bold]{mode}[/] customer [bold]{escape(customer)}[/]: {len(steps)} step(s)")
        if self.console.is_terminal and not plain() and self._live is None:
            self._live = Live(
                self._activity(),
                console=self.console,
                refresh_per_second=4,
                transient=True,
                get_renderable=self._activity,
            )
            self._live.start()

    def notice(self, text: str) -> None:
        self._print(f"[yellow]![/] {self._safe(text)}")

    def step_started(self, step: str) -> None:
        with self._lock:
            self._blocks[step] = _Block()
            self._refresh()

    def step_progress(self, step: str, text: str) -> None:
        with self._lock:
            block = self._blocks.get(step)
            if block is not None:
                block.doing = text
            if self._live is None:
                self._print(f"  [dim]{step}:[/] {self._safe(text)}")
            else:
                self._refresh()

    def step_planned(self, step: str, plan: Plan) -> None:
        for note in plan.notes:
            self._add(step, f"  [dim]note:[/] {self._safe(note)}")
        for change in plan.changes:
            summary = f" — {self._safe(change.summary)}" if change.summary else ""
            self._add(
                step, f"  {_SYMBOL[change.action]} {change.action} {self._safe(change.target)}{summary}"
            )
            for line in self._diff_lines(change.diff):
                self._add(step, line)
        with self._lock:
            if step in self._blocks:
                self._blocks[step].doing = "applying" if not plan.empty else "checking"
        if self.mode.endswith("plan"):
            word = "up to date" if plan.empty else f"{len(plan.changes)} change(s)"
            self._flush(step, f"  [dim]{step}: {word}[/]")

    def _diff_lines(self, diff: str) -> list[str]:
        if not diff:
            return []
        lines = self.redactor.redact(diff).splitlines()
        if not self.full_diff:
            changed = [
                line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))
            ] or lines
            if len(changed) > DIFF_LINES:
                more = len(changed) - DIFF_LINES
                changed = [
                    *changed[:DIFF_LINES],
                    f"… {more} more changed line(s); --diff shows the whole diff",
                ]
            lines = changed
        out = []
        for line in lines:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.append(f"      [{style}]{escape(line)}[/]")
        return out

    def step_skipped(self, step: str, reason: str) -> None:
        self._flush(step, f"  [dim]{step}: {self._safe(reason)}[/]")

    def step_applied(self, step: str, outputs: Outputs) -> None:
        self._flush(step, f"  [green]✓ {step} done[/]")

    def step_failed(self, step: str, message: str, retrying: bool) -> None:
        if retrying:
            self._add(step, f"  [yellow]retrying[/] {step}: {self._safe(message)}")
            return
        self._flush(step, f"  [red]✗ {step} failed:[/] {self._safe(message)}")

    def step_waiting(self, step: str, message: str) -> None:
        self._flush(step, f"  [magenta]⏸ {step} is waiting for you:[/]\n{self._safe(message)}")

    def run_finished(self, summary: Summary) -> None:
        with self._lock:
            # Blocks still open belong to steps that never finished: after an interruption they are
            # dropped (nothing of a step may follow "run interrupted"; the summary names them).
            interrupted = any(r.status is Outcome.INTERRUPTED for r in summary.results)
            for step in list(self._blocks):
                if interrupted:
                    self._blocks.pop(step)
                else:
                    self._flush(step)
            if self._live is not None:
                self._live.stop()
                self._live = None
        code = summary.exit_code()
        word = {
            ExitCode.OK: "[green]finished[/]",
            ExitCode.FAILED: "[red]failed[/]",
            ExitCode.CHANGES: "[yellow]changes planned[/]",
            ExitCode.WAITING: "[magenta]waiting[/]",
            ExitCode.INVALID_INPUT: "[red]invalid input[/]",
            ExitCode.INTERRUPTED: "[red]interrupted[/]",
        }.get(code, str(int(code)))
        self._print(f"[bold]{escape(self.redactor.redact(summary.line()))}[/] — {word}")
        if any(r.status is Outcome.INTERRUPTED for r in summary.results):
            return  # what did not start is plain after an interruption; nothing of a step follows it
        for r in summary.results:
            if r.status is Outcome.SKIPPED and r.message:
                self._print(f"  [dim]{r.step}: {self._safe(r.message)}[/]")


class JsonReporter(ConsoleReporter):
    """Progress as text on stderr, one JSON document on stdout at the end."""

    def __init__(
        self, redactor: Redactor, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        super().__init__(redactor, stderr)
        self.stdout = stdout or sys.stdout

    def run_finished(self, summary: Summary) -> None:
        super().run_finished(summary)
        self.stdout.write(json.dumps(self.redactor.redact_obj(summary.to_json()), indent=2) + "\n")
        self.stdout.flush()


class PrefixedReporter(ConsoleReporter):
    """One line per event, prefixed with the customer, for fleet runs (no diffs: the table sums up)."""

    def __init__(self, redactor: Redactor, prefix: str, stream: TextIO | None = None) -> None:
        super().__init__(redactor, stream)
        self.prefix = escape(prefix)
        self.console = Console(
            file=stream or sys.stderr, highlight=False, soft_wrap=True, force_terminal=False
        )

    def _print(self, text: str) -> None:
        with self._lock:
            for line in text.splitlines():
                if not line.lstrip().startswith("[bold cyan]▶"):
                    self.console.print(f"[dim]{self.prefix}[/] {line.lstrip()}")

    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        self.mode = mode

    def step_started(self, step: str) -> None:
        pass

    def step_progress(self, step: str, text: str) -> None:
        pass

    def step_planned(self, step: str, plan: Plan) -> None:
        if not plan.empty:
            self._print(f"{step}: {len(plan.changes)} change(s)")

    def run_finished(self, summary: Summary) -> None:
        pass


def print_fleet_table(rows: list[tuple[str, str, int, str]], redactor: Redactor) -> None:
    """The fleet summary: one row per customer with its exit code and what happened."""
    from rich.table import Table

    table = Table(title="customers")
    for col in ("customer", "file", "exit", "result"):
        table.add_column(col)
    for customer, path, code, detail in rows:
        calm = (ExitCode.CHANGES, ExitCode.WAITING)
        style = "green" if code == ExitCode.OK else "yellow" if code in calm else "red"
        table.add_row(escape(customer), escape(path), f"[{style}]{code}[/]", escape(redactor.redact(detail)))
    console().print(table)
