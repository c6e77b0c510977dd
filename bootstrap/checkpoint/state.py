"""The checkpoint document: what each step last did, and reading it back (once, for every store).

Guarantees (DESIGN.md §4):
- no secret ever goes in: only ids, fingerprints, Vault paths and messages that
  already went through the redaction registry;
- a document is parsed and validated in one place, whichever store holds it: a
  corrupt, foreign or newer-version document is a StateError saying where it is
  and how to get past it, never a traceback or a silently empty state.

The checkpoint is a cache of progress, not the source of truth: every step
re-observes the remote state on every run, so setting a checkpoint aside loses
the run history (attempts, timestamps, errors, intents) and one safeguard.
argocd-dir's outputs record the sha256 of every file it last committed; that
record is how a hand edit of a managed file in the infra repo is told apart from
an old render of ours. Without it (a new checkpoint) the next run cannot see
drift: a hand-edited managed file is shown by ``plan`` as an ordinary update and
overwritten by ``run`` without ``--force``. Review ``bootstrap plan`` first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bootstrap import __version__
from bootstrap.errors import StateError

SCHEMA_VERSION = 1
LOST = (
    "every step re-observes the remote state, so what is lost is the run history and argocd-dir's "
    "record of the files it committed: until its next run, a hand edit of a managed file in the infra "
    "repo is planned as an ordinary update (review `bootstrap plan` before `bootstrap run`)"
)
"""What setting a checkpoint aside costs; every "move it aside" message says it."""


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

    def dump(self) -> bytes:
        """The document as every store writes it (stamped ``updated`` now)."""
        self.updated = now()
        return json.dumps(self.to_json(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str, way_out: str) -> State:
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise StateError(f"{source}: no schema_version; {way_out}")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{source} was written by a newer gitops-bootstrap (checkpoint schema {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade gitops-bootstrap, or {way_out}"
            )
        steps = {str(k): StepRecord.from_json(v) for k, v in (data.get("steps") or {}).items()}
        return cls(
            customer=str(data.get("customer", "")),
            steps=steps,
            schema_version=SCHEMA_VERSION,
            tool_version=str(data.get("tool_version", "")),
            updated=data.get("updated"),
        )


def parse(text: str, source: str, customer: str, way_out: str, foreign: str) -> State:
    """``text`` as ``customer``'s checkpoint, or a StateError naming ``source`` and ``way_out``.

    ``foreign`` is what to do when the document belongs to another customer.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{source} is corrupt ({exc.msg} at line {exc.lineno}); {way_out}") from None
    if not isinstance(data, dict):
        raise StateError(f"{source} is corrupt (not a JSON object); {way_out}")
    try:
        state = State.from_json(data, source, way_out)
    except (AttributeError, TypeError, ValueError) as exc:
        # Valid JSON of the wrong shape (a step that is not an object, an unknown status, …).
        raise StateError(f"{source} is corrupt ({type(exc).__name__}: {exc}); {way_out}") from None
    if state.customer and state.customer != customer:
        raise StateError(f"{source} belongs to customer {state.customer!r}, not {customer!r}; {foreign}")
    state.customer = customer
    return state
