"""The checkpoint: what each step last did, kept so a re-run can resume.

Guarantees (DESIGN.md §4):
- the file is replaced atomically (temp file in the same directory, fsync,
  ``os.replace``, directory fsync), so a crash or Ctrl-C at any instant leaves
  either the old or the new state, never a torn one; mode 0600;
- the *intent* of a side effect is saved before the side effect, so a crashed
  run's leftovers can be traced to the deterministic name that was about to be
  used (the next plan() observes and adopts them);
- no secret ever goes in: only ids, fingerprints, Vault paths and messages that
  already went through the redaction registry;
- one writer per customer: an exclusive lock (``flock``, released by the kernel
  if the holder dies) plus a holder record naming pid, host and start time,
  written atomically; a loser of a simultaneous start waits briefly for the
  winner's record, so it can say who holds the lock;
- a directory that cannot be written is found before the lock is taken (so
  before any service is touched), and reported as one error naming the path.

The checkpoint is a cache of progress, not the source of truth: steps always
re-observe remote state, so deleting the file loses nothing but history.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import filelock

from bootstrap import __version__
from bootstrap.errors import LockedError, StateError, StateWriteError

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
HOLDER_FILE = "state.lock.json"
HOLDER_WAIT = 3.0
"""Seconds a loser waits for the winner's holder record (written right after its flock)."""


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StepRecord:
    status: Status = Status.PENDING
    digest: str | None = None
    attempts: int = 0
    started: str | None = None
    finished: str | None = None
    """When the step last became done (applied, or adopted as already in place)."""
    checked: str | None = None
    """When the step was last observed up to date (every run that finds nothing to change)."""
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    intents: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            status=Status(data.get("status", "pending")),
            digest=data.get("digest"),
            attempts=int(data.get("attempts", 0)),
            started=data.get("started"),
            finished=data.get("finished"),
            checked=data.get("checked"),
            error=data.get("error"),
            outputs=dict(data.get("outputs") or {}),
            intents=list(data.get("intents") or []),
        )


@dataclass
class State:
    customer: str
    steps: dict[str, StepRecord] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    tool_version: str = __version__
    updated: str | None = None

    def record(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = {k: {**asdict(v), "status": str(v.status)} for k, v in self.steps.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> State:
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise StateError(f"{source}: no schema_version; {_way_out(source)}")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{source} was written by a newer gitops-bootstrap (checkpoint schema {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade gitops-bootstrap, or {_way_out(source)}"
            )
        steps = {str(k): StepRecord.from_json(v) for k, v in (data.get("steps") or {}).items()}
        return cls(
            customer=str(data.get("customer", "")),
            steps=steps,
            schema_version=SCHEMA_VERSION,
            tool_version=str(data.get("tool_version", "")),
            updated=data.get("updated"),
        )


def _way_out(source: str) -> str:
    return (
        f"move {source} aside and run again: every step re-observes the remote state, "
        "so only the run history is lost"
    )


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str

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


class Store(Protocol):
    """Where checkpoints live; the file store is the default (a Kubernetes store can follow)."""

    def load(self, customer: str) -> State: ...
    def save(self, state: State) -> None: ...
    def lock(self, break_lock: bool = False) -> contextlib.AbstractContextManager[str | None]: ...
    def describe(self) -> str: ...


class FileStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE

    def describe(self) -> str:
        return str(self.path)

    def load(self, customer: str) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State(customer=customer)
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read {self.path}: {exc}; {_way_out(str(self.path))}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"{self.path} is corrupt ({exc.msg} at line {exc.lineno}); {_way_out(str(self.path))}"
            ) from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path} is corrupt (not a JSON object); {_way_out(str(self.path))}")
        try:
            state = State.from_json(data, str(self.path))
        except (AttributeError, TypeError, ValueError) as exc:
            # Valid JSON of the wrong shape (a step that is not an object, an unknown status, …).
            raise StateError(
                f"{self.path} is corrupt ({type(exc).__name__}: {exc}); {_way_out(str(self.path))}"
            ) from None
        if state.customer and state.customer != customer:
            raise StateError(
                f"{self.path} belongs to customer {state.customer!r}, not {customer!r}; "
                "use a separate --state-dir per customer"
            )
        state.customer = customer
        return state

    def save(self, state: State) -> None:
        state.updated = now()
        payload = json.dumps(state.to_json(), indent=2, sort_keys=True).encode()
        try:
            _write_atomically(self.directory, self.path, payload)
        except OSError as exc:
            raise _not_writable(self.directory, exc) from None

    def check_writable(self) -> None:
        """Raise StateWriteError now if the checkpoint could not be saved (before anything is changed)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, probe = tempfile.mkstemp(prefix=".probe.", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise _not_writable(self.directory, exc) from None

    @contextlib.contextmanager
    def lock(self, break_lock: bool = False) -> Iterator[str | None]:
        """Hold the customer's lock; yields a notice when a stale or broken lock was taken over."""
        self.check_writable()
        holder_path = self.directory / HOLDER_FILE
        lock_path = self.directory / LOCK_FILE
        previous = _read_holder(holder_path)
        notice: str | None = None
        if break_lock:
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()  # a new inode: the old holder's flock no longer excludes us
            if previous:
                notice = f"broke the lock held by {previous.describe()} (--break-lock)"
        lock = filelock.FileLock(str(lock_path), timeout=0, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            holder = _await_holder(holder_path)
            who = holder.describe() if holder else "another run"
            raise LockedError(
                f"customer state {self.path} is locked by {who}; wait for it to finish. "
                "If you are sure it is gone (e.g. it ran on another machine that died), "
                "re-run with --break-lock"
            ) from None
        try:
            if previous and notice is None and previous.pid != os.getpid():
                alive = previous.alive_here()
                if alive is False:
                    notice = f"took over a stale lock left by {previous.describe()} (that process is gone)"
            holder = Holder(os.getpid(), socket.gethostname(), now())
            try:
                _write_atomically(self.directory, holder_path, json.dumps(asdict(holder)).encode())
            except OSError as exc:
                raise _not_writable(self.directory, exc) from None
            yield notice
        finally:
            # Only cleanup: a directory that turned read-only meanwhile must not hide the real error.
            with contextlib.suppress(OSError):
                holder_path.unlink()
            lock.release()


def _write_atomically(directory: Path, path: Path, payload: bytes) -> None:
    """Temp file in the same directory, fsync, ``os.replace``, directory fsync; mode 0600."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _not_writable(directory: Path, exc: OSError) -> StateWriteError:
    reason = exc.strerror or type(exc).__name__
    return StateWriteError(
        f"cannot write the checkpoint directory {directory}: {reason}; "
        "make it writable or pass --state-dir DIR (nothing was changed by this write)"
    )


def _await_holder(path: Path) -> Holder | None:
    """The lock holder's record; the winner of a simultaneous start writes it just after its flock."""
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        holder = _read_holder(path)
        # A record of a dead process is a leftover the winner is about to overwrite.
        current = holder is not None and holder.alive_here() is not False
        if current or time.monotonic() >= deadline:
            return holder
        time.sleep(0.05)


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
