"""A stand-in for Argo CD's application controller, as far as deletion goes.

Nothing runs Argo CD's pods here, yet destroy must be exercised the way a cluster
behaves: an Application carrying ``resources-finalizer.argocd.argoproj.io`` that is
deleted is only marked (deletionTimestamp); the controller deletes the resources it
manages (cascading through their own finalizers) and then removes the finalizer,
and only then does the Application go (docs/user-guide/app_deletion.md, "About the
deletion finalizer"). Without the controller (its StatefulSet deleted first, or the
CRDs gone) the Application stays Terminating: exactly the stuck destroy the tool
must avoid.

Which resources an Application manages is read from the tracking annotation
``argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>``, the
default tracking method since v3.0 (docs/user-guide/resource_tracking.md).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kube import Key, KubeEmulator

FINALIZER = "resources-finalizer.argocd.argoproj.io"
TRACKING = "argocd.argoproj.io/tracking-id"
CONTROLLER = "argocd-application-controller"


def deleting(obj: dict[str, Any]) -> bool:
    """An Argo CD Application marked for deletion that still carries the resources finalizer."""
    meta = obj.get("metadata") or {}
    return (
        obj.get("kind") == "Application"
        and str(obj.get("apiVersion", "")).startswith("argoproj.io/")
        and bool(meta.get("deletionTimestamp"))
        and FINALIZER in (meta.get("finalizers") or [])
    )


def cascade(emu: KubeEmulator, key: Key) -> None:
    """One reconcile of a deleted Application: delete what it manages, then drop the finalizer."""
    with emu.lock:
        app = emu.stored(key)
        if app is None or not deleting(app):
            return
        namespace = key[2]
        if emu.stored(("apps", "statefulsets", namespace, CONTROLLER)) is None:
            return  # no controller: it stays Terminating
        prefix = f"{app['metadata']['name']}:"
        managed = [
            k
            for k in emu.stored_keys()
            if str(
                ((emu.stored(k) or {}).get("metadata") or {}).get("annotations", {}).get(TRACKING, "")
            ).startswith(prefix)
        ]
        for k in managed:
            emu.delete_stored(k)
        if any(emu.stored(k) is not None for k in managed):
            emu.schedule(partial(cascade, emu, key), emu.ready_delay)  # wait for their own finalizers
            return
        new = dict(app)
        new["metadata"] = dict(app["metadata"])
        new["metadata"]["finalizers"] = [f for f in app["metadata"]["finalizers"] if f != FINALIZER]
        emu.commit_stored(key, new)
