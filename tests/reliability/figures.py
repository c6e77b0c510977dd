"""The reliability figures: collected by the tests, printed once at the end of the session.

Each reliability test records what it proved (crash points converged, transient faults
recovered, bad inputs rejected cleanly, secrets found, kills, Ctrl-C times) into ``FIGURES``.
The terminal summary prints them in one line even under ``pytest -q``, and
``BOOTSTRAP_FIGURES=path`` also writes them as JSON (``.ci/reliability`` reads that).

With pytest-xdist each worker process collects its own figures; every worker hands them to the
controller when it finishes (``workeroutput``), and the controller adds them up before printing,
so the line counts every test whichever process ran it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Tally:
    passed: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, ok: bool, what: str) -> None:
        self.total += 1
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)


@dataclass
class Figures:
    crash: Tally = field(default_factory=Tally)
    faults: Tally = field(default_factory=Tally)
    bad_inputs: Tally = field(default_factory=Tally)
    secrets_found: int = 0
    scans: int = 0
    kills: int = 0
    orphans: int = 0
    late_writes: int = 0
    ctrl_c_seconds: list[float] = field(default_factory=list)
    live_secrets: int = 0
    live_scans: int = 0
    live_scans_in_playbooks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ctrl_c_median(self) -> float | None:
        return statistics.median(self.ctrl_c_seconds) if self.ctrl_c_seconds else None

    def line(self) -> str:
        median = self.ctrl_c_median()
        ctrl_c = f"{median:.2f} s (median of {len(self.ctrl_c_seconds)})" if median is not None else "n/a"
        return (
            f"crash points converged {self.crash.passed}/{self.crash.total}, "
            f"transient faults recovered {self.faults.passed}/{self.faults.total}, "
            f"bad inputs rejected cleanly {self.bad_inputs.passed}/{self.bad_inputs.total}, "
            f"secrets found {self.secrets_found} (in {self.scans} scans), "
            f"orphans after kill {self.orphans} (in {self.kills} process-group kills, "
            f"{self.late_writes} writes after), "
            f"Ctrl-C to exit {ctrl_c}, "
            f"secrets on disk during a run {self.live_secrets} "
            f"(in {self.live_scans} scans, {self.live_scans_in_playbooks} while playbooks ran)"
        )

    def counts(self) -> dict[str, Any]:
        """Everything counted, as plain data (what a worker process hands to the controller)."""
        return {
            f.name: dataclasses.asdict(value) if isinstance(value := getattr(self, f.name), Tally) else value
            for f in dataclasses.fields(self)
            if f.name != "lock"
        }

    def absorb(self, counts: dict[str, Any]) -> None:
        """Add another process's ``counts()`` to these."""
        with self.lock:
            for name in ("crash", "faults", "bad_inputs"):
                tally, other = getattr(self, name), counts[name]
                tally.passed += other["passed"]
                tally.total += other["total"]
                tally.failures += other["failures"]
            for name in ("secrets_found", "scans", "kills", "orphans", "late_writes", "live_secrets"):
                setattr(self, name, getattr(self, name) + counts[name])
            self.live_scans += counts["live_scans"]
            self.live_scans_in_playbooks += counts["live_scans_in_playbooks"]
            self.ctrl_c_seconds += counts["ctrl_c_seconds"]

    def any(self) -> bool:
        shown = (self.crash, self.faults, self.bad_inputs)
        return bool(any(t.total for t in shown) or self.scans or self.kills or self.ctrl_c_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "crash_points": [self.crash.passed, self.crash.total],
            "transient_faults": [self.faults.passed, self.faults.total],
            "bad_inputs": [self.bad_inputs.passed, self.bad_inputs.total],
            "secrets_found": self.secrets_found,
            "scans": self.scans,
            "kills": self.kills,
            "orphans_after_kill": self.orphans,
            "writes_after_kill": self.late_writes,
            "ctrl_c_seconds": self.ctrl_c_seconds,
            "ctrl_c_median": self.ctrl_c_median(),
            "secrets_on_disk_during_run": self.live_secrets,
            "live_scans": [self.live_scans, self.live_scans_in_playbooks],
            "line": self.line(),
        }


FIGURES = Figures()


def print_summary(terminalreporter: Any) -> None:
    """The figures line (and each failure), and the JSON file ``BOOTSTRAP_FIGURES`` names."""
    if not FIGURES.any():
        return
    terminalreporter.write_sep("-", "reliability")
    terminalreporter.write_line(FIGURES.line())
    tallies = (("crash", FIGURES.crash), ("faults", FIGURES.faults), ("bad inputs", FIGURES.bad_inputs))
    for name, tally in tallies:
        for failure in tally.failures:
            terminalreporter.write_line(f"  {name} FAILED: {failure}")
    target = os.environ.get("BOOTSTRAP_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES.to_json(), indent=2) + "\n", encoding="utf-8")
