"""The process-wide bound on playbooks running at once (bootstrap/clients/ansible.py, PlaybookSlots).

A fleet run keeps its customers in parallel but never more playbooks than slots: each is a tree of
Python processes of ~300 MiB. Checked with events, not times: a second holder must wait until the
first lets go, and an interrupted run stops waiting.
"""

from __future__ import annotations

import threading

import pytest

from bootstrap.clients.ansible import SLOTS_ENV, PlaybookSlots, playbook_slots
from bootstrap.errors import Interrupted, PermanentError

WAIT = 60.0
"""Generous: the machine may be busy; nothing here waits that long unless the code is wrong."""


def test_a_second_playbook_waits_for_the_slot_and_says_so() -> None:
    slots = PlaybookSlots(1)
    never = threading.Event()
    first_in, release_first, second_in = threading.Event(), threading.Event(), threading.Event()
    lines: list[str] = []

    def first() -> None:
        with slots.hold(never, lines.append):
            first_in.set()
            release_first.wait(WAIT)

    def second() -> None:
        with slots.hold(never, lines.append):
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert first_in.wait(WAIT)
    b = threading.Thread(target=second)
    b.start()
    # The second holder cannot be in while the first holds the only slot.
    assert not second_in.wait(0.3)
    release_first.set()
    assert second_in.wait(WAIT)
    a.join(WAIT)
    b.join(WAIT)
    assert lines == ["waiting for a free playbook slot …"]


def test_an_interrupted_run_stops_waiting() -> None:
    slots = PlaybookSlots(1)
    cancelled = threading.Event()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.hold(threading.Event(), lambda _line: None):
            held.set()
            release.wait(WAIT)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(WAIT)
    cancelled.set()
    with pytest.raises(Interrupted), slots.hold(cancelled, lambda _line: None):
        pytest.fail("got a slot that was held")
    release.set()
    t.join(WAIT)
    # The slot is free again once its holder is done.
    with slots.hold(threading.Event(), lambda _line: None):
        pass


def test_slots_default_to_the_cpu_count_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SLOTS_ENV, raising=False)
    assert playbook_slots() >= 1
    monkeypatch.setenv(SLOTS_ENV, "3")
    assert playbook_slots() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(SLOTS_ENV, bad)
        with pytest.raises(PermanentError, match=SLOTS_ENV):
            playbook_slots()
