"""Group commit: many writers of one repository branch in one process, one commit at a time.

In hub mode every customer of a fleet run writes into the same branch of the hub's
GitOps repo. Left alone, ten threads would each read the head, build a commit on it
and race to move the branch: all but one lose (non-fast-forward) and retry, again
and again. Instead, writers of the same ``key`` (API, repo, branch, token) queue
their files; whichever arrives while no commit is under way becomes the *leader*,
takes every queued request, merges them into **one** commit and hands each writer
the result. Requests that arrive meanwhile form the next batch. So within a process
commits to one branch never overlap and a burst of customers costs one commit per
batch, not one per customer.

Two requests for the same path with different content are never merged: the later
one waits for the next batch (it then sees the earlier one's content as current and
overwrites it deliberately, like a sequential run would). The token is part of the
key so that a writer's files are only ever committed with its own credentials.
Other processes are handled by the commit function itself (re-read and re-apply on
a moved branch); this module only orders the writers inside one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Files = Mapping[str, str | None]
CommitFn = Callable[[dict[str, str | None], list[str]], str]
"""Commits the merged files with the writers' messages; returns the resulting head SHA."""


@dataclass
class _Request:
    files: Files
    message: str
    done: threading.Event = field(default_factory=threading.Event)
    head: str | None = None
    error: BaseException | None = None


@dataclass
class _Queue:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[_Request] = field(default_factory=list)
    leading: bool = False
    batches: int = 0
    """How many commits (batches) this queue has made: what the fleet test asserts on."""


_QUEUES: dict[tuple[str, ...], _Queue] = {}
_REGISTRY = threading.Lock()


def _queue(key: tuple[str, ...]) -> _Queue:
    with _REGISTRY:
        return _QUEUES.setdefault(key, _Queue())


def batches(key: tuple[str, ...]) -> int:
    """Commits made so far for ``key`` in this process (0 if none)."""
    with _REGISTRY:
        queue = _QUEUES.get(key)
    return queue.batches if queue is not None else 0


def submit(key: tuple[str, ...], files: Files, message: str, commit: CommitFn) -> str:
    """Commit ``files`` together with whatever other writers of ``key`` queue meanwhile.

    Returns the head SHA after the commit that carried them. Raises what that commit
    raised (every writer of a failed batch gets the error and decides for itself).
    """
    queue = _queue(key)
    request = _Request(dict(files), message)
    with queue.lock:
        queue.pending.append(request)
        lead = not queue.leading
        queue.leading = True
    if not lead:
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.head is not None
        return request.head
    finished = False
    try:
        while True:
            with queue.lock:
                batch, rest = _take(queue.pending)
                queue.pending = rest
                if not batch:
                    queue.leading = False
                    finished = True
                    break
            _run(batch, commit)
            queue.batches += 1
    finally:
        if not finished:
            # The leader was interrupted: nobody may wait forever for a batch that will not come.
            with queue.lock:
                orphans, queue.pending, queue.leading = queue.pending, [], False
            for orphan in orphans:
                orphan.error = RuntimeError("the commit batch was abandoned; run again")
                orphan.done.set()
    if request.error is not None:
        raise request.error
    assert request.head is not None
    return request.head


def _take(pending: list[_Request]) -> tuple[list[_Request], list[_Request]]:
    """The requests that merge without a conflict (first come first), and the rest."""
    merged: dict[str, str | None] = {}
    batch: list[_Request] = []
    rest: list[_Request] = []
    for request in pending:
        clash = any(p in merged and merged[p] != t for p, t in request.files.items())
        if clash:
            rest.append(request)
            continue
        merged.update(request.files)
        batch.append(request)
    return batch, rest


def _run(batch: list[_Request], commit: CommitFn) -> None:
    merged: dict[str, str | None] = {}
    for request in batch:
        merged.update(request.files)
    try:
        head = commit(merged, [r.message for r in batch])
    except BaseException as exc:
        for request in batch:
            request.error = exc
            request.done.set()
        if isinstance(exc, Exception):
            return
        raise
    for request in batch:
        request.head = head
        request.done.set()
