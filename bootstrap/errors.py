"""The error hierarchy; one CLI handler maps it to exit codes (DESIGN.md §7).

Messages are written for the person at the terminal: they say what went wrong
*and* what to do next. Secret values never appear in them (the reporters pass
every message through the redaction registry as a second line of defence).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The process exit codes of DESIGN.md §7; ``bootstrap.outcome.exit_code`` maps step results to them."""

    OK = 0
    """Done, or nothing to change."""
    FAILED = 1
    CHANGES = 2
    """A preview found changes."""
    WAITING = 3
    """Waiting for a person."""
    INVALID_INPUT = 4
    LOCKED = 5
    INTERRUPTED = 130
    """Interrupted; the checkpoint is saved."""


class BootstrapError(Exception):
    """Base of every error the tool reports as a message rather than a traceback."""

    exit_code: ExitCode = ExitCode.FAILED

    def details(self) -> dict[str, Any]:
        """Structured facts for ``--output json`` beyond the message (e.g. each failed check)."""
        return {}


class ConfigError(BootstrapError):
    """customer.yaml (or a reference in it) is invalid; nothing was changed."""

    exit_code = ExitCode.INVALID_INPUT


class StepError(BootstrapError):
    """A step could not reach its goal."""


class RetryableError(StepError):
    """A transient failure (rate limit, 5xx, conflict); running again may succeed."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(StepError):
    """A failure that needs a person to fix something (token, permission, input) first."""


class AuthError(PermanentError):
    """A credential is wrong or lacks a permission; never retried."""


class DriftError(PermanentError):
    """Remote state was changed by hand; applying would overwrite it."""


class WaitingForHuman(BootstrapError):
    """A step needs a person to do something outside the tool; re-run afterwards (exit 3)."""

    exit_code = ExitCode.WAITING


class LockedError(BootstrapError):
    """Another run holds the customer's lock (exit 5)."""

    exit_code = ExitCode.LOCKED


class StateWriteError(BootstrapError):
    """The checkpoint directory cannot be written (read-only, permissions, disk full); exit 1."""


class StateError(BootstrapError):
    """The checkpoint is unreadable, corrupt or from a newer version (input the user must fix: exit 4)."""

    exit_code = ExitCode.INVALID_INPUT


class Interrupted(BootstrapError):
    """The run was interrupted (Ctrl-C, SIGTERM): work in flight was stopped, the checkpoint is saved."""

    exit_code = ExitCode.INTERRUPTED
