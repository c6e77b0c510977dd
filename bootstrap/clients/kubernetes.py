"""Reading (and, for tests and plans, applying) cluster objects with the official client.

Cluster *changes* go through Ansible (bootstrap.clients.ansible); this adapter
exists so that ``plan()`` can observe the cluster quickly and so the install
step can wait for workloads. It guarantees:

* plain ``dict`` objects in and out, addressed by ``(api_version, kind,
  namespace, name)`` through discovery, so custom resources (Argo CD's
  Application) work the moment their CRD exists, and a kind the cluster does
  not serve reads as "absent" rather than crashing a plan;
* errors mapped onto the tool's hierarchy with the context and the missing
  permission named (401/403 → AuthError, unreachable/429/5xx → RetryableError);
  no token or Secret value ever appears in a message;
* ``create``/``replace`` for callers that build on optimistic concurrency (the
  Kubernetes checkpoint store): a 409 is a ``Conflict`` of its own, never
  retried here, because only the caller can decide whether to re-read and try
  again or to give up.
"""

from __future__ import annotations

import base64
import functools
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bootstrap import side_by_side
from bootstrap.errors import AuthError, PermanentError, RetryableError

_POLL = 0.25
READERS = 8
"""Reads ``read_all`` makes side by side."""
CONNECTIONS = 32
"""Connections kept open to the API server: the client's default is 5 per CPU (10 on 2 cores), fewer
than the access reviews a preflight has in flight, and every connection beyond the pool is closed
after its request, with a warning on stderr."""
Objects = list[dict[str, Any]]
Workloads = list[tuple[str, str]]
"""(kind, name) pairs, e.g. ("Deployment", "argocd-server")."""


class Conflict(RetryableError):
    """409: the object already exists, or changed since the resourceVersion the write carried."""


class Missing(PermanentError):
    """404 on a write: the object to replace, or the namespace to create in, does not exist."""


@dataclass(frozen=True)
class Read:
    """One read for ``KubeClient.read_all``: a get when ``name`` is given, else a list."""

    api_version: str
    kind: str
    namespace: str | None
    name: str | None = None
    label_selector: str | None = None


class KubeClient:
    """A small typed facade over ``kubernetes.dynamic``; cheap to build, connects lazily."""

    def __init__(self, kubeconfig: str | None, context: str | None, in_cluster: bool = False) -> None:
        """``in_cluster``: with no kubeconfig anywhere, inside a pod, use the pod's ServiceAccount.

        Off by default so that a step never falls back silently onto the cluster the tool
        runs in (a management cluster) when the customer's kubeconfig is missing.
        """
        self.kubeconfig = kubeconfig
        self.context = context
        self.in_cluster = in_cluster
        self._dyn: Any = None
        # Steps of one customer run in threads and share this client; the discovery cache of
        # kubernetes.dynamic is not thread-safe: connect once, and look resources up one at a time.
        self._discovery = threading.RLock()
        self.host = "(unknown)"
        # Discovery is cached per client in a private dir: a shared /tmp cache keyed by the
        # server URL would serve one sandbox's CRDs to the next one on the same port.
        self._cache_dir = tempfile.mkdtemp(prefix="bootstrap-kube-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._cache_dir, True)

    def close(self) -> None:
        self._cleanup()

    def connect(self) -> None:
        """Load the kubeconfig and discover the APIs now (the first read would do it anyway)."""
        self._client()

    # -- reads ---------------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic import exceptions

        resource = self._resource(api_version, kind)
        if resource is None:
            return None
        try:
            obj = resource.get(name=name, namespace=namespace if resource.namespaced else None)
        except exceptions.NotFoundError:
            return None
        except Exception as exc:
            raise self._error(exc, "get", resource.name, namespace) from None
        return dict(obj.to_dict())

    def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind (in one namespace, or all when None); items carry kind/apiVersion."""
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            result = resource.get(
                namespace=namespace if resource.namespaced else None, label_selector=label_selector
            )
        except Exception as exc:
            raise self._error(exc, "list", resource.name, namespace) from None
        # A real server omits kind/apiVersion on the items of built-in lists; callers get them back.
        return [{"apiVersion": api_version, "kind": kind, **item.to_dict()} for item in result.items]

    def read_all(self, reads: Sequence[Read]) -> Sequence[Objects]:
        """Each read's objects in order (a get: ``[]`` when absent, else ``[object]``), made side by side.

        A plan's reads rarely depend on each other, and one at a time each costs a full round
        trip: Argo CD's ~60 objects are a dozen lists and gets, ~0.6 s in turn against an API
        server 50 ms away, ~0.1 s side by side. The first failure is raised once every read has
        ended, as one read at a time would have raised it (discovery stays one lookup at a time).
        """

        def one(read: Read) -> Objects:
            if read.name is not None:
                got = self.get(read.api_version, read.kind, read.namespace, read.name)
                return [] if got is None else [got]
            return self.list(read.api_version, read.kind, read.namespace, read.label_selector)

        return side_by_side.run([functools.partial(one, r) for r in reads], READERS, "kube-read")

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, base64-decoded; None when the Secret does not exist."""
        secret = self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        data = secret.get("data") or {}
        return {k: base64.b64decode(v).decode("utf-8", errors="replace") for k, v in data.items()}

    def version(self) -> tuple[str, str]:
        """``(major, minor)`` as the API server reports them (``GET /version``; EKS says ``"31+"``)."""
        from kubernetes import client

        api = client.VersionApi(self._client().client)
        try:
            info = api.get_code()
        except Exception as exc:
            raise self._error(exc, "get", "/version", None) from None
        return str(info.major), str(info.minor)

    def server(self) -> str:
        """The API server URL of the kubeconfig context (what another cluster's Argo CD must reach)."""
        self._client()
        return str(self.host)

    def can(self, verb: str, resource: str, group: str, namespace: str | None) -> tuple[bool, str]:
        """Whether the credentials may ``verb`` ``resource``: a SelfSubjectAccessReview (writes nothing).

        The API server answers from its authorizers (RBAC) for exactly the user the kubeconfig
        authenticates as; ``(allowed, reason)``.
        """
        from kubernetes import client

        attributes = client.V1ResourceAttributes(
            verb=verb, resource=resource, group=group, namespace=namespace
        )
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        api = client.AuthorizationV1Api(self._client().client)
        try:
            result = api.create_self_subject_access_review(review)
        except Exception as exc:
            raise self._error(exc, "create", "selfsubjectaccessreviews", None) from None
        status = result.status
        return bool(status and status.allowed), str((status and status.reason) or "")

    # -- writes (tests, plans via dry_run) --------------------------------------------
    def apply(self, obj: dict[str, Any], field_manager: str, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with ``force``; with ``dry_run`` the server stores nothing."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        namespace = obj.get("metadata", {}).get("namespace")
        resource = self._resource(api_version, kind)
        if resource is None:
            raise PermanentError(
                f"the cluster does not serve {kind} in {api_version}; "
                "install its CustomResourceDefinition first"
            )
        try:
            result = resource.server_side_apply(
                body=obj,
                namespace=namespace if resource.namespaced else None,
                field_manager=field_manager,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        except Exception as exc:
            raise self._error(exc, "patch", resource.name, namespace) from None
        return dict(result.to_dict())

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create (POST); Conflict when it already exists, Missing when its namespace does not."""
        return self._write("create", obj)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace (PUT); with ``metadata.resourceVersion`` set, Conflict when it changed since."""
        return self._write("update", obj)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """True when the object was deleted, False when it was already gone."""
        from kubernetes.dynamic import exceptions

        resource = self._resource(api_version, kind)
        if resource is None:
            return False
        try:
            resource.delete(name=name, namespace=namespace if resource.namespaced else None)
        except exceptions.NotFoundError:
            return False
        except Exception as exc:
            raise self._error(exc, "delete", resource.name, namespace) from None
        return True

    def _write(self, verb: Literal["create", "update"], obj: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.dynamic import exceptions

        api_version, kind = obj["apiVersion"], obj["kind"]
        name = obj.get("metadata", {}).get("name", "")
        namespace = obj.get("metadata", {}).get("namespace")
        resource = self._resource(api_version, kind)
        if resource is None:
            raise PermanentError(f"the cluster does not serve {kind} in {api_version}")
        where = f" in namespace {namespace}" if namespace else ""
        namespace = namespace if resource.namespaced else None
        try:
            if verb == "create":
                result = resource.create(body=obj, namespace=namespace)
            else:
                result = resource.replace(body=obj, namespace=namespace)
        except exceptions.ConflictError as exc:
            raise Conflict(f"cannot {verb} {resource.name}/{name}{where}: {_status_message(exc)}") from None
        except exceptions.NotFoundError as exc:
            raise Missing(f"cannot {verb} {resource.name}/{name}{where}: {_status_message(exc)}") from None
        except Exception as exc:
            raise self._error(exc, verb, resource.name, namespace) from None
        return dict(result.to_dict())

    # -- waiting ---------------------------------------------------------------------
    def wait_available(
        self,
        namespace: str,
        workloads: Workloads,
        timeout: float,
        on_progress: Callable[[str], None],
    ) -> None:
        """Poll until every (kind, name) Deployment is Available / StatefulSet Ready.

        On timeout raise RetryableError naming exactly the workloads still not ready and why.
        """
        deadline = time.monotonic() + timeout
        last: dict[tuple[str, str], str] = {}
        while True:
            pending: dict[tuple[str, str], str] = {}
            for kind, name in workloads:
                ready, why = readiness(kind, self.get("apps/v1", kind, namespace, name))
                if not ready:
                    pending[(kind, name)] = why
            if pending != last:
                waiting = ", ".join(f"{k}/{n} ({w})" for (k, n), w in pending.items())
                done = len(workloads) - len(pending)
                on_progress(
                    f"{done}/{len(workloads)} workloads ready in {namespace}"
                    + (f"; waiting for {waiting}" if waiting else "")
                )
                last = pending
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = "; ".join(f"{k}/{n}: {w}" for (k, n), w in pending.items())
                if timeout <= 0:  # a check of the moment (status --verify), not a wait
                    raise RetryableError(f"workloads in namespace {namespace} are not ready: {detail}")
                raise RetryableError(
                    f"timed out after {timeout:g}s waiting for workloads in namespace {namespace}: {detail}"
                )
            time.sleep(min(_POLL, remaining))

    def wait_secret_keys(
        self, namespace: str, name: str, keys: tuple[str, ...], timeout: float, why: str
    ) -> dict[str, str]:
        """Poll until the Secret holds every key of ``keys`` (a controller fills it); its decoded data.

        On timeout a RetryableError says which Secret and what it waits for (``why``),
        never a value.
        """
        deadline = time.monotonic() + timeout
        while True:
            data = self.secret_data(namespace, name) or {}
            if all(data.get(k) for k in keys):
                return data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableError(
                    f"Secret {namespace}/{name} still lacks {', '.join(k for k in keys if not data.get(k))} "
                    f"after {timeout:g}s: {why}"
                )
            time.sleep(min(_POLL, remaining))

    # -- plumbing --------------------------------------------------------------------
    def _client(self) -> Any:
        with self._discovery:
            return self._connect()

    def _connect(self) -> Any:
        if self._dyn is None:
            import urllib3
            from kubernetes import client, config
            from kubernetes.dynamic import DynamicClient

            cfg = client.Configuration()
            if self._use_service_account():
                try:
                    config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                except config.ConfigException as exc:
                    raise AuthError(f"cannot use this pod's ServiceAccount: {exc}") from None
            else:
                try:
                    config.load_kube_config(  # type: ignore[no-untyped-call]
                        config_file=self.kubeconfig, context=self.context, client_configuration=cfg
                    )
                except (config.ConfigException, OSError) as exc:
                    raise AuthError(
                        f"cannot load kubeconfig {self.kubeconfig or '~/.kube/config'} "
                        f"(context {self.context or 'current'}): {exc}"
                    ) from None
            # One quick retry for a dropped connection; a 429/503 comes back to us (and to the
            # engine's retry policy) instead of urllib3 sleeping on Retry-After by itself.
            cfg.retries = urllib3.util.Retry(total=1, respect_retry_after_header=False, raise_on_status=False)
            cfg.connection_pool_maxsize = CONNECTIONS
            self.host = cfg.host
            api = client.ApiClient(cfg)
            try:
                cache = f"{self._cache_dir}/discovery.json"
                self._dyn = DynamicClient(api, cache_file=cache)  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise self._error(exc, "discover", "APIs", None) from None
        return self._dyn

    def _use_service_account(self) -> bool:
        import os

        from kubernetes.config import incluster_config, kube_config

        return (
            self.in_cluster
            and self.kubeconfig is None
            and self.context is None
            and incluster_config.SERVICE_HOST_ENV_NAME in os.environ
            and not os.environ.get("KUBECONFIG")
            and not os.path.exists(os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION))
        )

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic import exceptions

        # Name the URL prefix: searching "v1" under every prefix makes discovery fetch every
        # group that has a v1 (apps, rbac, policy, …), one call each, to find a core kind.
        prefix = "apis" if "/" in api_version else "api"
        with self._discovery:
            dyn = self._client()
            try:
                return dyn.resources.get(prefix=prefix, api_version=api_version, kind=kind)
            except exceptions.ResourceNotFoundError:
                return None
            except Exception as exc:
                raise self._error(exc, "discover", kind, None) from None

    def _error(self, exc: Exception, verb: str, resource: str, namespace: str | None) -> Exception:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        where = f" in namespace {namespace}" if namespace else ""
        who = f"context {self.context!r}" if self.context else "the current context"
        config = self.kubeconfig or "~/.kube/config"
        if isinstance(exc, urllib3.exceptions.HTTPError):
            return RetryableError(f"cluster API at {self.host} unreachable ({type(exc).__name__})")
        if not isinstance(exc, ApiException):
            return PermanentError(f"cannot {verb} {resource}{where}: {type(exc).__name__}")
        status = int(exc.status or 0)
        if status == 401:
            return AuthError(
                f"the cluster at {self.host} rejected the credentials of {who} in {config}; "
                "check cluster.context and the kubeconfig's token"
            )
        if status == 403:
            return AuthError(f"{who} ({config}) needs permission to {verb} {resource}{where}")
        if status == 429 or status >= 500:
            retry_after = (exc.headers or {}).get("Retry-After") if hasattr(exc, "headers") else None
            delay = float(retry_after) if retry_after and str(retry_after).isdigit() else None
            return RetryableError(
                f"cluster API at {self.host} answered {status} to {verb} {resource}{where}", delay
            )
        return PermanentError(f"cannot {verb} {resource}{where}: {status} {_status_message(exc)}")


def _status_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def readiness(kind: str, obj: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a workload is rolled out and Available (Deployment) / Ready (StatefulSet), and if not, why.

    As ``kubectl rollout status`` judges it: the controller has seen the current spec
    (observedGeneration), every replica runs the new template (updatedReplicas; for a
    StatefulSet also updateRevision == currentRevision), no old replica is left
    (replicas == updatedReplicas), and enough are available. Without these, "ready" can be
    reported in the middle of an upgrade while old pods still serve.
    """
    if obj is None:
        return False, "not found"
    want = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False, "not yet observed by its controller"
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if updated < want:
        return False, f"{updated}/{want} updated"
    if total > updated:
        return False, f"{total - updated} old replica(s) pending termination"
    if kind == "StatefulSet":
        current, update = status.get("currentRevision"), status.get("updateRevision")
        if update and current != update:
            return False, f"rolling out revision {update} (current {current})"
        ready = int(status.get("readyReplicas") or 0)
        return ready >= want, f"{ready}/{want} ready"
    available = int(status.get("availableReplicas") or 0)
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Available"), None)
    if cond is not None and cond.get("status") == "True" and available >= want:
        return True, f"{available}/{want} available"
    reason = f"; Available={cond.get('status')}: {cond.get('reason', '')}" if cond else ""
    return False, f"{available}/{want} available{reason}"
