"""bootstrap/side_by_side.py: independent reads at once, results in order, failures as one at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bootstrap import side_by_side

WAIT = 60.0


def test_results_come_back_in_the_calls_order_and_the_calls_overlap() -> None:
    barrier = threading.Barrier(3, timeout=WAIT)  # each call waits until all three run at once

    def call(n: int) -> Callable[[], int]:
        def read() -> int:
            barrier.wait()
            return n

        return read

    assert side_by_side.run([call(1), call(2), call(3)]) == [1, 2, 3]


def test_at_most_bounds_the_calls_running_at_once() -> None:
    running, peak = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def read() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if peak == 2:
                release.set()
        release.wait(WAIT)
        with lock:
            running -= 1

    side_by_side.run([read] * 6, at_most=2)
    assert peak == 2


def test_every_call_ends_and_then_the_first_failure_in_order_is_raised() -> None:
    ended: list[str] = []

    def fails(what: str) -> Callable[[], None]:
        def read() -> None:
            ended.append(what)
            raise KeyError(what)

        return read

    def succeeds() -> None:
        ended.append("ok")

    with pytest.raises(KeyError, match="first"):
        side_by_side.run([succeeds, fails("first"), fails("second")])
    assert sorted(ended) == ["first", "ok", "second"]


def test_the_threads_never_hold_up_the_exit() -> None:
    seen: list[bool] = []
    side_by_side.run([lambda: seen.append(threading.current_thread().daemon)] * 2)
    assert seen == [True, True]


def test_a_single_call_runs_on_the_callers_thread() -> None:
    assert side_by_side.run([threading.current_thread]) == [threading.current_thread()]
