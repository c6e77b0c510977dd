"""Checkpoints in Kubernetes Secrets, so that each customer can run as a Job on a management cluster.

Guarantees (DESIGN.md §4 and §8), the file store's, with the API server in place of the disk:

- one Secret per customer, ``bootstrap-state-<customer>`` (type Opaque, labelled
  ``app.kubernetes.io/managed-by: gitops-bootstrap``), whose key ``state.json``
  holds exactly the JSON the file store writes. The checkpoint holds no secret;
  it is a Secret so that ``get secrets`` in one namespace is all the RBAC a run
  needs and nobody else reads a customer's history by accident;
- one writer per customer, with no lock service of our own: every write carries
  the ``resourceVersion`` this store last read or wrote, so the API server
  refuses (409) any write based on a stale read. The lock is a holder
  annotation written that way: of two runs racing for it exactly one write
  lands, the other gets LockedError naming the winner;
- a save never overwrites blindly: if another writer took the lock over since
  our last write, the save fails with StateError and leaves their state alone;
- a holder that died cannot block its customer forever: the holder carries a
  lease (``lease-until``, renewed on every save); once it has expired the next
  run takes over, with a notice. The lease compares the holder's clock with
  ours, so it should be much longer than any clock skew, and longer than the
  longest gap between two saves (a step's apply): a live run whose lease
  expired and was taken over fails at its next save instead of racing on;
- in a pod with no kubeconfig at all, ``kubernetes:///NAMESPACE`` is the cluster the pod runs in
  (its ServiceAccount): that is how a Job on the management cluster keeps its checkpoint there
  while its steps reach the customer's cluster through ``cluster.kubeconfig``;
- the namespace is never created (that needs cluster-wide rights a Job should
  not have); a missing one is a StateError naming it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from bootstrap.checkpoint import state as checkpoint
from bootstrap.checkpoint.store import Holder
from bootstrap.clients import kubernetes as kube
from bootstrap.errors import BootstrapError, ConfigError, LockedError, StateError

SCHEME = "kubernetes://"
SECRET_PREFIX = "bootstrap-state-"
STATE_KEY = "state.json"
HOLDER = "bootstrap.gitops.dev/holder"
LEASE_UNTIL = "bootstrap.gitops.dev/lease-until"
CUSTOMER_LABEL = "bootstrap.gitops.dev/customer"
MANAGED_BY = ("app.kubernetes.io/managed-by", "gitops-bootstrap")
LEASE = timedelta(minutes=10)
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def parse_state_url(url: str) -> tuple[str | None, str]:
    """``kubernetes://CONTEXT/NAMESPACE`` → (context, namespace); an empty context is the current one.

    The namespace is the last path segment, so a context containing ``/`` (an EKS
    ARN, ``arn:aws:eks:…:cluster/name``) works as written; ``%2F`` works too.
    """
    rest = url.removeprefix(SCHEME)
    context, slash, namespace = rest.rstrip("/").rpartition("/")
    if rest == url or not slash or not _DNS_LABEL.match(namespace):
        raise ConfigError(
            f"--state {url!r}: expected kubernetes://CONTEXT/NAMESPACE or kubernetes:///NAMESPACE "
            "(an existing namespace; e.g. kubernetes:///bootstrap-state for the current context)"
        )
    return (unquote(context) or None), namespace


class KubeStore:
    """One customer's checkpoint in a Secret; see the module docstring for what it guarantees."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        namespace: str,
        customer: str,
        lease: timedelta = LEASE,
        client: kube.KubeClient | None = None,
    ) -> None:
        self.context = context
        self.namespace = namespace
        self.customer = customer
        self.name = SECRET_PREFIX + customer
        self.lease = lease
        self.client = client or kube.KubeClient(kubeconfig, context, in_cluster=True)
        self._holding: dict[str, Any] | None = None  # our holder record while lock() is held
        self._seen: dict[str, Any] | None = None  # the Secret as of our last read or write, while held
        self._mutex = threading.Lock()  # the engine may save from worker threads

    def describe(self) -> str:
        return f"Secret {self.namespace}/{self.name} (context {self.context or 'current'})"

    # -- Store protocol ----------------------------------------------------------------
    def load(self, customer: str) -> checkpoint.State:
        if customer != self.customer:
            raise StateError(f"{self.describe()} holds the checkpoint of {self.customer!r}, not {customer!r}")
        obj = self._read()
        with self._mutex:
            if self._holding is not None:
                if not self._ours(obj):
                    raise self._taken_over(obj)
                self._seen = obj
        return self._parse(obj, customer)

    def save(self, state: checkpoint.State) -> None:
        with self._mutex:
            seen = self._seen
            if self._holding is None or seen is None:
                raise StateError(f"{self.describe()}: a checkpoint is only saved while holding its lock")
            encoded = base64.b64encode(state.dump()).decode()
            for attempt in range(2):
                body = self._leased(seen, self._holding)
                body.setdefault("data", {})[STATE_KEY] = encoded
                try:
                    self._seen = self.client.replace(body)
                    return
                except kube.Missing:
                    raise StateError(
                        f"{self.describe()} was deleted while this run held its lock; this run's last "
                        "progress is not saved. Run again: every step re-observes the remote state"
                    ) from None
                except kube.Conflict:
                    current = self._read()
                    # Someone changed only what is not ours (a label, another annotation): still our
                    # lock and our state, so write again on top of their change.
                    benign = attempt == 0 and self._ours(current) and _state_of(current) == _state_of(seen)
                    if current is None or not benign:
                        raise self._taken_over(current) from None
                    seen = current

    @contextlib.contextmanager
    def lock(self, break_lock: bool = False) -> Iterator[str | None]:
        """Hold the customer's lock; yields a notice when an expired or broken lock was taken over."""
        with self._mutex:
            if self._holding is not None:
                raise LockedError(f"{self.describe()} is already locked by this process")
            notice = self._acquire(break_lock)
        try:
            yield notice
        except BaseException:
            # Never hide why the run ended behind a failure to release; the lease expires anyway.
            with contextlib.suppress(BootstrapError):
                self._release()
            raise
        else:
            self._release()

    # -- the lock ------------------------------------------------------------------------
    def _acquire(self, break_lock: bool) -> str | None:
        record = {
            "id": uuid.uuid4().hex,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": checkpoint.now(),
        }
        current = self._read()
        if current is None:
            fresh = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": self.name, "namespace": self.namespace},
            }
            try:
                self._seen = self.client.create(self._leased(fresh, record))
            except kube.Conflict:  # AlreadyExists: another run created it first and holds it
                raise self._locked(self._read()) from None
            except kube.Missing:
                raise StateError(
                    f"namespace {self.namespace} does not exist (context {self.context or 'current'}); "
                    "create it first (kubectl create namespace "
                    f"{self.namespace}), or name an existing one in --state"
                ) from None
            self._holding = record
            return None
        previous = _holder(current)
        notice = None
        if previous is not None:
            if break_lock:
                notice = f"broke the lock held by {_describe(previous)} (--break-lock)"
            elif previous.expired(datetime.now(UTC)):
                notice = f"took over a stale lock left by {_describe(previous)} (its lease expired)"
            else:
                raise self._locked(current)
        try:
            self._seen = self.client.replace(self._leased(current, record))
        except (kube.Conflict, kube.Missing):  # someone else wrote between our read and our write
            raise self._locked(self._read()) from None
        self._holding = record
        return notice

    def _release(self) -> None:
        with self._mutex:
            seen, holding = self._seen, self._holding
            self._seen = self._holding = None
            for _ in range(3):  # past that, someone keeps editing it: the lease will free it
                if seen is None or holding is None:
                    return
                try:
                    self.client.replace(self._leased(seen, None))
                    return
                except kube.Missing:
                    return
                except kube.Conflict:
                    seen = self._read()
                    if not self._ours(seen, holding):
                        return  # taken over: the lock is someone else's to release now

    def _ours(self, obj: dict[str, Any] | None, record: dict[str, Any] | None = None) -> bool:
        holder, record = _holder(obj), record or self._holding
        return holder is not None and record is not None and holder.id == record["id"]

    def _leased(self, obj: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        """``obj`` (keeping its resourceVersion) with our labels, and our holder annotations or none."""
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        meta.pop("managedFields", None)
        meta["labels"] = (meta.get("labels") or {}) | {
            MANAGED_BY[0]: MANAGED_BY[1],
            CUSTOMER_LABEL: self.customer,
        }
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in (HOLDER, LEASE_UNTIL)
        }
        if record is not None:
            annotations[HOLDER] = json.dumps(record, sort_keys=True)
            until = datetime.now(UTC).replace(microsecond=0) + self.lease
            annotations[LEASE_UNTIL] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["annotations"] = annotations
        return body

    def _locked(self, obj: dict[str, Any] | None) -> LockedError:
        holder = _holder(obj)
        by = _describe(holder) if holder else "another run"
        return LockedError(
            f"customer state {self.describe()} is locked by {by}; "
            "wait for it to finish. If you are sure it is gone (e.g. its Job or pod was deleted), "
            "re-run with --break-lock"
        )

    def _taken_over(self, obj: dict[str, Any] | None) -> StateError:
        holder = _holder(obj)
        by = _describe(holder) if holder else "another writer"
        return StateError(
            f"{self.describe()} was taken over by {by} while this run held its lock (expired lease or "
            "--break-lock); this run's progress since then is not saved and nothing was overwritten. "
            "Let that run finish, then run again"
        )

    # -- reading -------------------------------------------------------------------------
    def _read(self) -> dict[str, Any] | None:
        return self.client.get("v1", "Secret", self.namespace, self.name)

    def _parse(self, obj: dict[str, Any] | None, customer: str) -> checkpoint.State:
        encoded = _state_of(obj)
        if encoded is None:
            return checkpoint.State(customer=customer)
        source = f"{self.describe()} key {STATE_KEY}"
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise StateError(f"{source} is corrupt ({type(exc).__name__}); {self._way_out()}") from None
        return checkpoint.parse(text, source, customer, self._way_out(), foreign=self._way_out())

    def _way_out(self) -> str:
        kubectl = f"kubectl{f' --context {self.context}' if self.context else ''} -n {self.namespace}"
        return (
            f"save a copy (`{kubectl} get secret {self.name} -o yaml`), delete it (`{kubectl} delete secret "
            f"{self.name}`) and run again: {checkpoint.LOST}"
        )


def _state_of(obj: dict[str, Any] | None) -> str | None:
    value = ((obj or {}).get("data") or {}).get(STATE_KEY)
    return str(value) if value is not None else None


def _holder(obj: dict[str, Any] | None) -> Holder | None:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(HOLDER)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        record = (str(data["id"]), int(data["pid"]), str(data["host"]), str(data["started"]))
    except (ValueError, KeyError, TypeError):
        # Unreadable: someone edited it by hand. Treat it as held without a lease (so, stale).
        return Holder(0, "an unknown host", "an unknown time", id="", until=None)
    ident, pid, host, started = record
    return Holder(pid, host, started, id=ident, until=_parse_time(annotations.get(LEASE_UNTIL)))


def _describe(holder: Holder) -> str:
    until = f", lease until {holder.until.isoformat()}" if holder.until else ", no readable lease"
    return holder.describe() + until


def _parse_time(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
