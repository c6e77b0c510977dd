"""Independent reads made at the same time, on threads that never hold up the process's exit.

A plan's reads rarely depend on each other, and one after another each costs a full round trip.
``concurrent.futures`` would run them side by side too, but its worker threads are joined when
the interpreter exits: after Ctrl-C the process would wait for reads nobody will use (plans
made early, while the preflight checks ran, are still reading then). These threads are daemons;
whoever needs a result waits for it, the exiting process does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Pending(Generic[T]):
    """One call started by ``start``: ``wait`` until it has ended, ``result`` for its value or failure."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self._failure: BaseException | None = None

    def wait(self) -> None:
        self._done.wait()

    def result(self) -> T:
        self.wait()
        if self._failure is not None:
            raise self._failure
        return cast(T, self._value)

    def _run(self, call: Callable[[], T], slots: threading.BoundedSemaphore) -> None:
        try:
            with slots:
                self._value = call()
        except BaseException as exc:  # handed to whoever asks for the result
            self._failure = exc
        finally:
            self._done.set()


def start(calls: Sequence[Callable[[], T]], at_most: int = 8, name: str = "read") -> list[Pending[T]]:
    """Start every call now, at most ``at_most`` running at once; one ``Pending`` per call, in order."""
    slots = threading.BoundedSemaphore(max(1, at_most))
    pending: list[Pending[T]] = []
    for i, call in enumerate(calls):
        handle: Pending[T] = Pending()
        threading.Thread(target=handle._run, args=(call, slots), name=f"{name}-{i}", daemon=True).start()
        pending.append(handle)
    return pending


def run(calls: Sequence[Callable[[], T]], at_most: int = 8, name: str = "read") -> list[T]:
    """Each call's result, in order, at most ``at_most`` running at once.

    Every call runs to its end; then the first failure (in the calls' order) is raised, as one
    call after another would have raised it. A single call runs on the caller's thread.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    pending = start(calls, at_most, name)
    for handle in pending:
        handle.wait()
    return [handle.result() for handle in pending]
