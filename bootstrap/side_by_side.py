"""Independent reads made at the same time, on threads that never hold up the process's exit.

A plan's reads rarely depend on each other, and one after another each costs a full round trip.
``concurrent.futures`` would run them side by side too, but its worker threads are joined when
the interpreter exits: after Ctrl-C the process would wait for reads nobody will use (plans
made early, while the preflight checks ran, are still reading then). These threads are daemons;
the caller waits for them, the exiting process does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

T = TypeVar("T")


def run(calls: Sequence[Callable[[], T]], at_most: int = 8, name: str = "read") -> list[T]:
    """Each call's result, in order, at most ``at_most`` running at once.

    Every call runs to its end; then the first failure (in the calls' order) is raised, as one
    call after another would have raised it. A single call runs on the caller's thread.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    failures: list[BaseException | None] = [None] * len(calls)
    slots = threading.BoundedSemaphore(max(1, at_most))

    def work(index: int, call: Callable[[], T]) -> None:
        with slots:
            try:
                results[index] = call()
            except BaseException as exc:  # handed to the caller below
                failures[index] = exc

    threads = [
        threading.Thread(target=work, args=(i, call), name=f"{name}-{i}", daemon=True)
        for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures:
        if failure is not None:
            raise failure
    return cast(list[T], results)  # every slot was filled: no call failed
