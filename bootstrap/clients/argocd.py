"""Argo CD's shared settings objects, the way every step writes them.

argocd-users, github-oauth and argocd-install all put keys into the same
objects (``argocd-cm``, ``argocd-secret``, ``argocd-rbac-cm``). This module
guarantees they do it the same way, so none of them can clobber another:

* each step server-side applies only its own keys under its own field
  manager (``bootstrap-<step id>``); which keys a step owns is read back from
  the object's ``managedFields``, so dropping a key is just re-applying
  without it (the API server removes fields a manager stops applying) and
  keys of other managers are never touched;
* secret values reach Ansible only as variables of its private vars file:
  manifests carry ``{{ var | b64encode }}`` placeholders, never the value;
* diffs shown in a plan mask every value of a Secret.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

CM = "argocd-cm"
SECRET = "argocd-secret"
RBAC = "argocd-rbac-cm"
MASK = "********"


def field_manager(step_id: str) -> str:
    return f"bootstrap-{step_id}"


def owned_keys(obj: Mapping[str, Any] | None, manager: str) -> set[str]:
    """The ``data`` keys ``manager`` set with server-side apply (empty for a missing object)."""
    keys: set[str] = set()
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            data = (entry.get("fieldsV1") or {}).get("f:data") or {}
            keys |= {k[2:] for k in data if k.startswith("f:")}
    return keys


def config_data(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict((obj or {}).get("data") or {})


def secret_data(obj: Mapping[str, Any] | None) -> dict[str, str]:
    """A Secret's ``data``, decoded (empty for a missing object)."""
    data = (obj or {}).get("data") or {}
    return {k: base64.b64decode(v).decode("utf-8", errors="replace") for k, v in data.items()}


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_placeholder(var: str) -> str:
    """What a Secret manifest carries instead of the value of secret variable ``var``."""
    return "{{ " + var + " | b64encode }}"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def config_map(name: str, ns: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": dict(data),
    }


def secret(
    name: str, ns: str, data: Mapping[str, str], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Secret whose ``data`` values are already base64 or ``secret_placeholder`` strings.

    ``data`` rather than ``stringData``: stringData is write-only, so server-side apply
    could never tell that the stored value already matches.
    """
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": dict(data)}


def diff(current: Mapping[str, str], desired: Mapping[str, str | None], drop: set[str], masked: bool) -> str:
    """Per-key diff lines; ``None`` in ``desired`` means "a new value" (a hash not yet computed)."""
    lines: list[str] = []

    def show(value: str | None) -> str:
        if masked or value is None:
            return MASK
        return value if "\n" not in value else "|\n    " + value.rstrip("\n").replace("\n", "\n    ")

    for key in sorted(desired):
        want, have = desired[key], current.get(key)
        if have is None:
            lines.append(f"+ {key}: {show(want)}")
        elif want is None or want != have:
            lines.append(f"~ {key}: {show(have)} -> {show(want)}")
    lines += [f"- {key}" for key in sorted(drop) if key in current]
    return "\n".join(lines)
