"""The reliability figures: collected by the tests, printed once at the end of the session.

Every test here is marked ``reliability``. Each records what it proved into the
session's ``figures`` (crash points converged, transient faults recovered, bad
inputs rejected cleanly, secrets found); the terminal summary prints them in
one line even under ``pytest -q``, and ``BOOTSTRAP_FIGURES=path`` also writes
them as JSON (``.ci/reliability`` uses that to print the same line).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.vault import OpenBao
from tests.fixtures.world import World, open_world
from tests.reliability import harness


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
    # A test that destroys the shared onboarded world goes last: any order is correct (every user
    # settles the world first), but a user after it would pay a whole onboarding run again.
    spenders = [item for item in items if item.get_closest_marker("spends_onboarded_world")]
    for item in spenders:
        items.remove(item)
        items.append(item)


@pytest.fixture
def figures() -> Figures:
    return FIGURES


@pytest.fixture(scope="session")
def reference_world(
    openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, harness.Reference]]:
    """One clean run of the whole workflow, described, and the onboarded world it leaves, kept open.

    The run is both the reference every crash, kill and fault test compares its end state with
    and the starting point of the tests that need an onboarded world: one full run, not two.
    """
    from tests.reliability import hygiene

    with open_world(tmp_path_factory.mktemp("reference"), openbao, light_manifest=True) as world:
        ref = harness.reference(world)
        found = hygiene.scan(world)
        FIGURES.scans += 1
        FIGURES.secrets_found += len(found)
        assert found == [], [str(f) for f in found]
        with _watchdog(world):
            yield world, ref


@contextlib.contextmanager
def _watchdog(world: World) -> Iterator[None]:
    """Alertmanager's Watchdog for a world that lives for the rest of the session: a ping a minute.

    The sandbox runs no Alertmanager, and alertmanager-opsgenie's verify rightly fails a heartbeat
    never pinged two intervals (20 min) after its creation, or not pinged for one: a world shared
    by tests spread over the session (and slowed down by a loaded machine) gets that old. The ping
    is set in the emulator's state, as its ping endpoint would, so no call log counts it as a write.
    """
    stop = threading.Event()

    def ping() -> None:
        while True:
            now = datetime.datetime.now(datetime.UTC).timestamp()
            for settings in list(world.opsgenie.heartbeat_settings.values()):
                settings["lastPing"] = now
            if stop.wait(60):
                return

    thread = threading.Thread(target=ping, name="watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def clean_reference(reference_world: tuple[World, harness.Reference]) -> harness.Reference:
    """One clean run of the whole workflow, shared by every test that compares an end state with it."""
    return reference_world[1]


@pytest.fixture(scope="session")
def onboarded_world(reference_world: tuple[World, harness.Reference]) -> World:
    """One fully onboarded world (the reference run's) shared by the tests that start from one.

    Each user calls ``harness.settle`` first, so a test that failed half-way cannot leave the
    next one an unfinished world; the reference's description was taken before any of them ran.
    """
    return reference_world[0]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    shown = (FIGURES.crash, FIGURES.faults, FIGURES.bad_inputs)
    if not (any(t.total for t in shown) or FIGURES.scans or FIGURES.kills or FIGURES.ctrl_c_seconds):
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
