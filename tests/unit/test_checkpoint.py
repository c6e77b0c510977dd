"""The checkpoint file: round trip, atomic replacement, refusal of bad files, the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import pytest

from bootstrap import checkpoint
from bootstrap.checkpoint import FileStore, State, Status, StepRecord, file_store
from bootstrap.errors import LockedError, StateError, StateWriteError


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / ".bootstrap")


def sample_state() -> State:
    state = State(customer="kuvaq")
    rec = state.record("deploy-key")
    rec.status = Status.DONE
    rec.digest = "sha256:abc"
    rec.attempts = 2
    rec.started = "2026-01-01T00:00:00+00:00"
    rec.finished = "2026-01-01T00:00:05+00:00"
    rec.outputs = {"key_id": 42, "fingerprint": "SHA256:xyz", "paths": ["secret/bootstrap/kuvaq/deploy-key"]}
    rec.intents = [{"at": "2026-01-01T00:00:01+00:00", "what": "create deploy key argocd-kuvaq"}]
    failed = state.record("slack-channel")
    failed.status = Status.FAILED
    failed.error = "channel_not_found"
    return state


def stray_files(store: FileStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if p.name != checkpoint.STATE_FILE)


# -- round trip and file properties ---------------------------------------------------


def test_missing_file_is_a_fresh_state(store: FileStore) -> None:
    state = store.load("kuvaq")
    assert state.customer == "kuvaq"
    assert state.steps == {}
    assert not store.directory.exists()


def test_round_trip(store: FileStore) -> None:
    state = sample_state()
    store.save(state)
    loaded = store.load("kuvaq")
    assert loaded.steps == state.steps
    assert loaded.record("deploy-key").status is Status.DONE
    assert loaded.schema_version == checkpoint.SCHEMA_VERSION
    assert loaded.updated is not None
    data = json.loads(store.path.read_text())
    assert data["customer"] == "kuvaq"
    assert data["steps"]["slack-channel"]["status"] == "failed"
    assert data["tool_version"]


def test_file_mode_and_no_temp_files(store: FileStore) -> None:
    store.save(sample_state())
    store.save(sample_state())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) & 0o077 == 0
    assert stray_files(store) == []


def test_failed_serialisation_leaves_old_file(store: FileStore) -> None:
    store.save(sample_state())
    before = store.path.read_bytes()
    broken = sample_state()
    broken.record("deploy-key").outputs["oops"] = object()
    with pytest.raises(TypeError):
        store.save(broken)
    assert store.path.read_bytes() == before
    assert stray_files(store) == []


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_crash_during_write_leaves_old_file(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    store.save(sample_state())
    before = store.path.read_bytes()

    def crash(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail, crash)
    changed = sample_state()
    changed.record("deploy-key").outputs["key_id"] = 43
    with pytest.raises(StateWriteError, match="No space left on device"):
        store.save(changed)
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert stray_files(store) == []


def test_killed_writer_leaves_a_readable_file(store: FileStore) -> None:
    """SIGKILL while a process saves in a loop: whatever instant it dies, the file is whole."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from bootstrap.checkpoint import FileStore, State
        store = FileStore(Path(sys.argv[1]))
        state = State(customer="kuvaq")
        for n in range(1_000_000):
            state.record("deploy-key").outputs = {"n": n, "padding": "x" * 50_000}
            store.save(state)
            if n == 5:
                print("saving", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(store.directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "saving\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    state = store.load("kuvaq")
    assert state.record("deploy-key").outputs["n"] >= 5
    store.save(state)  # a leftover temp file does not get in the way
    assert store.load("kuvaq").record("deploy-key").outputs["n"] >= 5


# -- refusing bad files -----------------------------------------------------------------


def write_raw(store: FileStore, text: str) -> None:
    store.directory.mkdir(parents=True, exist_ok=True)
    store.path.write_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[1, 2]",
        '{"customer": "kuvaq"}',
        '{"schema_version": 1, "steps": {"deploy-key": "done"}}',
        '{"schema_version": 1, "steps": {"deploy-key": {"status": "exploded"}}}',
        '{"schema_version": 1, "steps": {"deploy-key": {"attempts": "many"}}}',
        '{"schema_version": 1, "steps": [1, 2]}',
    ],
    ids=[
        "truncated",
        "empty",
        "not-an-object",
        "no-version",
        "step-not-object",
        "bad-status",
        "bad-attempts",
        "steps-list",
    ],
)
def test_corrupt_file_says_the_way_out(store: FileStore, text: str) -> None:
    write_raw(store, text)
    with pytest.raises(StateError) as info:
        store.load("kuvaq")
    assert str(store.path) in str(info.value)
    assert f"move {store.path} aside and run again" in str(info.value)


def test_not_utf8_file(store: FileStore) -> None:
    store.directory.mkdir(parents=True)
    store.path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(StateError, match="aside"):
        store.load("kuvaq")


def test_newer_schema_says_upgrade(store: FileStore) -> None:
    write_raw(store, json.dumps({"schema_version": checkpoint.SCHEMA_VERSION + 1, "customer": "kuvaq"}))
    with pytest.raises(StateError) as info:
        store.load("kuvaq")
    assert "written by a newer gitops-bootstrap" in str(info.value)
    assert "upgrade gitops-bootstrap" in str(info.value)


def test_another_customers_file(store: FileStore) -> None:
    store.save(State(customer="other"))
    with pytest.raises(StateError) as info:
        store.load("kuvaq")
    assert "belongs to customer 'other', not 'kuvaq'" in str(info.value)
    assert "--state-dir" in str(info.value)


def test_record_defaults() -> None:
    assert StepRecord.from_json({}) == StepRecord()


# -- the lock -------------------------------------------------------------------------------

_HOLD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bootstrap.checkpoint import FileStore
    lock = FileStore(Path(sys.argv[1])).lock()
    lock.__enter__()
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def holder(store: FileStore) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the customer's lock (it never releases it cleanly: it gets killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(store.directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    with proc:  # closes its pipes
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_lock_records_the_holder_and_cleans_up(store: FileStore) -> None:
    holder_path = store.directory / checkpoint.HOLDER_FILE
    with store.lock() as notice:
        assert notice is None
        data = json.loads(holder_path.read_text())
        assert data["pid"] == os.getpid()
        assert data["host"] == socket.gethostname()
        assert stat.S_IMODE(holder_path.stat().st_mode) == 0o600
    assert not holder_path.exists()
    with store.lock() as notice:  # released: can be taken again
        assert notice is None


def test_second_run_is_refused_naming_the_holder(store: FileStore, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockedError) as info, store.lock():
        pass
    assert info.value.exit_code == 5
    assert f"pid {holder.pid} on {socket.gethostname()}" in str(info.value)
    assert "--break-lock" in str(info.value)


def test_same_process_second_store_is_refused(store: FileStore) -> None:
    with (
        store.lock(),
        pytest.raises(LockedError, match=f"pid {os.getpid()}"),
        FileStore(store.directory).lock(),
    ):
        pass


def test_dead_holder_is_taken_over_with_a_notice(store: FileStore, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait()  # the kernel released its flock; its holder record stays behind
    with store.lock() as notice:
        assert notice is not None
        assert f"took over a stale lock left by pid {holder.pid}" in notice


def test_holder_on_another_host_is_not_called_stale(store: FileStore) -> None:
    store.directory.mkdir(parents=True)
    record = {"pid": 999_999_999, "host": "some-other-host", "started": "2026-01-01T00:00:00+00:00"}
    (store.directory / checkpoint.HOLDER_FILE).write_text(json.dumps(record))
    with store.lock() as notice:
        assert notice is None


def test_break_lock(store: FileStore, holder: subprocess.Popen[str]) -> None:
    with store.lock(break_lock=True) as notice:
        assert notice is not None
        assert f"broke the lock held by pid {holder.pid}" in notice
        assert json.loads((store.directory / checkpoint.HOLDER_FILE).read_text())["pid"] == os.getpid()
    assert holder.poll() is None  # breaking the lock does not touch the other process


def test_loser_of_a_simultaneous_start_names_the_holder(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The winner holds the flock but has not written its record yet: the loser waits for it."""
    monkeypatch.setattr(file_store, "HOLDER_WAIT", 120.0)  # generous: returns as soon as the record lands
    store.directory.mkdir(parents=True)
    winner = filelock.FileLock(str(store.directory / checkpoint.LOCK_FILE), timeout=0)
    winner.acquire()
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}

    def write_record_late() -> None:
        time.sleep(0.2)
        (store.directory / checkpoint.HOLDER_FILE).write_text(json.dumps(record))

    late = threading.Thread(target=write_record_late)
    late.start()
    try:
        with pytest.raises(LockedError) as info, FileStore(store.directory).lock():
            pass
    finally:
        late.join()
        winner.release()
    assert f"locked by pid {os.getpid()} on {socket.gethostname()}" in str(info.value)


def test_unwritable_directory_is_found_before_the_lock(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = FileStore(blocker / ".bootstrap")
    with pytest.raises(StateWriteError) as info, store.lock():
        pytest.fail("the lock must not be taken")
    assert info.value.exit_code == 1
    assert str(blocker / ".bootstrap") in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_save_into_a_directory_that_became_unwritable(store: FileStore) -> None:
    with store.lock():
        store.save(sample_state())
        os.chmod(store.directory, 0o500)
        try:
            if os.access(store.directory, os.W_OK):
                pytest.skip("privileged user: permissions do not stop writes here")
            with pytest.raises(StateWriteError, match=str(store.directory)):
                store.save(sample_state())
        finally:
            os.chmod(store.directory, 0o700)
