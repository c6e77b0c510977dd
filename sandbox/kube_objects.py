"""Object-level rules of the Kubernetes emulator: errors, selectors, defaults, workload status.

Everything here mirrors what a real API server puts on the wire, because the
official client and ``kubernetes.core`` branch on it: ``Status`` bodies with
``reason`` and ``details`` (``details.kind`` is the *resource*, as upstream),
the 400s a real server gives for a Secret whose ``data`` is not base64, and
the status fields a Deployment/StatefulSet controller writes (``conditions``,
``observedGeneration``) that wait loops read.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from datetime import UTC, datetime
from typing import Any

from sandbox.kube_resources import ResourceType

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ApiError(Exception):
    """Raised by the emulator's verbs; rendered as a ``Status`` with the given code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _details(rt: ResourceType, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": rt.plural}
    if name:
        details["name"] = name
    if rt.group:
        details["group"] = rt.group
    return details


def _qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(rt)} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(rt)} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": {why}',
        _details(rt, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResourceType, name: str, field: str, value: Any, why: str) -> ApiError:
    message = f'{rt.kind} "{name}" is invalid: {field}: Invalid value: "{value}": {why}'
    details = {
        "name": name,
        "kind": rt.kind,
        "causes": [
            {"reason": "FieldValueInvalid", "message": f'Invalid value: "{value}": {why}', "field": field}
        ],
    }
    if rt.group:
        details["group"] = rt.group
    return ApiError(422, "Invalid", message, details)


def forbidden(rt: ResourceType, verb: str, user: str, namespace: str | None, name: str | None) -> ApiError:
    subject = f'{_qualified(rt)} "{name}"' if name else _qualified(rt)
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{rt.plural}" '
        f'in API group "{rt.group}"{where}'
    )
    return ApiError(403, "Forbidden", message, _details(rt, name))


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- validation of what a client sends -------------------------------------------
def check_name(rt: ResourceType, name: str) -> None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise invalid(
            rt,
            name,
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character",
        )


def check_decodable(rt: ResourceType, obj: dict[str, Any]) -> None:
    """The 400s a real server gives when the body does not decode into the Go type."""

    def fail(detail: str) -> ApiError:
        return bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}')

    meta = obj.get("metadata") or {}
    for section in ("labels", "annotations"):
        for value in (meta.get(section) or {}).values():
            if not isinstance(value, str):
                raise fail(
                    f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                    f"ObjectMeta.metadata.{section} of type string"
                )
    if rt.kind in ("ConfigMap", "Secret"):
        for key in ("data", "stringData"):
            for value in (obj.get(key) or {}).values():
                if not isinstance(value, str):
                    raise fail(
                        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                        f"{rt.kind}.{key} of type string"
                    )
    if rt.kind == "Secret":
        for value in (obj.get("data") or {}).values():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise fail("illegal base64 data at input byte 0") from None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


# -- defaults the API server fills in ------------------------------------------
def fold_string_data(obj: dict[str, Any]) -> None:
    """A Secret's stringData is write-only: the server merges it into base64 ``data``."""
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        obj.setdefault("data", {}).update(
            {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        )


def apply_defaults(rt: ResourceType, obj: dict[str, Any], cluster_ip: str) -> None:
    if rt.kind == "Secret":
        fold_string_data(obj)
        obj.setdefault("type", "Opaque")
    elif rt.kind in ("Deployment", "StatefulSet"):
        obj.setdefault("spec", {}).setdefault("replicas", 1)
    elif rt.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("clusterIP", cluster_ip)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
    elif rt.kind == "Namespace":
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif rt.kind == "CustomResourceDefinition":
        names = obj.get("spec", {}).get("names", {})
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": [
                v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")
            ],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "lastTransitionTime": now(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "lastTransitionTime": now(),
                },
            ],
        }


# -- selectors -----------------------------------------------------------------
def label_matcher(selector: str | None) -> Any:
    """A predicate over a labels dict for ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    if not selector:
        return lambda _labels: True
    clauses = [c.strip() for c in _split_selector(selector) if c.strip()]
    tests = [_clause(c) for c in clauses]
    return lambda labels: all(t(labels) for t in tests)


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _clause(clause: str) -> Any:
    m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\((.*)\)$", clause)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in clause:
            key, value = (s.strip() for s in clause.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if clause.startswith("!"):
        return lambda labels: clause[1:] not in labels
    return lambda labels: clause in labels


def field_matcher(rt: ResourceType, selector: str | None) -> Any:
    """``metadata.name``/``metadata.namespace`` (plus ``type`` for Secrets), with ``=``, ``==``, ``!=``."""
    if not selector:
        return lambda _obj: True
    tests = []
    for clause in shlex.split(selector.replace(",", " ")):
        negate = "!=" in clause
        key, value = re.split(r"!=|==|=", clause, maxsplit=1)
        path = key.strip().split(".")
        if key not in ("metadata.name", "metadata.namespace") and not (rt.kind == "Secret" and key == "type"):
            raise bad_request(
                f'"{key}" is not a known field selector: only "metadata.name", "metadata.namespace"'
            )
        tests.append((path, value, negate))

    def match(obj: dict[str, Any]) -> bool:
        for path, value, negate in tests:
            node: Any = obj
            for p in path:
                node = node.get(p, "") if isinstance(node, dict) else ""
            if (node == value) == negate:
                return False
        return True

    return match


# -- the controllers' status -----------------------------------------------------
def workload_status(obj: dict[str, Any], available: bool) -> dict[str, Any]:
    """What the Deployment/StatefulSet controller would write once pods are (or are not) ready."""
    replicas = int(obj.get("spec", {}).get("replicas", 1))
    generation = obj["metadata"].get("generation", 1)
    name = obj["metadata"]["name"]
    stamp = now()
    if obj["kind"] == "StatefulSet":
        revision = f"{name}-{generation:08x}"
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
            "availableReplicas": replicas if available else 0,
        }
        if available and replicas:
            status["readyReplicas"] = replicas
        return status
    status = {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas}
    if available:
        status |= {"readyReplicas": replicas, "availableReplicas": replicas} if replicas else {}
        cond = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        progress = (
            "NewReplicaSetAvailable",
            f'ReplicaSet "{name}-{generation:08x}" has successfully progressed.',
        )
    else:
        status["unavailableReplicas"] = replicas
        cond = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        progress = ("ReplicaSetUpdated", f'ReplicaSet "{name}-{generation:08x}" is progressing.')
    status["conditions"] = [
        {
            "type": "Available",
            "status": cond[0],
            "reason": cond[1],
            "message": cond[2],
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": progress[0],
            "message": progress[1],
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        },
    ]
    return status
