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
  if the holder dies) plus a holder record naming pid, host and start time.

The checkpoint is a cache of progress, not the source of truth: steps always
re-observe remote state, so deleting the file loses nothing but history.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import filelock

from bootstrap import __version__
from bootstrap.errors import LockedError, StateError

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
HOLDER_FILE = "state.lock.json"


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
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = json.dumps(state.to_json(), indent=2, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def lock(self, break_lock: bool = False) -> Iterator[str | None]:
        """Hold the customer's lock; yields a notice when a stale or broken lock was taken over."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
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
            who = previous.describe() if previous else "another run"
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
            holder_path.write_text(json.dumps(asdict(holder)), encoding="utf-8")
            os.chmod(holder_path, 0o600)
            yield notice
        finally:
            with contextlib.suppress(FileNotFoundError):
                holder_path.unlink()
            lock.release()


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
