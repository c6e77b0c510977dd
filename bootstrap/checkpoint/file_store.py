"""The default checkpoint store: a file next to customer.yaml.

Guarantees (DESIGN.md §4):
- the file is replaced atomically (temp file in the same directory, fsync,
  ``os.replace``, directory fsync), so a crash or Ctrl-C at any instant leaves
  either the old or the new state, never a torn one; mode 0600;
- the *intent* of a side effect is saved before the side effect (the engine
  saves through here), so a crashed run's leftovers can be traced to the
  deterministic name that was about to be used;
- one writer per customer: an exclusive lock (``flock``, released by the kernel
  if the holder dies) plus a holder record naming pid, host and start time,
  written atomically; a loser of a simultaneous start waits briefly for the
  winner's record, so it can say who holds the lock;
- a directory that cannot be written is found before the lock is taken (so
  before any service is touched), and reported as one error naming the path.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bootstrap.checkpoint.state import LOST, State, now, parse
from bootstrap.checkpoint.store import Holder
from bootstrap.errors import LockedError, StateError, StateWriteError

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
HOLDER_FILE = "state.lock.json"
HOLDER_WAIT = 3.0
"""Seconds a loser waits for the winner's holder record (written right after its flock)."""


def _way_out(source: str) -> str:
    return f"move {source} aside and run again: {LOST}"


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
        return parse(
            text,
            str(self.path),
            customer,
            _way_out(str(self.path)),
            foreign="use a separate --state-dir per customer",
        )

    def save(self, state: State) -> None:
        try:
            _write_atomically(self.directory, self.path, state.dump())
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
        import filelock  # here: reading a checkpoint (``status``) takes no lock

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
                record = {"pid": holder.pid, "host": holder.host, "started": holder.started}
                _write_atomically(self.directory, holder_path, json.dumps(record).encode())
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
