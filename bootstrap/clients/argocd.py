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
from collections.abc import Mapping, Sequence
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


def literal(value: str) -> str:
    """A manifest string Ansible must not template (Argo CD's own ``{{.app…}}`` templates)."""
    return "{% raw %}" + value + "{% endraw %}" if "{{" in value or "{%" in value else value


def literal_tree(value: Any) -> Any:
    """``literal`` applied to every string of an object read from Git (it may carry ``{{ }}``)."""
    if isinstance(value, str):
        return literal(value)
    if isinstance(value, dict):
        return {k: literal_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal_tree(v) for v in value]
    return value


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


# -- repositories and their credentials ---------------------------------------------

REPOSITORY = "repository"
REPO_CREDS = "repo-creds"
SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"


def _normal(url: str) -> str:
    return url.strip().lower().rstrip("/").removesuffix(".git")


def credential_for(repo_url: str, secrets: Sequence[Mapping[str, Any]]) -> str | None:
    """The name of the Secret Argo CD would use for ``repo_url``, or None.

    operator-manual/declarative-setup.md ("Repositories", "Repository Credentials"): a
    ``repository`` Secret serves the repoURL it names; a ``repo-creds`` Secret is a template
    for every repoURL its ``url`` is a prefix of (the longest prefix wins). Compared without
    case, trailing ``/`` or ``.git``, as Argo CD normalises Git URLs before comparing.
    """
    want, raw = _normal(repo_url), repo_url.strip().lower()
    best: tuple[int, str] | None = None
    for obj in secrets:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        kind = labels.get(SECRET_TYPE_LABEL)
        url = secret_data(obj).get("url")
        name = str((obj.get("metadata") or {}).get("name"))
        if not url:
            continue
        if kind == REPOSITORY and _normal(url) == want:
            return name
        prefix = url.strip().lower().rstrip("/")
        matches = raw.startswith(prefix) or want.startswith(_normal(prefix))
        if kind == REPO_CREDS and matches and (best is None or len(prefix) > best[0]):
            best = (len(prefix), name)
    return best[1] if best else None


def git_sources(app: Mapping[str, Any]) -> list[str]:
    """The Git repoURLs an Application reads (Helm chart repositories, which carry ``chart``, excluded)."""
    spec = app.get("spec") or {}
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    return [str(s["repoURL"]) for s in sources if s.get("repoURL") and not s.get("chart")]


# -- notifications -------------------------------------------------------------------

NOTIFICATIONS_CM = "argocd-notifications-cm"
NOTIFICATIONS_SECRET = "argocd-notifications-secret"
SLACK_TOKEN_KEY = "slack-token"
TRIGGERS = ("on-sync-failed", "on-health-degraded")


def notifications(channel: str, slack_api_url: str | None) -> dict[str, str]:
    """``argocd-notifications-cm`` data: Slack as a service, two triggers, one default subscription.

    operator-manual/notifications/ (services/slack.md: ``token: $slack-token`` names a key of
    ``argocd-notifications-secret``; triggers.md and templates.md; subscriptions.md: the
    ``subscriptions`` key applies to every Application). The install manifest ships the
    ConfigMap empty (no catalog), so the triggers and templates are defined here.
    """
    service = {"token": f"${SLACK_TOKEN_KEY}"}
    if slack_api_url:
        service["apiURL"] = slack_api_url.rstrip("/") + "/"
    return {
        "service.slack": _block(service),
        "trigger.on-sync-failed": _block(
            [
                {
                    "when": "app.status.operationState != nil and "
                    "app.status.operationState.phase in ['Error', 'Failed']",
                    "send": ["app-sync-failed"],
                }
            ]
        ),
        "trigger.on-health-degraded": _block(
            [{"when": "app.status.health.status == 'Degraded'", "send": ["app-health-degraded"]}]
        ),
        "template.app-sync-failed": _block(
            {
                "message": "Sync of {{.app.metadata.name}} failed ({{.app.status.operationState.phase}}): "
                "{{.app.status.operationState.message}}"
            }
        ),
        "template.app-health-degraded": _block(
            {"message": "{{.app.metadata.name}} is Degraded (revision {{.app.status.sync.revision}})."}
        ),
        "subscriptions": _block([{"recipients": [f"slack:{channel}"], "triggers": list(TRIGGERS)}]),
    }


def _block(value: Any) -> str:
    import yaml

    return str(yaml.safe_dump(value, sort_keys=False, default_flow_style=False))
