"""Each step's id and modes, known without importing the step.

``bootstrap status`` (without ``--verify``), ``forget``, shell completion and the help texts
name the steps a customer has; importing every step module for that (the adapters, Jinja2,
the Argo CD rules) cost more than the rest of ``status``. This table repeats what each Step
class declares; tests/unit/test_step_catalog.py fails the moment the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrap.step import Mode

BOTH: frozenset[Mode] = frozenset({"standalone", "hub"})


@dataclass(frozen=True)
class Entry:
    id: str
    modes: frozenset[Mode] = BOTH


CATALOG: tuple[Entry, ...] = (
    Entry("argocd-dir"),
    Entry("deploy-key"),
    Entry("argocd-users"),
    Entry("github-oauth"),
    Entry("slack-channel"),
    Entry("alertmanager-opsgenie"),
    Entry("argocd-install"),
    Entry("cluster-register", frozenset({"hub"})),
)
"""In the order of ``steps.STEPS``."""


def ids() -> list[str]:
    return [e.id for e in CATALOG]


def for_mode(mode: Mode) -> list[str]:
    """The ids of the steps a customer of ``mode`` has (what ``bootstrap.step.for_config`` builds)."""
    return [e.id for e in CATALOG if mode in e.modes]
