"""Vault / OpenBao KV v2 adapter over hvac (REFERENCE.md §7).

What it guarantees:

- every write is check-and-set, so two runs (or a run and a person) can never
  silently overwrite each other's secret: a lost race is a ``CasMismatch``
  (retryable: the next run re-plans and adopts what the other writer stored);
- "absent" means the same thing to ``read`` and to ``write(cas=0)``: a path
  whose latest version was deleted or destroyed reads as ``None`` *and* may be
  written with ``cas=0``; otherwise a soft-deleted key would make a step
  "create" it forever and fail forever;
- hvac's exceptions become the tool's own errors with a next step in the
  message: a bad token, a missing policy capability (naming path and
  capability), an unreachable or sealed server. Messages name paths and URLs,
  never secret values or tokens;
- connection errors, 429 and 5xx are retried a few times with a short backoff
  before they surface as ``RetryableError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
import tenacity

from bootstrap.errors import AuthError, BootstrapError, ConfigError, PermanentError, RetryableError, StepError

T = TypeVar("T")

TIMEOUT = 10.0
"""Seconds per HTTP request; a Vault that takes longer is treated as down."""

_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
)

_MAPPED = (requests.RequestException, hvac.exceptions.VaultError)

_retry = tenacity.retry(
    retry=tenacity.retry_if_exception_type(_TRANSIENT),
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_exponential(multiplier=0.1, max=1.0),
    reraise=True,
)


class CasMismatch(RetryableError):
    """Someone else wrote the path between our read and our check-and-set write."""


@dataclass(frozen=True)
class VersionedSecret:
    """The latest live version of a KV v2 secret; ``version`` is what the next CAS write passes."""

    data: dict[str, str]
    version: int
    custom_metadata: dict[str, str] = field(default_factory=dict)


def split_reference(ref: str) -> tuple[str, str, str]:
    """``[vault:]secret/bootstrap/kuvaq/slack#token`` → ``("secret", "bootstrap/kuvaq/slack", "token")``.

    The first segment is the mount: that is how ``vault kv get`` paths read,
    and the API inserts ``data/`` after it, which references must not contain.
    """
    body = ref.removeprefix("vault:")
    location, sep, key = body.partition("#")
    segments = location.split("/")
    if not sep or not key or "#" in key:
        raise ValueError(
            f"Vault reference {ref!r} needs exactly one '#KEY', e.g. secret/bootstrap/kuvaq/slack#token"
        )
    if len(segments) < 2 or not all(segments):
        raise ValueError(
            f"Vault reference {ref!r} must be MOUNT/PATH#KEY with no empty segments, "
            "e.g. secret/bootstrap/kuvaq/slack#token"
        )
    if segments[1] == "data":
        raise ValueError(
            f"Vault reference {ref!r} must not contain the API's 'data/' segment: use MOUNT/PATH#KEY"
        )
    return segments[0], "/".join(segments[1:]), key


@dataclass
class _Session:
    """The authenticated hvac client, shared by every ``for_mount`` view of one VaultClient."""

    hvac: Any
    role_id: str | None
    secret_id: str | None
    logged_in: bool

    @property
    def approle(self) -> bool:
        return self.role_id is not None

    @property
    def auth_field(self) -> str:
        return "vault.auth.approle" if self.approle else "vault.auth.token"


@dataclass(frozen=True)
class _Op:
    """What a call needs, for the permission-denied message."""

    capability: str
    api_path: str


class VaultClient:
    """KV v2 at one mount, authenticated by token or, when role_id and secret_id are given, AppRole.

    The AppRole login happens on first use (constructing a client does no I/O)
    and is repeated once if Vault later rejects the token as expired.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        mount: str = "secret",
        namespace: str | None = None,
    ) -> None:
        approle = role_id is not None and secret_id is not None
        if not approle and token is None:
            raise ConfigError("vault.auth needs a token, or an AppRole role_id and secret_id")
        self.url = url.rstrip("/")
        self.mount = mount.strip("/")
        self._session = _Session(
            hvac=hvac.Client(
                url=self.url, token=None if approle else token, namespace=namespace, timeout=TIMEOUT
            ),
            role_id=role_id if approle else None,
            secret_id=secret_id if approle else None,
            logged_in=not approle,
        )

    @property
    def _client(self) -> Any:
        return self._session.hvac

    def for_mount(self, mount: str) -> VaultClient:
        """The same authenticated session on another KV v2 mount (for references outside ``secret/``)."""
        other = copy.copy(self)
        other.mount = mount.strip("/")
        return other

    # -- KV v2 -----------------------------------------------------------------

    def read(self, path: str) -> dict[str, str] | None:
        """The latest version's data; None if absent or its latest version is deleted/destroyed."""
        current = self.read_version(path)
        return current.data if current is not None else None

    def read_version(self, path: str) -> VersionedSecret | None:
        """The latest live version with its number and custom metadata, or None (see ``read``)."""

        def call() -> VersionedSecret | None:
            try:
                response = self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=False
                )
            except hvac.exceptions.InvalidPath:
                return None
            body = response["data"]
            if body.get("data") is None:  # latest version deleted or destroyed
                return None
            metadata = body.get("metadata") or {}
            return VersionedSecret(
                data=_strings(body["data"]),
                version=int(metadata["version"]),
                custom_metadata=_strings(metadata.get("custom_metadata") or {}),
            )

        return self._call(_Op("read", self._api("data", path)), call)

    def write(
        self, path: str, data: Mapping[str, str], cas: int | None, metadata: Mapping[str, str] | None = None
    ) -> int:
        """Write a new version with check-and-set and return its number.

        ``cas=0`` writes only if the path is absent (as ``read`` sees it);
        ``cas=N`` only if version N is still the latest; ``None`` writes
        unconditionally (for paths only this tool owns, such as rotations).
        ``metadata`` (non-secret provenance: key id, fingerprint, integration
        id) replaces the path's custom metadata after the data is written.
        """
        try:
            version = self._write(path, data, cas)
        except CasMismatch:
            latest = self._latest_if_deleted(path) if cas == 0 else None
            if latest is None:
                raise
            version = self._write(path, data, latest)
        if metadata is not None:
            self.set_metadata(path, metadata)
        return version

    def set_metadata(self, path: str, metadata: Mapping[str, str]) -> None:
        """Replace the path's custom metadata (non-secret provenance) without writing a new version."""
        self._call(
            _Op("create/update", self._api("metadata", path)),
            lambda: self._client.secrets.kv.v2.update_metadata(
                path=path, custom_metadata=dict(metadata), mount_point=self.mount
            ),
        )

    def delete(self, path: str) -> None:
        """Remove every version and the metadata; an absent path is fine."""
        self._call(
            _Op("delete", self._api("metadata", path)),
            lambda: self._client.secrets.kv.v2.delete_metadata_and_all_versions(
                path=path, mount_point=self.mount
            ),
        )

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Permanently remove the data of some versions (a replaced credential); gone is fine."""
        self._call(
            _Op("update", self._api("destroy", path)),
            lambda: self._client.secrets.kv.v2.destroy_secret_versions(
                path=path, versions=versions, mount_point=self.mount
            ),
        )

    def list(self, path: str) -> list[str]:
        """Names directly under ``path`` (sub-folders end in '/'); empty if there is nothing."""

        def call() -> list[str]:
            try:
                response = self._client.secrets.kv.v2.list_secrets(path=path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                return []
            return [str(key) for key in response["data"]["keys"]]

        return self._call(_Op("list", self._api("metadata", path)), call)

    def capabilities(self, api_paths: tuple[str, ...]) -> dict[str, frozenset[str]]:
        """The token's capabilities on each API path (``secret/data/x``): ``sys/capabilities-self``.

        A read-only question to Vault's policy engine; it also proves the token is valid.
        """

        def call() -> dict[str, frozenset[str]]:
            response = self._client.sys.get_capabilities(paths=[*api_paths])
            body = response.get("data", response) if isinstance(response, dict) else {}
            if len(api_paths) == 1 and api_paths[0] not in body:
                return {api_paths[0]: frozenset(body.get("capabilities") or ())}
            return {p: frozenset(body.get(p) or ()) for p in api_paths}

        return self._call(_Op("update", "sys/capabilities-self"), call)

    def api_path(self, kind: str, path: str) -> str:
        """The API path of a KV v2 operation on ``path`` (``kind``: data, metadata, destroy)."""
        return self._api(kind, path)

    # -- internals -------------------------------------------------------------

    def _write(self, path: str, data: Mapping[str, str], cas: int | None) -> int:
        def call() -> int:
            try:
                response = self._client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=dict(data), cas=cas, mount_point=self.mount
                )
            except hvac.exceptions.InvalidRequest as exc:
                if any("check-and-set" in str(error) for error in exc.errors or ()):
                    raise CasMismatch(
                        f"someone else wrote {self._api('data', path)} concurrently "
                        f"(expected version {cas}); run again to re-read it and continue from there"
                    ) from exc
                raise
            return int(response["data"]["version"])

        return self._call(_Op("create/update", self._api("data", path)), call)

    def _latest_if_deleted(self, path: str) -> int | None:
        """The current version number if it is deleted or destroyed (so ``cas=0`` may replace it)."""

        def call() -> int | None:
            try:
                response = self._client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                return None
            meta = response["data"]
            current = int(meta["current_version"])
            info = (meta.get("versions") or {}).get(str(current)) or {}
            return current if info.get("destroyed") or info.get("deletion_time") else None

        return self._call(_Op("read", self._api("metadata", path)), call)

    def _api(self, kind: str, path: str) -> str:
        return f"{self.mount}/{kind}/{path.strip('/')}"

    def _call(self, op: _Op, fn: Callable[[], T]) -> T:
        for attempt in (1, 2):
            self._login()
            try:
                return _retry(fn)()
            except BootstrapError:
                raise
            except hvac.exceptions.Forbidden as exc:
                if self._token_valid():
                    raise self._denied(op) from exc
                if self._session.approle and attempt == 1:
                    # AppRole tokens expire; one fresh login is part of normal operation.
                    self._session.logged_in = False
                    continue
                raise AuthError(
                    f"Vault rejected the token ({self._session.auth_field}): it is invalid, "
                    "expired or revoked (or may not look itself up); supply a valid one and run again"
                ) from exc
            except _MAPPED as exc:
                raise self._mapped(exc) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _login(self) -> None:
        session = self._session
        if session.logged_in:
            return
        try:
            _retry(
                lambda: session.hvac.auth.approle.login(role_id=session.role_id, secret_id=session.secret_id)
            )()
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden) as exc:
            raise AuthError(
                f"Vault at {self.url} rejected the AppRole login (vault.auth.approle): "
                f"{_errors(exc)}; check the role_id and secret_id (secret ids expire and may be single-use)"
            ) from exc
        except _MAPPED as exc:
            raise self._mapped(exc) from exc
        session.logged_in = True

    def _token_valid(self) -> bool:
        try:
            self._client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        return True

    def _denied(self, op: _Op) -> AuthError:
        return AuthError(
            f"Vault denied the request: the Vault token needs {op.capability} on {op.api_path} "
            f"(add it to the policy of the token or AppRole in vault.auth)"
        )

    def _mapped(self, exc: Exception) -> StepError:
        """Our error for a transport or Vault failure that ``_call`` does not handle specially."""
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return RetryableError(
                f"Vault at {self.url} is unreachable ({type(exc).__name__}); "
                "check vault.url and that Vault is running"
            )
        if isinstance(exc, hvac.exceptions.VaultDown):
            return RetryableError(
                f"Vault at {self.url} is sealed or unavailable (503); unseal it or wait, then run again"
            )
        if isinstance(exc, hvac.exceptions.RateLimitExceeded):
            return RetryableError(
                f"Vault at {self.url} is rate-limiting requests (429); run again shortly", delay=5
            )
        if isinstance(exc, hvac.exceptions.InternalServerError | hvac.exceptions.BadGateway):
            return RetryableError(f"Vault at {self.url} answered with a server error: {_errors(exc)}")
        return PermanentError(f"Vault at {self.url} refused the request: {_errors(exc)}")


def _errors(exc: Exception) -> str:
    """Vault's own error strings only: hvac's str() may embed a response body."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return type(exc).__name__


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else str(v) for k, v in values.items()}
