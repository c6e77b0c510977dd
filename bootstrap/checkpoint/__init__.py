"""The checkpoint: what each step last did, kept so a re-run can resume (DESIGN.md §4, §8).

- ``state``: the document (``State``, ``StepRecord``, ``Status``) and its parsing,
  shared by every store; it also says what setting a checkpoint aside costs;
- ``store``: the ``Store`` protocol and the lock ``Holder`` both stores name;
- ``file_store``: the default, ``.bootstrap/state.json`` next to customer.yaml;
- ``kube_store``: a Secret per customer on a management cluster (``--state kubernetes://…``);
- ``store_for``: the one place a store is chosen.

The Kubernetes store is imported only when asked for: it pulls in the Kubernetes SDK.
"""

from __future__ import annotations

from pathlib import Path

from bootstrap.checkpoint.file_store import HOLDER_FILE, LOCK_FILE, STATE_FILE, FileStore
from bootstrap.checkpoint.state import LOST, SCHEMA_VERSION, State, Status, StepRecord, now, parse
from bootstrap.checkpoint.store import Holder, Store

__all__ = [
    "HOLDER_FILE",
    "LOCK_FILE",
    "LOST",
    "SCHEMA_VERSION",
    "STATE_FILE",
    "FileStore",
    "Holder",
    "State",
    "Status",
    "StepRecord",
    "Store",
    "now",
    "parse",
    "state_dir_for",
    "store_for",
]


def state_dir_for(path: Path, state_dir: Path | None) -> Path:
    """Where a customer file's checkpoint lives: ``--state-dir``, else ``.bootstrap/`` beside the file."""
    return state_dir if state_dir is not None else path.resolve().parent / ".bootstrap"


def store_for(url: str | None, directory: Path, customer: str, kubeconfig: str | None = None) -> Store:
    """The store ``--state`` names: None → the state file in ``directory``; ``kubernetes://…`` → a Secret.

    The Kubernetes store lives on the management cluster (``kubeconfig``, else KUBECONFIG or the
    pod's ServiceAccount), never on the customer's cluster from ``cluster.kubeconfig``.
    """
    if url is None:
        return FileStore(directory)
    from bootstrap.checkpoint import kube_store

    context, namespace = kube_store.parse_state_url(url)
    return kube_store.KubeStore(kubeconfig, context, namespace, customer)
