"""The step contract (DESIGN.md §3).

A step is a small class with a permanent id. The engine only ever calls
``plan`` (reads), ``apply`` (makes exactly the planned changes), ``verify``
(checks the post-condition) and, on ``bootstrap destroy``, ``plan_destroy`` and
``destroy``. Keeping observation and action in separate methods is what makes
dry-run trivial (plan every step and stop) and re-runs honest (the engine
always re-plans, it never trusts the checkpoint alone).
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NewType, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig
    from bootstrap.secrets import Secrets
    from bootstrap.services import Services

StepId = NewType("StepId", str)
_P = TypeVar("_P")
Outputs = dict[str, Any]
"""Non-secret results (ids, fingerprints, Vault paths) later steps may read."""


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    """One planned change to one remote object.

    ``diff`` is shown to the user and must already have secret values masked.
    ``payload`` is the typed operation ``apply`` performs for this change: a frozen
    value of the step's own (one class per kind of operation), so what apply does is
    exactly what plan printed, dispatched on its type rather than on a string code.
    It holds no secret and is not printed: ``to_json`` shows what a person reads.
    """

    action: Action
    target: str
    summary: str = ""
    diff: str = ""
    payload: object = None

    def to_json(self) -> dict[str, Any]:
        return {"action": str(self.action), "target": self.target, "summary": self.summary, "diff": self.diff}

    def payload_as(self, kind: type[_P]) -> _P:
        """The payload, which must be a ``kind``: a plan of another shape is a bug, not a state to guess."""
        if not isinstance(self.payload, kind):
            raise TypeError(f"{self.target}: expected a {kind.__name__} payload, got {self.payload!r}")
        return self.payload


@dataclass(frozen=True)
class Plan:
    """What a step would change. Empty = up to date.

    ``outputs`` is what the step observed as current (ids, fingerprints): when
    the plan is empty the engine records them without calling ``apply``, which
    is how a resource left behind by a crashed run gets adopted.

    ``observed`` is the step's own frozen record of what plan saw, for an apply
    that works from the whole observation rather than change by change: apply
    uses it instead of observing again, so it acts on what the plan showed. Never
    printed; it may hold what only apply needs (e.g. a password read from Vault,
    kept out of its repr).
    """

    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    outputs: Outputs = field(default_factory=dict)
    observed: object = None

    def observed_as(self, kind: type[_P]) -> _P:
        """``observed``, which must be a ``kind`` (a plan of another step's shape is a bug)."""
        if not isinstance(self.observed, kind):
            raise TypeError(f"expected a plan observing {kind.__name__}, got {type(self.observed).__name__}")
        return self.observed

    @property
    def empty(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "notes": list(self.notes)}


@dataclass
class Context:
    """Everything a step may use; built once per run by the engine's caller."""

    config: CustomerConfig
    secrets: Secrets
    services: Services
    workdir: Path
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Outputs recorded by earlier steps, keyed by step id (read-only for steps)."""
    force: bool = False
    intend: Callable[[str], None] = lambda _msg: None
    """Record what is about to be created *before* the side effect (checkpoint intent)."""
    progress: Callable[[str], None] = lambda _msg: None
    """Tell the user what a long action is doing (waiting for workloads, …)."""

    def output_of(self, step: str, key: str) -> Any:
        return self.outputs.get(step, {}).get(key)


Mode = Literal["standalone", "hub"]
"""Where Argo CD runs: in the customer cluster, or in a hub that manages many clusters (KIT.md)."""

Service = Literal["github", "kit", "vault", "slack", "opsgenie", "jsm", "cluster", "hub", "manifest"]


@dataclass(frozen=True)
class Need:
    """Something a step needs from a service before the run writes anything (``bootstrap check``).

    A value, so the same need declared by several steps is checked once per run. What
    ``permissions`` holds depends on the service: GitHub ``contents:write`` /
    ``administration:write``; Vault ``read``/``write`` on a KV path of ``vault.mount``;
    Slack scopes; OpsGenie ``integrations`` for the team ``target``; cluster
    ``VERB RESOURCE[.GROUP]`` in the namespace ``target`` ("" for cluster-scoped
    resources), and the same for the hub (hub mode); kit: the kit repo; manifest: the URL,
    with its sha256 pin if any.
    """

    service: Service
    target: str = ""
    permissions: tuple[str, ...] = ()

    @classmethod
    def cluster(cls, namespace: str, verbs: tuple[str, ...], *resources: str) -> Need:
        """Every verb on every resource (``secrets``, ``deployments.apps``) in one namespace."""
        return cls("cluster", namespace, tuple(f"{v} {r}" for r in resources for v in verbs))


APPLY = ("get", "create", "patch")
"""What server-side apply of an object needs, plus the read that observes it first."""


def config_slice(config: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``github.infra_repo``) as plain JSON data."""
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value]
    return value


class Step(abc.ABC):
    """Base of every step. Subclasses set ``id``, ``requires``, ``reads`` and ``title``."""

    id: ClassVar[StepId]
    title: ClassVar[str]
    requires: ClassVar[tuple[StepId, ...]] = ()
    reads: ClassVar[tuple[str, ...]] = ()
    """Dotted paths of customer.yaml this step reads; hashed into the input digest."""
    modes: ClassVar[frozenset[Mode]] = frozenset({"standalone", "hub"})
    """The modes the step belongs to; ``for_config`` leaves it out of every other customer's list."""

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        """What the step needs of each service; the preflight verifies it before the first write."""
        return ()

    def digest(self, config: CustomerConfig) -> str:
        """Hash of the config slice this step reads: a change makes the step run again."""
        data = {path: config_slice(config, path) for path in self.reads}
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    @abc.abstractmethod
    def plan(self, ctx: Context) -> Plan:
        """Observe remote state and return the changes needed. Must not write anything."""

    @abc.abstractmethod
    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """Make exactly the planned changes; return non-secret outputs."""

    @abc.abstractmethod
    def verify(self, ctx: Context) -> None:
        """Raise a StepError if the step's post-condition does not hold."""

    @abc.abstractmethod
    def plan_destroy(self, ctx: Context) -> Plan:
        """Observe and return what ``destroy`` would remove (read-only)."""

    @abc.abstractmethod
    def destroy(self, ctx: Context, plan: Plan) -> None:
        """Undo what the step created; idempotent (gone is fine)."""


def for_config(steps: Sequence[type[Step]], config: CustomerConfig) -> list[Step]:
    """The steps of ``config``'s mode, built: the one place the mode decides which steps exist.

    The engine then sees a step list like any other; nothing in it asks which mode a run is
    in, and ``--only``/``rotate``/``destroy``/``status`` name only the steps this customer has.
    """
    built = [cls() for cls in steps if config.mode in cls.modes]
    absent = {cls.id for cls in steps if config.mode not in cls.modes}
    for step in built:
        if absent & set(step.requires):
            # A step the mode does not have is no requirement here (argocd-install needs
            # argocd-users only where there are local accounts to install with).
            vars(step)["requires"] = tuple(r for r in step.requires if r not in absent)
    return built


@dataclass(frozen=True)
class Stage:
    """A rotation's staging: a new credential into Vault (check-and-set ``cas``) while ``old`` stays live."""

    cas: int
    old: str
    """The id of the credential being replaced (deploy key id, integration id)."""


@dataclass(frozen=True)
class Retire:
    """A rotation's end: remove ``old`` (if still ``present``) and Vault's record that it is retiring."""

    old: str
    present: bool


@runtime_checkable
class Rotatable(Protocol):
    """Optional capability of a step: replace the credentials it created (``bootstrap rotate``).

    A rotation has two halves, so that no moment exists at which nothing works:

    - ``plan_rotate``/``rotate`` *stage* the new credential: generate it and store
      it in Vault next to the old one, leaving in Vault (metadata or an older
      version) what the old one was. Empty plan = a staged rotation is already
      waiting to be finished (a crashed ``rotate``), so nothing new is generated;
    - then the engine runs the step and every step that requires it, as ``run``
      would: their plans see Vault's new credential and roll it out (register the
      key, hash the password into the cluster, update the repo Secret) and their
      verify() proves the consumers carry it;
    - only then ``plan_retire``/``retire`` remove the old credential. The engine
      retires at the end of any ``run`` too, once the step and all its dependents
      succeeded in that run, so a plain ``run`` after a crash also converges.
    """

    id: ClassVar[StepId]
    rotations: ClassVar[tuple[str, ...]]
    """What ``bootstrap rotate CUSTOMER WHAT`` accepts for this step (``deploy-key``, ``passwords``)."""

    def plan_rotate(self, ctx: Context, what: str) -> Plan:
        """What staging a new credential would do (read-only); empty if one is already staged."""

    def rotate(self, ctx: Context, plan: Plan) -> Outputs:
        """Stage the new credential (Vault first, the old one still recorded)."""

    def plan_retire(self, ctx: Context) -> Plan:
        """What is left of a finished rotation to remove (read-only); empty when nothing is."""

    def retire(self, ctx: Context, plan: Plan) -> None:
        """Remove the old credential; idempotent."""
