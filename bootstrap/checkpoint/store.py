"""What every checkpoint store offers, and who holds a customer's lock.

Guarantees: one writer per customer (``lock``), a save never tears the document
(each store replaces it whole), and a loser is told who holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bootstrap.checkpoint.state import State


class Store(Protocol):
    """Where checkpoints live: a file next to customer.yaml (default) or a Secret on a cluster."""

    def load(self, customer: str) -> State: ...
    def save(self, state: State) -> None: ...
    def lock(self, break_lock: bool = False) -> contextlib.AbstractContextManager[str | None]: ...
    def describe(self) -> str: ...


@dataclass(frozen=True)
class Holder:
    """Who holds a customer's lock: a process on a host since a time.

    The Kubernetes store adds ``id`` (pids repeat across pods) and ``until``, the end
    of its lease; ``until`` None there means unreadable, so already stale.
    """

    pid: int
    host: str
    started: str
    id: str = ""
    until: datetime | None = None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started}"

    def alive_here(self) -> bool | None:
        """True/False for a holder on this host; None when it cannot be known (other host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def expired(self, at: datetime) -> bool:
        """A leased holder whose lease has run out (or cannot be read)."""
        return self.until is None or self.until <= at
