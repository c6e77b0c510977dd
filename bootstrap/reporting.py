"""Reporters: how the engine's events reach a person or a program.

The engine only calls the ``Reporter`` protocol, so the console, JSON output
and the tests' recording reporter all see the same event sequence. Every
reporter passes text through the redaction registry before it leaves the
process: a secret that slipped into an error message is still masked.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.markup import escape

from bootstrap.secrets import Redactor
from bootstrap.step import Action, Outputs, Plan


@dataclass
class StepResult:
    step: str
    status: str  # done | up-to-date | planned | failed | waiting | skipped | interrupted
    plan: Plan | None = None
    outputs: Outputs = field(default_factory=dict)
    message: str | None = None
    seconds: float = 0.0
    invalid_input: bool = False


@dataclass
class Summary:
    customer: str
    mode: str  # run | plan | destroy | destroy-plan
    results: list[StepResult] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status in ("failed", "interrupted") for r in self.results)

    @property
    def waiting(self) -> bool:
        return any(r.status == "waiting" for r in self.results)

    @property
    def has_changes(self) -> bool:
        return any(r.plan is not None and not r.plan.empty for r in self.results)

    def exit_code(self) -> int:
        if any(r.status == "interrupted" for r in self.results):
            return 130
        if self.failed:
            return 4 if all(r.invalid_input for r in self.results if r.status == "failed") else 1
        if self.waiting:
            return 3
        if self.mode.endswith("plan") and self.has_changes:
            return 2
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "mode": self.mode,
            "exit_code": self.exit_code(),
            "notices": self.notices,
            "steps": [
                {
                    "id": r.step,
                    "status": r.status,
                    "seconds": round(r.seconds, 3),
                    "plan": r.plan.to_json() if r.plan is not None else None,
                    "outputs": r.outputs,
                    "message": r.message,
                }
                for r in self.results
            ],
        }


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


class ConsoleReporter:
    """Human output on stderr (stdout stays free for ``--output json``)."""

    def __init__(self, redactor: Redactor, stream: TextIO | None = None, verbose: bool = False) -> None:
        self.redactor = redactor
        self.console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            self.console.print(text)

    def _safe(self, text: str) -> str:
        return escape(self.redactor.redact(text))

    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        self._print(f"[bold]{mode}[/] customer [bold]{escape(customer)}[/]: {len(steps)} step(s)")

    def notice(self, text: str) -> None:
        self._print(f"[yellow]![/] {self._safe(text)}")

    def step_started(self, step: str) -> None:
        self._print(f"[bold cyan]▶ {step}[/]")

    def step_progress(self, step: str, text: str) -> None:
        self._print(f"  [dim]{step}:[/] {self._safe(text)}")

    def step_planned(self, step: str, plan: Plan) -> None:
        for note in plan.notes:
            self._print(f"  [dim]note:[/] {self._safe(note)}")
        for change in plan.changes:
            summary = f" — {self._safe(change.summary)}" if change.summary else ""
            self._print(f"  {_SYMBOL[change.action]} {change.action} {self._safe(change.target)}{summary}")
            if change.diff:
                for line in self.redactor.redact(change.diff).splitlines():
                    style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                    self._print(f"      [{style}]{escape(line)}[/]")

    def step_skipped(self, step: str, reason: str) -> None:
        self._print(f"  [dim]{step}: {self._safe(reason)}[/]")

    def step_applied(self, step: str, outputs: Outputs) -> None:
        self._print(f"  [green]✓ {step} done[/]")

    def step_failed(self, step: str, message: str, retrying: bool) -> None:
        tag = "[yellow]retrying[/]" if retrying else "[red]✗ failed[/]"
        self._print(f"  {tag} {step}: {self._safe(message)}")

    def step_waiting(self, step: str, message: str) -> None:
        self._print(f"  [magenta]⏸ {step} is waiting for you:[/]\n{self._safe(message)}")

    def run_finished(self, summary: Summary) -> None:
        code = summary.exit_code()
        word = {
            0: "[green]finished[/]",
            1: "[red]failed[/]",
            2: "[yellow]changes planned[/]",
            3: "[magenta]waiting[/]",
            130: "[red]interrupted[/]",
        }.get(code, str(code))
        counts: dict[str, int] = {}
        for r in summary.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in counts.items())
        self._print(f"[bold]{summary.mode} {word}[/] ({detail})")


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

    def _print(self, text: str) -> None:
        with self._lock:
            self.console.print(f"[dim]{self.prefix}[/] {text.lstrip()}")

    def run_started(self, customer: str, mode: str, steps: list[str]) -> None:
        pass

    def step_started(self, step: str) -> None:
        pass

    def step_planned(self, step: str, plan: Plan) -> None:
        if not plan.empty:
            self._print(f"{step}: {len(plan.changes)} change(s)")


def print_fleet_table(rows: list[tuple[str, str, int, str]], redactor: Redactor) -> None:
    """The fleet summary: one row per customer with its exit code and what happened."""
    from rich.table import Table

    table = Table(title="customers")
    for col in ("customer", "file", "exit", "result"):
        table.add_column(col)
    for customer, path, code, detail in rows:
        style = "green" if code == 0 else "yellow" if code in (2, 3) else "red"
        table.add_row(escape(customer), escape(path), f"[{style}]{code}[/]", escape(redactor.redact(detail)))
    Console(file=sys.stderr, soft_wrap=True).print(table)
