"""A Kubernetes API server emulator for tests and the sandbox.

No kube-apiserver can run on these machines, so this stands in for one. It
guarantees that the official ``kubernetes`` client and Ansible's
``kubernetes.core`` modules see the same wire behaviour they would see on a
real cluster for what the steps use: discovery (CRDs included), create → 201,
optimistic concurrency on ``resourceVersion`` (409), merge / strategic / JSON
patches, server-side apply with field managers and conflicts, ``dryRun=All``
storing nothing (Ansible's check mode relies on it), label/field selectors,
watches, and ``Status`` error bodies.

It is written on :mod:`sandbox.httpemu` rather than on kmock 0.8:
kmock is an aiohttp app living in its own event loop, gets most verbs wrong on
the wire (REFERENCE.md §9) so nearly every handler would have been replaced,
and it would not have shared the call log and fault injection every other
emulator here has.

Nothing runs pods, so a tiny stand-in for the controllers marks Deployments
and StatefulSets Available/Ready ``ready_delay`` seconds after they are created
or their spec changes; ``hold()`` keeps one unavailable so a wait timeout can be
exercised. The call log counts as writes only calls that changed stored state:
``dryRun`` calls and no-op updates (which a real server answers without
bumping ``resourceVersion``) are not writes.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from sandbox import kube_argocd, kube_tokens
from sandbox import kube_objects as ko
from sandbox import kube_patch as kp
from sandbox import kube_resources as kr
from sandbox.httpemu import EmulatorServer, Fault, Request, Response

Key = tuple[str, str, str, str]
"""(group, plural, namespace or "", name): one stored object."""

_WORKLOADS = ("Deployment", "StatefulSet")
_EVENT_HISTORY = 5000
_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_USER = "system:serviceaccount:sandbox:bootstrap"
_SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass
class _Stream(Response):
    """A chunked response (watch); sent outside the state lock."""

    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))


@dataclass(frozen=True)
class _Target:
    rt: kr.ResourceType
    namespace: str | None
    name: str | None
    sub: str | None

    def key(self, name: str | None = None) -> Key:
        return (self.rt.group, self.rt.plural, self.namespace or "", name or self.name or "")


@dataclass(frozen=True)
class _Event:
    rv: int
    type: str
    key: Key
    obj: dict[str, Any]


class KubeEmulator(EmulatorServer):
    """The emulated API server; see the module docstring for what it guarantees."""

    name = "kube"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",
        check_token: bool = False,
        ready_delay: float = 0.2,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.check_token = check_token
        self.ready_delay = ready_delay
        self._types: dict[tuple[str, str, str], kr.ResourceType] = {}
        self._store: dict[Key, dict[str, Any]] = {}
        self._events: list[_Event] = []
        self._rv = 0
        self._cond = threading.Condition(self.lock)
        self._local = threading.local()
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self._held: set[tuple[str, str, str]] = set()
        self._forbidden: list[tuple[str, str, str | None]] = []
        self._ips = 0
        self.server_version = dict(kr.SERVER_VERSION)
        """What ``GET /version`` answers (tests set another ``minor``)."""
        self.ca_bundle = kube_tokens.ca_bundle(secrets.token_hex(8))
        """The CA the token controller stand-in puts into ServiceAccount token Secrets (``ca.crt``)."""
        for rt in kr.BUILTIN:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        with self.lock:
            for ns in _DEFAULT_NAMESPACES:
                self._create(
                    self._type("v1", "Namespace"),
                    None,
                    {"metadata": {"name": ns}},
                    "sandbox",
                    "Update",
                    False,
                )
            self._local.write = False

    # -- public inspection and control -------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        rt = self._type(api_version, kind)
        with self.lock:
            obj = self._store.get((rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Copies of every stored object (of one kind), in storage order."""
        with self.lock:
            return [
                copy.deepcopy(o) for k, o in sorted(self._store.items()) if kind is None or o["kind"] == kind
            ]

    def seed(self, *objs: dict[str, Any]) -> list[dict[str, Any]]:
        """Create objects directly (as if applied by another tool); CRDs register their types."""
        out = []
        with self.lock:
            for obj in objs:
                rt = self._type(obj["apiVersion"], obj["kind"])
                ns = obj.get("metadata", {}).get("namespace") if rt.namespaced else None
                out.append(
                    self._create(
                        rt, ns or ("default" if rt.namespaced else None), obj, "sandbox", "Update", False
                    )
                )
        return out

    def hold(self, namespace: str, kind: str, name: str) -> None:
        """Keep this workload unavailable (its status says MinimumReplicasUnavailable) until released."""
        with self.lock:
            self._held.add((namespace, kind, name))

    def release(self, namespace: str, kind: str, name: str) -> None:
        with self.lock:
            self._held.discard((namespace, kind, name))
            rt = self._type("apps/v1", kind)
            if (rt.group, rt.plural, namespace, name) in self._store:
                self._schedule((rt.group, rt.plural, namespace, name), 0.0)

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Answer ``verb`` on ``resource`` (plural, e.g. "secrets") with 403, as RBAC would."""
        with self.lock:
            self._forbidden.append((verb, resource, namespace))

    def write_kubeconfig(self, path: str | os.PathLike[str], context: str = "sandbox") -> Path:
        """A kubeconfig (mode 0600) pointing at this server with a bearer token."""
        target = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": self.url}}],
            "users": [{"name": "sandbox", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "sandbox", "user": "sandbox", "namespace": "default"},
                }
            ],
            "current-context": context,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f)
        return target

    def stop(self) -> None:
        self._stopping.set()
        with self.lock:
            for timer in self._timers:
                timer.cancel()
            self._cond.notify_all()
        super().stop()

    # -- request plumbing ----------------------------------------------------------
    def is_write(self, method: str, path: str) -> bool:
        return bool(getattr(self._local, "write", False))

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        self._local.write = False
        super()._serve(h)

    def rate_limited(self, rule: Fault) -> Response:
        err = ko.ApiError(429, "TooManyRequests", "Too many requests, please try again later.", {})
        err.details = {"retryAfterSeconds": rule.retry_after}
        return Response(429, err.body(), {"Retry-After": str(rule.retry_after)})

    def server_error(self, rule: Fault) -> Response:
        reason = {503: "ServiceUnavailable", 504: "Timeout"}.get(rule.status, "InternalError")
        return Response(rule.status, ko.ApiError(rule.status, reason, f"injected {rule.status}").body())

    def dispatch(self, req: Request) -> Response:
        try:
            if self.check_token and req.header("authorization") != f"Bearer {self.token}":
                raise ko.unauthorized()
            if req.method == "POST" and req.path.rstrip("/") == _SSAR_PATH:
                return Response(201, self._access_review(self._body(req)))
            with self.lock:
                doc = self._discovery(req)
                if doc is not None:
                    return Response(200, doc)
                target = self._parse(req.path)
                return self._handle(req, target)
        except ko.ApiError as err:
            return Response(err.code, err.body())

    def _send(self, h: BaseHTTPRequestHandler, resp: Response) -> None:
        if not isinstance(resp, _Stream):
            super()._send(h, resp)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.close_connection = True
        try:
            for chunk in resp.chunks:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- discovery and routing -------------------------------------------------------
    def _discovery(self, req: Request) -> dict[str, Any] | None:
        if req.method != "GET":
            return None
        parts = [p for p in req.path.split("/") if p]
        types = list(self._types.values())
        if parts == ["version"]:
            return dict(self.server_version)
        if parts == ["api"]:
            return kr.api_versions(f"{self.host}:{self.port}")
        if parts == ["apis"]:
            return kr.group_list(types)
        if parts == ["api", "v1"]:
            return kr.resource_list(types, "", "v1")
        if len(parts) == 2 and parts[0] == "apis" and any(t.group == parts[1] for t in types):
            return kr.group_doc(types, parts[1])
        if (
            len(parts) == 3
            and parts[0] == "apis"
            and any(t.api_version == f"{parts[1]}/{parts[2]}" for t in types)
        ):
            return kr.resource_list(types, parts[1], parts[2])
        return None

    def _parse(self, path: str) -> _Target:
        parts = [p for p in path.split("/") if p]
        missing = ko.ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise missing
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in self._types:
            namespace, rest = rest[1], rest[2:]
        rt = self._types.get((group, version, rest[0])) if rest else None
        if rt is None or len(rest) > 3 or (rt.namespaced != (namespace is not None) and len(rest) > 1):
            raise missing
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (sub == "status" and rt.status_subresource):
            raise missing
        return _Target(rt, namespace, name, sub)

    def _type(self, api_version: str, kind: str) -> kr.ResourceType:
        for rt in self._types.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise ko.ApiError(
            404,
            "NotFound",
            f'the server could not find the requested resource (kind "{kind}" in {api_version})',
            {},
        )

    # -- verbs ---------------------------------------------------------------------
    def _handle(self, req: Request, t: _Target) -> Response:
        dry = "All" in req.query.get("dryRun", [])
        manager = req.arg("fieldManager") or (req.header("user-agent") or "unknown").split("/")[0]
        watch = req.arg("watch") in ("1", "true")
        verb = {
            "GET": ("watch" if watch else "list") if t.name is None else "get",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(req.method)
        if verb is None:
            raise ko.ApiError(
                405, "MethodNotAllowed", f"the server does not allow this method on {t.rt.plural}"
            )
        self._authorize(t, verb)
        if verb == "get":
            return Response(200, copy.deepcopy(self._existing(t)))
        if verb == "list":
            return Response(200, self._list(t, req))
        if verb == "watch":
            return _Stream(200, chunks=self._watch(t, req))
        if verb == "deletecollection":
            return Response(200, self._delete_collection(t, req, dry))
        if t.name is None and verb != "create":
            raise ko.ApiError(
                405, "MethodNotAllowed", f"the server does not allow this method on {t.rt.plural}"
            )
        body = self._body(req)
        if verb == "create":
            if t.name is not None or (t.rt.namespaced and t.namespace is None):
                raise ko.ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the object"
                )
            return Response(201, self._create(t.rt, t.namespace, body, manager, "Update", dry))
        if verb == "update":
            return Response(200, self._replace(t, body, manager, dry))
        if verb == "patch":
            return self._patch(t, req, body, manager, dry)
        return Response(200, self._delete(t, dry))

    def _access_review(self, body: Any) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview from the same RBAC model ``forbid`` feeds (stores nothing).

        Source: Kubernetes API reference, SelfSubjectAccessReview v1 (authorization.k8s.io/v1,
        ``create`` answers 201 with ``status.allowed`` and, when denied, ``status.reason``);
        https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/self-subject-access-review-v1/
        """
        attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        verb, resource, ns = attrs.get("verb"), attrs.get("resource"), attrs.get("namespace") or None
        with self.lock:
            denied = any(
                f_verb == verb and f_resource == resource and (f_ns is None or f_ns == ns)
                for f_verb, f_resource, f_ns in self._forbidden
            )
        status: dict[str, Any] = {"allowed": not denied}
        if denied:
            status["reason"] = f"RBAC: {_USER} may not {verb} {resource}" + (f" in {ns}" if ns else "")
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": (body or {}).get("spec") or {},
            "status": status,
        }

    def _authorize(self, t: _Target, verb: str) -> None:
        for f_verb, f_resource, f_ns in self._forbidden:
            if f_verb == verb and f_resource == t.rt.plural and (f_ns is None or f_ns == t.namespace):
                raise ko.forbidden(t.rt, verb, _USER, t.namespace, t.name)

    def _body(self, req: Request) -> Any:
        if not req.body:
            return None
        try:
            if "yaml" in (req.header("content-type") or ""):
                return yaml.safe_load(req.body)
            return json.loads(req.body)
        except (ValueError, yaml.YAMLError) as exc:
            raise ko.bad_request(f"error decoding request body: {exc}") from None

    def _existing(self, t: _Target, name: str | None = None) -> dict[str, Any]:
        obj = self._store.get(t.key(name))
        if obj is None:
            raise ko.not_found(t.rt, name or t.name or "")
        return obj

    def _list(self, t: _Target, req: Request) -> dict[str, Any]:
        items = [copy.deepcopy(o) for o in self._select(t, req)]
        if t.rt in kr.BUILTIN:
            # Built-in typed lists omit kind/apiVersion on items; custom resources keep them.
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {
            "kind": f"{t.rt.kind}List",
            "apiVersion": t.rt.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _select(self, t: _Target, req: Request) -> list[dict[str, Any]]:
        labels = ko.label_matcher(req.arg("labelSelector"))
        fields = ko.field_matcher(t.rt, req.arg("fieldSelector"))
        return [
            o
            for (g, p, ns, _n), o in sorted(self._store.items())
            if g == t.rt.group
            and p == t.rt.plural
            and (t.namespace is None or ns == t.namespace)
            and labels(o["metadata"].get("labels") or {})
            and fields(o)
        ]

    def _watch(self, t: _Target, req: Request) -> Iterator[bytes]:
        labels = ko.label_matcher(req.arg("labelSelector"))
        fields = ko.field_matcher(t.rt, req.arg("fieldSelector"))
        timeout = float(req.arg("timeoutSeconds") or 1800)
        since = req.arg("resourceVersion") or "0"
        with self.lock:
            cursor = self._rv
            if since == "0":
                initial = [copy.deepcopy(o) for o in self._select(t, req)]
            else:
                initial = []
                cursor = int(since)
                if self._events and cursor < self._events[0].rv - 1:
                    gone = ko.ApiError(410, "Expired", f"too old resource version: {since} ({self._rv})")
                    initial_error = json.dumps({"type": "ERROR", "object": gone.body()}).encode() + b"\n"
                    return iter([initial_error])

        def events() -> Iterator[bytes]:
            nonlocal cursor
            for obj in initial:
                yield json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
            deadline = threading.Event()
            timer = threading.Timer(timeout, deadline.set)
            timer.daemon = True
            timer.start()
            try:
                while not deadline.is_set() and not self._stopping.is_set():
                    with self._cond:
                        self._cond.wait_for(partial(self._newer_than, cursor), timeout=0.5)
                        batch = [e for e in self._events if e.rv > cursor]
                    for e in batch:
                        cursor = e.rv
                        g, p, ns, _n = e.key
                        if (g, p) != (t.rt.group, t.rt.plural) or (t.namespace and ns != t.namespace):
                            continue
                        if labels(e.obj["metadata"].get("labels") or {}) and fields(e.obj):
                            yield json.dumps({"type": e.type, "object": e.obj}).encode() + b"\n"
            finally:
                timer.cancel()

        return events()

    def _newer_than(self, cursor: int) -> bool:
        return self._rv > cursor or self._stopping.is_set()

    # -- writes ----------------------------------------------------------------------
    def _create(
        self,
        rt: kr.ResourceType,
        namespace: str | None,
        body: Any,
        manager: str,
        operation: str,
        dry: bool,
    ) -> dict[str, Any]:
        obj = self._checked_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise ko.invalid(rt, "", "metadata.name", "", "name or generateName is required")
        self._check_namespace(rt, namespace, meta)
        ko.check_name(rt, name)
        key = (rt.group, rt.plural, namespace or "", name)
        if key in self._store:
            raise ko.already_exists(rt, name)
        if rt.status_subresource:
            obj.pop("status", None)
        meta.pop("resourceVersion", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=ko.now())
        if rt.namespaced:
            meta["namespace"] = namespace
        if rt.generation:
            meta["generation"] = 1
        _normalize_secret(rt, obj)
        paths = kp.field_paths(obj)
        meta["managedFields"] = [_entry(manager, operation, rt.api_version, paths)]
        self._ips += 1
        ko.apply_defaults(rt, obj, f"10.96.{self._ips // 250}.{self._ips % 250 + 1}")
        if dry:
            return obj
        if rt.kind == "CustomResourceDefinition":
            for crt in kr.from_crd(obj):
                self._types[(crt.group, crt.version, crt.plural)] = crt
        return self._commit(key, obj, "ADDED")

    def _checked_body(self, rt: kr.ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ko.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        for field_name, expected in (("apiVersion", rt.api_version), ("kind", rt.kind)):
            sent = obj.setdefault(field_name, expected)
            if sent != expected:
                what = "API version" if field_name == "apiVersion" else "kind"
                raise ko.bad_request(
                    f"the {what} in the data ({sent}) does not match the expected {what} ({expected})"
                )
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise ko.bad_request("metadata must be an object")
        ko.check_decodable(rt, obj)
        return obj

    def _check_namespace(self, rt: kr.ResourceType, namespace: str | None, meta: dict[str, Any]) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") not in (None, "", namespace):
            raise ko.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if ("", "namespaces", "", namespace) not in self._store:
            raise ko.not_found(self._type("v1", "Namespace"), namespace or "")

    def _replace(self, t: _Target, body: Any, manager: str, dry: bool) -> dict[str, Any]:
        old = self._existing(t)
        new = self._checked_body(t.rt, body)
        meta = new["metadata"]
        if meta.get("name") not in (None, t.name):
            raise ko.bad_request("the name of the object does not match the name on the URL")
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ko.conflict(
                t.rt,
                t.name or "",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        return self._update(t, old, new, manager, dry)

    def _patch(self, t: _Target, req: Request, body: Any, manager: str, dry: bool) -> Response:
        ctype = (req.header("content-type") or "").split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            if not req.arg("fieldManager"):
                raise ko.bad_request("PATCH, fieldManager is required for apply requests")
            return self._apply(t, body, manager, (req.arg("force") or "").lower() in ("true", "1", "t"), dry)
        custom = t.rt.returns_object_on_delete and t.rt.generation
        accepted = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        if not custom:
            accepted.insert(2, "application/strategic-merge-patch+json")
        if ctype not in accepted:
            raise ko.ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted),
            )
        old = self._existing(t)
        try:
            if ctype == "application/json-patch+json":
                new = kp.json_patch(old, body)
            elif ctype == "application/merge-patch+json":
                new = kp.merge_patch(old, body)
            else:
                new = kp.strategic_merge(old, body)
        except kp.PatchError as exc:
            raise ko.ApiError(422, "Invalid", str(exc)) from None
        sent_rv = (body or {}).get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ko.conflict(
                t.rt,
                t.name or "",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = self._checked_body(t.rt, new)
        return Response(200, self._update(t, old, new, manager, dry))

    def _apply(self, t: _Target, body: Any, manager: str, force: bool, dry: bool) -> Response:
        applied = self._checked_body(t.rt, body)
        if applied["metadata"].get("name") != t.name:
            raise ko.bad_request("the name of the object does not match the name on the URL")
        _normalize_secret(t.rt, applied)
        old = self._store.get(t.key())
        if old is None:
            if t.sub:
                raise ko.not_found(t.rt, t.name or "")
            return Response(201, self._create(t.rt, t.namespace, applied, manager, "Apply", dry))
        ko.check_decodable(t.rt, applied)
        status_op = t.sub == "status"
        paths = kp.field_paths(applied, with_status=status_op)
        managed = _managed_sets(old)
        mine = (manager, "Apply", t.sub or "")
        new = copy.deepcopy(old)
        conflicts = []
        merged = _deep_merge(old, applied)
        for other, owned in managed.items():
            if other[0] == manager:
                continue
            clash = {q for q in owned if any(_overlap(p, q) for p in paths) and _changes(old, merged, q)}
            if clash and not force:
                conflicts += [(other[0], q) for q in sorted(clash)]
            owned -= clash
        if conflicts:
            raise _apply_conflict(t.rt, t.name or "", conflicts)
        others = set().union(*(o for k, o in managed.items() if k != mine)) if managed else set()
        kept = paths | others
        for gone in managed.get(mine, set()) - kept:
            # A map this manager once applied empty (``data: {}``) and that now holds fields
            # (its own or another manager's) is their parent, not a field to remove.
            if not any(k[: len(gone)] == gone for k in kept):
                kp.remove_path(new, gone)
        new = _deep_merge(new, applied)
        managed[mine] = paths
        return Response(200, self._update(t, old, new, manager, dry, managed))

    def _update(
        self,
        t: _Target,
        old: dict[str, Any],
        new: dict[str, Any],
        manager: str,
        dry: bool,
        managed: dict[tuple[str, str, str], set[kp.Path]] | None = None,
    ) -> dict[str, Any]:
        rt = t.rt
        meta = new.setdefault("metadata", {})
        for server_field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
        ):
            if server_field in old["metadata"]:
                meta[server_field] = old["metadata"][server_field]
            else:
                meta.pop(server_field, None)
        _normalize_secret(rt, new)
        ko.apply_defaults(rt, new, old.get("spec", {}).get("clusterIP", "") if rt.kind == "Service" else "")
        if t.sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new["status"] = status
            meta = new["metadata"]
        elif rt.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        if managed is None:
            managed = _managed_sets(old)
            changed = {
                p
                for p in kp.field_paths(new, t.sub == "status")
                if kp.get_path(old, p) != kp.get_path(new, p)
            }
            for owned in managed.values():
                owned -= changed
            mine = (manager, "Update", t.sub or "")
            managed[mine] = managed.get(mine, set()) | changed
        managed = {k: {p for p in v if kp.get_path(new, p) is not kp.MISSING} for k, v in managed.items()}
        managed = {k: v for k, v in managed.items() if v}
        if rt.generation and _spec(old) != _spec(new):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        same_data = _without_managed(old) == _without_managed(new)
        if same_data and managed == _managed_sets(old):
            return copy.deepcopy(old)
        meta["managedFields"] = _merge_entries(old, managed, rt.api_version)
        if dry:
            return new
        if rt.kind == "CustomResourceDefinition":
            for crt in kr.from_crd(new):
                self._types[(crt.group, crt.version, crt.plural)] = crt
        return self._commit(t.key(), new, "MODIFIED")

    def _delete(self, t: _Target, dry: bool) -> dict[str, Any]:
        obj = copy.deepcopy(self._existing(t))
        rt = t.rt
        if obj["metadata"].get("finalizers") and rt.kind not in ("Namespace", "CustomResourceDefinition"):
            # kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/: an object with
            # finalizers is only marked (deletionTimestamp) and goes once its finalizers are removed.
            if dry or obj["metadata"].get("deletionTimestamp"):
                return obj
            obj["metadata"]["deletionTimestamp"] = ko.now()
            return self._commit(t.key(), obj, "MODIFIED")
        if dry:
            return obj if rt.returns_object_on_delete else _success(rt, obj)
        if rt.kind == "Namespace":
            for key in [k for k in self._store if k[2] == t.name]:
                self._remove(key)
            obj["metadata"]["deletionTimestamp"] = ko.now()
            obj["status"] = {"phase": "Terminating"}
        if rt.kind == "CustomResourceDefinition":
            for crt in kr.from_crd(obj):
                self._types.pop((crt.group, crt.version, crt.plural), None)
                for key in [k for k in self._store if k[:2] == (crt.group, crt.plural)]:
                    self._remove(key)
        self._remove(t.key())
        return obj if rt.returns_object_on_delete or rt.kind == "Namespace" else _success(rt, obj)

    def _delete_collection(self, t: _Target, req: Request, dry: bool) -> dict[str, Any]:
        doomed = [copy.deepcopy(o) for o in self._select(t, req)]
        if not dry:
            for obj in doomed:
                self._remove(t.key(obj["metadata"]["name"]) if t.namespace else _key_of(t.rt, obj))
        return {"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version, "metadata": {}, "items": doomed}

    # -- storage, events, controllers ---------------------------------------------------
    def _commit(self, key: Key, obj: dict[str, Any], event: str) -> dict[str, Any]:
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            self._remove(key)
            return copy.deepcopy(obj)
        if kube_argocd.deleting(obj):
            self._schedule_call(partial(kube_argocd.cascade, self, key), self.ready_delay)
        old_generation = (self._store.get(key) or {}).get("metadata", {}).get("generation")
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._store[key] = obj
        self._record_event(key, event, obj)
        kube_tokens.on_commit(self, key, obj, self.ca_bundle)
        if (
            key[0] == "apps"
            and obj["kind"] in _WORKLOADS
            and obj["metadata"].get("generation") != old_generation
        ):
            self._schedule(key, self.ready_delay)
        return copy.deepcopy(obj)

    def stored(self, key: Key) -> dict[str, Any] | None:
        """The stored object (no copy; callers hold ``lock``): for the stand-in controllers."""
        return self._store.get(key)

    def stored_keys(self) -> list[Key]:
        return list(self._store)

    def delete_stored(self, key: Key) -> None:
        """Delete as a DELETE request would (finalizers honoured); callers hold ``lock``."""
        rt = next(t for t in self._types.values() if (t.group, t.plural) == key[:2])
        self._delete(_Target(rt, key[2] or None, key[3], None), dry=False)

    def commit_stored(self, key: Key, obj: dict[str, Any]) -> None:
        """Store a changed object as the controller's own update would; callers hold ``lock``."""
        self._commit(key, obj, "MODIFIED")

    def schedule(self, call: Any, delay: float) -> None:
        self._schedule_call(call, delay)

    def _remove(self, key: Key) -> None:
        obj = self._store.pop(key, None)
        if obj is None:
            return
        self._rv += 1
        self._record_event(
            key, "DELETED", obj | {"metadata": obj["metadata"] | {"resourceVersion": str(self._rv)}}
        )
        kube_tokens.on_delete(self, key, obj)

    def _record_event(self, key: Key, event: str, obj: dict[str, Any]) -> None:
        self._local.write = True
        self._events.append(_Event(self._rv, event, key, copy.deepcopy(obj)))
        del self._events[:-_EVENT_HISTORY]
        self._cond.notify_all()

    def _schedule(self, key: Key, delay: float) -> None:
        self._schedule_call(partial(self._reconcile, key), delay)

    def _schedule_call(self, call: Any, delay: float) -> None:
        timer = threading.Timer(delay, call)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _reconcile(self, key: Key) -> None:
        with self.lock:
            obj = self._store.get(key)
            if obj is None or self._stopping.is_set():
                return
            held = (key[2], obj["kind"], key[3]) in self._held
            status = ko.workload_status(obj, available=not held)
            if _stable(obj.get("status")) == _stable(status):
                return
            new = copy.deepcopy(obj)
            new["status"] = status
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._store[key] = new
            self._events.append(_Event(self._rv, "MODIFIED", key, copy.deepcopy(new)))
            self._cond.notify_all()


# -- helpers ---------------------------------------------------------------------------
def _normalize_secret(rt: kr.ResourceType, obj: dict[str, Any]) -> None:
    """stringData is write-only: the server folds it into base64 ``data`` before anything else."""
    if rt.kind == "Secret":
        ko.fold_string_data(obj)


def _key_of(rt: kr.ResourceType, obj: dict[str, Any]) -> Key:
    return (rt.group, rt.plural, obj["metadata"].get("namespace") or "", obj["metadata"]["name"])


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out["metadata"] = {
        k: v for k, v in obj["metadata"].items() if k not in ("managedFields", "resourceVersion")
    }
    return out


def _stable(status: Any) -> Any:
    """A workload status without timestamps, to tell a real change from a re-stamp."""
    if not isinstance(status, dict):
        return status
    conds = [{k: v for k, v in c.items() if not k.endswith("Time")} for c in status.get("conditions", [])]
    return status | {"conditions": conds}


def _overlap(a: kp.Path, b: kp.Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _changes(old: dict[str, Any], merged: dict[str, Any], path: kp.Path) -> bool:
    """Whether an apply changes the field at ``path`` (what a conflict is about).

    Server-side apply merges maps entry by entry: applying ``data: {"b": …}`` or
    ``data: {}`` leaves ``data.a`` alone, and a map as such changes only if it stops
    being a map. So another manager's field conflicts only when its own value changes
    (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts:
    "a conflict is a special status error that occurs when an Apply operation tries
    to change a field that another manager also claims to manage").
    """
    before, after = kp.get_path(old, path), kp.get_path(merged, path)
    if isinstance(before, dict) and isinstance(after, dict):
        return False
    return bool(before != after)


def _deep_merge(base: Any, applied: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(applied, dict):
        return copy.deepcopy(applied)
    out = dict(base)
    for key, value in applied.items():
        out[key] = _deep_merge(base.get(key), value)
    return out


def _managed_sets(obj: dict[str, Any]) -> dict[tuple[str, str, str], set[kp.Path]]:
    out: dict[tuple[str, str, str], set[kp.Path]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        key = (entry.get("manager", ""), entry.get("operation", "Update"), entry.get("subresource", ""))
        out[key] = kp.from_fields_v1(entry.get("fieldsV1") or {})
    return out


def _entry(
    manager: str, operation: str, api_version: str, paths: set[kp.Path], sub: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": ko.now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": kp.to_fields_v1(paths),
    }
    if sub:
        entry["subresource"] = sub
    return entry


def _merge_entries(
    old: dict[str, Any], managed: dict[tuple[str, str, str], set[kp.Path]], api_version: str
) -> list[dict[str, Any]]:
    """Keep unchanged entries as they were (their ``time`` too); re-stamp only the ones that changed."""
    previous = {
        (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", "")): e
        for e in old["metadata"].get("managedFields") or []
    }
    before = _managed_sets(old)
    out = []
    for key, paths in managed.items():
        if key in previous and before.get(key) == paths:
            out.append(previous[key])
        else:
            out.append(_entry(key[0], key[1], api_version, paths, key[2]))
    return out


def _success(rt: kr.ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {
        "name": obj["metadata"]["name"],
        "kind": rt.plural,
        "uid": obj["metadata"]["uid"],
    }
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _apply_conflict(rt: kr.ResourceType, name: str, conflicts: list[tuple[str, kp.Path]]) -> ko.ApiError:
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": "." + ".".join(p)}
        for m, p in conflicts
    ]
    listing = "\n".join(f'- conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
    message = f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}:\n{listing}"
    details: dict[str, Any] = {"name": name, "kind": rt.plural, "causes": causes}
    if rt.group:
        details["group"] = rt.group
    return ko.ApiError(409, "Conflict", message, details)
