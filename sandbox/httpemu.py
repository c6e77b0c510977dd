"""A small threaded HTTP server that the service emulators are built on.

It exists so that every emulator gets the same three things for free:
real HTTP on loopback (so the vendor SDKs run unpatched), a call log that
tests assert on ("0 writes on re-run"), and fault injection (latency, 429 with
Retry-After, 5xx, connection resets, "fail the Nth call", a hook after the
Nth write) that is identical across GitHub, Slack and OpsGenie.

Faults can be set in-process (``server.faults.add(...)``) or over HTTP through
``/_emulator/faults`` so that a sandbox running in another process can be
driven by a benchmark or a test harness.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Request:
    """One parsed request, as a handler sees it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Form-encoded body (Slack sends this) or JSON, flattened to strings."""
        ctype = self.headers.get("content-type", "")
        if "json" in ctype:
            data = self.json() or {}
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        parsed = urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)
        merged = {k: v[-1] for k, v in parsed.items()}
        for k, v in self.query.items():
            merged.setdefault(k, v[-1])
        return merged

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Call:
    """One entry of the call log."""

    method: str
    path: str
    status: int
    at: float
    write: bool


FaultKind = Literal["latency", "status", "ratelimit", "reset", "timeout"]


@dataclass
class Fault:
    """A rule that alters responses.

    ``nth`` counts matching calls from 1 and fires on that call only;
    ``times`` fires on the first N matching calls; neither → every matching call.
    """

    kind: FaultKind
    method: str | None = None
    path: str | None = None  # regex, searched in the path
    nth: int | None = None
    times: int | None = None
    status: int = 500
    retry_after: int = 1
    seconds: float = 0.0
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return not (self.path and not re.search(self.path, path))

    def should_fire(self) -> bool:
        self.seen += 1
        if self.nth is not None:
            hit = self.seen == self.nth
        elif self.times is not None:
            hit = self.fired < self.times
        else:
            hit = True
        if hit:
            self.fired += 1
        return hit


class Faults:
    """The fault table of one emulator; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Fault] = []
        self.latency = 0.0
        self.after_write: Callable[[int], None] | None = None

    def add(self, rule: Fault) -> Fault:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.latency = 0.0

    def pick(self, method: str, path: str) -> list[Fault]:
        with self._lock:
            return [r for r in self.rules if r.matches(method, path) and r.should_fire()]


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def record(self, call: Call) -> int:
        with self._lock:
            self.calls.append(call)
            return sum(1 for c in self.calls if c.write and c.status < 400)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    @property
    def writes(self) -> list[Call]:
        """Successful state-changing calls (what "0 writes on re-run" counts)."""
        with self._lock:
            return [c for c in self.calls if c.write and c.status < 400]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for c in self.calls
                if (method is None or c.method == method) and (path is None or re.search(path, c.path))
            )


class EmulatorServer:
    """Routes + faults + call log on a ThreadingHTTPServer bound to loopback."""

    name = "emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults = Faults()
        self.log = CallLog()
        self.lock = threading.RLock()  # guards emulator state across handler threads
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routing -------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register ``pattern`` (``{name}`` matches one path segment, ``{name:path}`` the rest)."""
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        compiled = re.compile("^" + regex + "/?$")

        def deco(fn: Handler) -> Handler:
            self.routes.append((method, compiled, fn))
            return fn

        return deco

    def is_write(self, method: str, path: str) -> bool:
        """Whether a call changes state; Slack-like RPC emulators override this."""
        return method not in READ_METHODS

    def authenticate(self, req: Request) -> Response | None:
        """Return an error response for a bad credential, or None; emulators override."""
        return None

    def dispatch(self, req: Request) -> Response:
        path_only = req.path
        allowed = False
        for method, regex, fn in self.routes:
            m = regex.match(path_only)
            if not m:
                continue
            allowed = True
            if method != req.method:
                continue
            req.params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            denied = self.authenticate(req)
            if denied is not None:
                return denied
            with self.lock:
                return fn(req)
        if allowed:
            return Response(405, {"message": "Method Not Allowed"})
        return self.not_found(req)

    def not_found(self, req: Request) -> Response:
        return Response(404, {"message": "Not Found"})

    def rate_limited(self, rule: Fault) -> Response:
        return Response(429, {"message": "rate limited"}, {"Retry-After": str(rule.retry_after)})

    def server_error(self, rule: Fault) -> Response:
        return Response(rule.status, {"message": f"injected {rule.status}"})

    # -- control -------------------------------------------------------------
    def control(self, req: Request) -> Response:
        sub = req.path[len("/_emulator/") :]
        if sub == "calls" and req.method == "GET":
            return Response(
                200,
                {
                    "calls": [c.__dict__ for c in self.log.calls],
                    "writes": len(self.log.writes),
                },
            )
        if sub == "calls" and req.method == "DELETE":
            self.log.clear()
            return Response(204)
        if sub == "faults" and req.method == "POST":
            data = req.json() or {}
            if "latency" in data:
                self.faults.latency = float(data["latency"])
            for rule in data.get("rules", []):
                self.faults.add(Fault(**rule))
            return Response(204)
        if sub == "faults" and req.method == "DELETE":
            self.faults.clear()
            return Response(204)
        return Response(404, {"message": "unknown control endpoint"})

    # -- lifecycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, keep-alive clients
            # stall ~40 ms per request on the delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
            do_LIST = _handle  # Vault's list verb, for the forwarding proxy in front of OpenBao

        self._httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval: shutdown() waits up to one interval, i.e. per test teardown.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the request path ----------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(
            method=h.command,
            path=parsed.path,
            params={},
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        if req.path.startswith("/_emulator/"):
            self._send(h, self.control(req))
            return
        if self.faults.latency:
            time.sleep(self.faults.latency)
        resp: Response | None = None
        for rule in self.faults.pick(req.method, req.path):
            if rule.kind == "latency":
                time.sleep(rule.seconds)
            elif rule.kind == "timeout":
                time.sleep(rule.seconds or 30)
            elif rule.kind == "reset":
                self._record(req, 0)
                self._reset(h)
                return
            elif rule.kind == "ratelimit" and resp is None:
                resp = self.rate_limited(rule)
            elif rule.kind == "status" and resp is None:
                resp = self.server_error(rule)
        if resp is None:
            try:
                resp = self.dispatch(req)
            except Exception as exc:  # an emulator bug must surface as a 500, not a hang
                resp = Response(500, {"message": f"emulator error: {exc!r}"})
        writes = self._record(req, resp.status)
        self._send(h, resp)
        if self.is_write(req.method, req.path) and resp.status < 400 and self.faults.after_write:
            self.faults.after_write(writes)

    def _record(self, req: Request, status: int) -> int:
        return self.log.record(
            Call(req.method, req.path, status, time.time(), self.is_write(req.method, req.path))
        )

    def _send(self, h: BaseHTTPRequestHandler, resp: Response) -> None:
        if resp.raw is not None:
            payload = resp.raw
        elif resp.body is None:
            payload = b""
        else:
            payload = json.dumps(resp.body).encode()
        h.send_response(resp.status)
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if payload and "content-type" not in headers:
            h.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in resp.headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if payload and h.command != "HEAD":
            h.wfile.write(payload)

    @staticmethod
    def _reset(h: BaseHTTPRequestHandler) -> None:
        """Close with RST (SO_LINGER 0) so the client sees a connection reset."""
        sock: socket.socket = h.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        sock.close()
