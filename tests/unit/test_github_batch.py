"""Group commit of one branch's writers within the process (bootstrap/clients/github_batch.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from bootstrap.clients import github_batch


def _key() -> tuple[str, ...]:
    return ("test", uuid.uuid4().hex)


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_writers_arriving_during_a_commit_share_the_next_one() -> None:
    key = _key()
    gate = threading.Event()
    commits: list[dict[str, str | None]] = []

    def commit(files: dict[str, str | None], messages: list[str]) -> str:
        if not commits:
            gate.wait(60)  # the first commit is slow: everyone else queues meanwhile
        commits.append(dict(files))
        return f"sha{len(commits)}"

    heads: dict[int, str] = {}

    def writer(i: int) -> None:
        heads[i] = github_batch.submit(
            key, {f"c{i}/values.yaml": str(i), "shared.yaml": "same"}, f"m{i}", commit
        )

    first = threading.Thread(target=writer, args=(0,))
    first.start()
    queue = github_batch._queue(key)
    _wait_for(lambda: queue.leading and not queue.pending)  # the leader took its batch and is committing
    others = [threading.Thread(target=writer, args=(i,)) for i in range(1, 8)]
    for t in others:
        t.start()
    _wait_for(lambda: len(queue.pending) == 7)
    gate.set()
    for t in [first, *others]:
        t.join(60)
    assert len(commits) == 2 and github_batch.batches(key) == 2
    assert set(commits[1]) == {f"c{i}/values.yaml" for i in range(1, 8)} | {"shared.yaml"}
    assert heads == {0: "sha1", **dict.fromkeys(range(1, 8), "sha2")}


def test_conflicting_writes_to_one_path_are_never_merged() -> None:
    pending = [
        github_batch._Request({"a": "1"}, "first"),
        github_batch._Request({"a": "2"}, "second"),
        github_batch._Request({"b": "1", "a": "1"}, "third"),
    ]
    batch, rest = github_batch._take(pending)
    assert [r.message for r in batch] == ["first", "third"]  # same content on a path merges
    assert [r.message for r in rest] == ["second"]  # different content waits for the next commit


def test_a_failed_commit_reaches_every_writer_of_the_batch_and_the_queue_recovers() -> None:
    key = _key()

    def broken(files: dict[str, str | None], messages: list[str]) -> str:
        raise RuntimeError("GitHub said no")

    with pytest.raises(RuntimeError, match="GitHub said no"):
        github_batch.submit(key, {"a": "1"}, "m", broken)
    assert github_batch.submit(key, {"a": "1"}, "m", lambda files, messages: "ok") == "ok"
