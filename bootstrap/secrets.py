"""Resolving secret references, and the redaction registry.

Guarantees: a secret value enters the process only through ``Secrets.resolve``
(a reference from customer.yaml) or ``Secrets.generated`` (a password, key or
credential the run made or received), and both register it with the
``Redactor``. Every output path (console and JSON reporters, log records,
error messages, plan diffs, Ansible results) passes text through
``Redactor.redact``, so even a value that slips into a message is masked.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.config import SecretRef
from bootstrap.errors import ConfigError

if TYPE_CHECKING:
    from bootstrap.clients.vault import VaultClient

MASK = "********"
_MIN_LEN = 4  # shorter values would mask ordinary words; no real secret is that short


class Redactor:
    """Thread-safe set of known secret values, masked wherever text is shown."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []

    def register(self, value: str) -> str:
        if len(value) >= _MIN_LEN and value not in self._values:
            with self._lock:
                self._values.add(value)
                variants = {value, *(line for line in value.splitlines() if len(line.strip()) >= 16)}
                # Longest first, so a secret containing another is masked whole.
                self._ordered = sorted(self._values | variants | set(self._ordered), key=len, reverse=True)
        return value

    def redact(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside JSON-like data."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {(self.redact(k) if isinstance(k, str) else k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj

    @property
    def values(self) -> Iterable[str]:
        return tuple(self._values)


REDACTOR = Redactor()
"""The process-wide registry: one process may serve several customers, and masking
another customer's secret too is always right."""


class RedactingFilter(logging.Filter):
    """Masks secrets in every log record (libraries log request bodies at DEBUG)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        # A traceback carries exception messages too; the Formatter reuses a pre-set exc_text.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


class Secrets:
    """Resolves references late (only the steps that need a secret load it) and caches them."""

    def __init__(
        self,
        redactor: Redactor,
        base_dir: Path,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.redactor = redactor
        self.base_dir = base_dir
        self._vault: Callable[[], VaultClient] | None = None
        self._environ = environ if environ is not None else os.environ
        self._cache: dict[SecretRef, str] = {}

    def use_vault(self, client: Callable[[], VaultClient]) -> None:
        """Read ``vault:`` references through ``client()``, called on the first such reference.

        Set after construction because the Vault client is built from these same secrets (its
        own token or AppRole secret id is an ``env:``/``file:`` reference): each needs the other,
        and neither is built before it is used.
        """
        self._vault = client

    def resolve(self, ref: SecretRef, field: str) -> str:
        """The value behind ``ref``; ``field`` (dotted path) makes errors point at customer.yaml."""
        if ref in self._cache:
            return self._cache[ref]
        value = self._load(ref, field)
        if not value:
            raise ConfigError(f"{field}: {ref} resolved to an empty value")
        self._cache[ref] = self.redactor.register(value)
        return value

    def generated(self, value: str) -> str:
        """Register a value the run created or received (password, key, credential)."""
        return self.redactor.register(value)

    def problem(self, ref: SecretRef, field: str) -> str | None:
        """What is wrong with ``ref`` (None when it resolves): the preflight's view of ``resolve``.

        env: and file: references are checked without reading their value twice; a vault:
        reference is read from Vault, whose own failures (unreachable, denied) still raise.
        """
        if ref.kind != "vault":
            found = offline_problem(ref, self.base_dir, self._environ)
            if found is not None:
                return found
        try:
            self.resolve(ref, field)
        except ConfigError as exc:
            return str(exc).removeprefix(f"{field}: ")
        return None

    def _load(self, ref: SecretRef, field: str) -> str:
        if ref.kind == "env":
            if ref.target not in self._environ:
                raise ConfigError(
                    f"{field}: environment variable {ref.target} is not set (export it and re-run)"
                )
            return self._environ[ref.target].strip()
        if ref.kind == "file":
            path = file_path(ref, self.base_dir)
            try:
                return path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise ConfigError(f"{field}: file {path} does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{field}: cannot read {path}: {type(exc).__name__}") from None
        if self._vault is None:
            raise ConfigError(f"{field}: vault: references need the vault section to be configured")
        from bootstrap.clients import vault as vault_client

        mount, path_, key = vault_client.split_reference(ref.target)
        data = self._vault().for_mount(mount).read(path_)
        if data is None:
            raise ConfigError(f"{field}: Vault has no secret at {mount}/{path_}")
        if key not in data:
            raise ConfigError(f"{field}: Vault secret {mount}/{path_} has no key {key!r}")
        return data[key]


def file_path(ref: SecretRef, base_dir: Path) -> Path:
    """Where a ``file:`` reference points: ``~`` expanded, relative to the customer file's directory."""
    path = Path(os.path.expanduser(ref.target))
    return path if path.is_absolute() else base_dir / path


def offline_problem(ref: SecretRef, base_dir: Path, environ: Mapping[str, str]) -> str | None:
    """What is wrong with an ``env:`` or ``file:`` reference, found without any service (None: fine).

    A ``vault:`` reference cannot be judged offline and gives None. A secret file must be a
    regular, readable, non-empty file that not every user on the machine may read.
    """
    if ref.kind == "env":
        if ref.target not in environ:
            return f"environment variable {ref.target} is not set (export it and re-run)"
        if not environ[ref.target].strip():
            return f"environment variable {ref.target} is empty (export the secret in it and re-run)"
        return None
    if ref.kind != "file":
        return None
    path = file_path(ref, base_dir)
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"file {path} does not exist"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or type(exc).__name__}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_mode & stat.S_IROTH:
        return (
            f"file {path} is readable by every user (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError:
        return f"file {path} is not readable by this user"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {type(exc).__name__}"
    if not text.strip():
        return f"file {path} is empty"
    return None
