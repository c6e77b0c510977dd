"""Per-service request budgets shared by every customer in the process.

A fleet run (``bootstrap run inventory/*/customer.yaml --parallel 10``) talks
to the same GitHub org, Slack workspace and OpsGenie account from many
threads. Each service's own limits apply to the account, not to one customer,
so the budget is one token bucket per service for the whole process: a
customer waits for a token before each call instead of hammering the API into
429s that every other customer then also pays for.

The default rates sit well below the vendors' documented limits; set
``BOOTSTRAP_RATE_<SERVICE>=<calls per second>`` to change one (0 = unlimited).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

DEFAULT_RATES = {"github": 20.0, "slack": 5.0, "opsgenie": 10.0, "jsm": 10.0}
"""Calls per second; the burst is twice the rate."""


class Budget:
    """A token bucket: ``acquire()`` blocks until a call may be made."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, 2 * rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                pause = (1 - self._tokens) / self.rate
                self.waited += pause
            time.sleep(pause)


_budgets: dict[str, Budget] = {}
_budgets_lock = threading.Lock()


def budget(service: str) -> Budget:
    with _budgets_lock:
        if service not in _budgets:
            raw = os.environ.get(f"BOOTSTRAP_RATE_{service.upper()}")
            rate = float(raw) if raw else DEFAULT_RATES.get(service, 0.0)
            _budgets[service] = Budget(rate)
        return _budgets[service]


C = TypeVar("C", bound=type)


def metered(service: str) -> Callable[[C], C]:
    """Class decorator: every public method of an adapter takes one token of ``service``."""

    def wrap(cls: C) -> C:
        for name, fn in list(vars(cls).items()):
            if name.startswith("_") or not callable(fn) or isinstance(fn, staticmethod | classmethod):
                continue
            setattr(cls, name, _metered_method(service, fn))
        return cls

    return wrap


def _metered_method(service: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        budget(service).acquire()
        return fn(*args, **kwargs)

    return call
