"""A forwarding proxy that gives a real server (OpenBao) what the emulators have.

OpenBao runs for real in the tests, so nothing in it counts our calls or can be
told to fail the third write. Putting this proxy between the tool and the
server gives it the emulators' call log, fault injection and ``after_write``
hook unchanged (it is an ``EmulatorServer`` whose routing is "forward
everything"), which is what lets the crash harness kill a run right after its
k-th Vault write and the fault tests answer 429/5xx/resets on Vault calls.

Requests are forwarded whole (no streaming: Vault bodies are small); faults
are answered in Vault's own error shape (``{"errors": [...]}``) so hvac maps
them exactly as it maps the real ones.
"""

from __future__ import annotations

import threading
import urllib.parse

import requests

from sandbox.httpemu import EmulatorServer, Fault, Request, Response

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",  # requests has already decoded the body
    }
)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "LIST"})
"""Vault lists with the non-standard LIST verb; it reads."""
UPSTREAM_TIMEOUT = 30.0


class ForwardingProxy(EmulatorServer):
    """Forwards every request to ``upstream``; call log, faults and ``after_write`` as any emulator."""

    name = "proxy"

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.upstream = upstream.rstrip("/")
        self._local = threading.local()

    def is_write(self, method: str, path: str) -> bool:
        # A login changes nothing the tool owns; counting it would make "0 writes on re-run" false.
        # Neither does sys/capabilities-self: a POST that only asks the policy engine (Vault API docs,
        # https://developer.hashicorp.com/vault/api-docs/system/capabilities-self).
        path = path.rstrip("/")
        return method not in READ_METHODS and not path.endswith(("/login", "/sys/capabilities-self"))

    def dispatch(self, req: Request) -> Response:
        query = urllib.parse.urlencode(req.query, doseq=True)
        url = f"{self.upstream}{req.path}" + (f"?{query}" if query else "")
        headers = {k: v for k, v in req.headers.items() if k not in _HOP_BY_HOP}
        try:
            answer = self._session().request(
                req.method, url, headers=headers, data=req.body or None, timeout=UPSTREAM_TIMEOUT
            )
        except requests.RequestException as exc:
            return Response(
                502, {"errors": [f"proxy: upstream {self.upstream} failed: {type(exc).__name__}"]}
            )
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(answer.status_code, headers=out_headers, raw=answer.content)

    def rate_limited(self, rule: Fault) -> Response:
        return Response(429, {"errors": ["injected rate limit"]}, {"Retry-After": str(rule.retry_after)})

    def server_error(self, rule: Fault) -> Response:
        return Response(rule.status, {"errors": [f"injected {rule.status}"]})

    def _session(self) -> requests.Session:
        # One keep-alive session per handler thread: requests.Session is not thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
