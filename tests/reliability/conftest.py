"""The reliability tests' shared worlds and their ``figures`` (see tests/reliability/figures.py).

Every test here is marked ``reliability``. Each records what it proved into the
session's ``figures``; the root conftest prints them at the end of the session.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.vault import OpenBao
from tests.fixtures.world import World, open_world
from tests.reliability import harness
from tests.reliability.figures import FIGURES, Figures


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
