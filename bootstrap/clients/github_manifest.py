"""The local end of GitHub's App manifest flow (REFERENCE.md §2).

There is no API to create a GitHub App: a person's browser must post the
manifest to GitHub, which redirects back with a one-shot code. This module
runs that exchange safely:

* the listener binds to 127.0.0.1 only, on a random port, and lives only
  while the step waits for the code;
* ``GET /`` serves a page that auto-posts the manifest form to GitHub with a
  random ``state``; ``GET /callback`` accepts a code only with that state
  (constant-time compare). A wrong or missing state gets 400 and the listener
  keeps waiting, so a stray or forged request cannot end the flow;
* waiting is bounded: ``wait`` raises ``TimeoutError`` when nobody came back.
"""

from __future__ import annotations

import hmac
import html
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from bootstrap.errors import Interrupted

COUNTDOWN_EVERY = 10.0
"""Seconds between two "time left" reports while waiting for the browser."""


def remote_hint(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """How to reach the loopback listener from a remote shell, or None on a local display.

    The listener binds to 127.0.0.1 only (nothing else may post a code to it), so a person
    working over SSH must forward its port to the machine where their browser runs.
    """
    env = os.environ if environ is None else environ
    local_display = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and not env.get("SSH_CONNECTION")
    if local_display or (sys.platform == "darwin" and not env.get("SSH_CONNECTION")):
        return None
    port = urllib.parse.urlsplit(url).port
    host = env.get("SSH_CONNECTION", "").split(" ")[2:3] or ["THIS-HOST"]
    return (
        f"no local display: forward the port from the machine with your browser, "
        f"`ssh -L {port}:127.0.0.1:{port} {host[0]}`, then open http://127.0.0.1:{port}/ there"
    )


def web_url(api_url: str) -> str:
    """GitHub's web base for an API base: api.github.com → github.com, GHES /api/v3 → its host.

    Anything else (an emulator) serves the form endpoint itself.
    """
    parsed = urllib.parse.urlsplit(api_url.rstrip("/"))
    host, path = parsed.netloc, parsed.path
    if host.startswith("api."):
        host = host[len("api.") :]
    path = path.removesuffix("/api/v3")
    return urllib.parse.urlunsplit((parsed.scheme, host, path, "", "")).rstrip("/")


class ManifestFlow:
    """Serve the manifest form and catch the redirect; use as a context manager."""

    def __init__(self, web: str, org: str, manifest: Mapping[str, Any]) -> None:
        # Imported only when a flow is served: the steps (and so status/validate) import this module.
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.state = secrets.token_urlsafe(24)
        self._code: str | None = None
        self._got = threading.Event()
        flow = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/":
                    self._send(200, flow._page())
                elif url.path == "/callback":
                    query = urllib.parse.parse_qs(url.query)
                    state, code = query.get("state", [""])[0], query.get("code", [""])[0]
                    if not code or not hmac.compare_digest(state.encode(), flow.state.encode()):
                        self._send(
                            400,
                            "<p>This request does not belong to the running bootstrap (state mismatch).</p>",
                        )
                        return
                    flow._code = code
                    flow._got.set()
                    self._send(
                        200, "<p>GitHub App created. You can close this tab and return to the terminal.</p>"
                    )
                else:
                    self._send(404, "<p>Not found.</p>")

            def _send(self, status: int, body: str) -> None:
                data = f"<!doctype html><html><body>{body}</body></html>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the code in the query string has no business in a log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.manifest = {**manifest, "redirect_url": f"http://127.0.0.1:{port}/callback"}
        query = urllib.parse.urlencode({"state": self.state})
        self.action = f"{web}/organizations/{urllib.parse.quote(org)}/settings/apps/new?{query}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="manifest-flow", daemon=True)

    def __enter__(self) -> ManifestFlow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(
        self,
        timeout: float,
        cancelled: threading.Event | None = None,
        remaining: Callable[[float], None] | None = None,
        every: float = COUNTDOWN_EVERY,
    ) -> str:
        """The code GitHub sent back; ``TimeoutError`` after ``timeout`` seconds.

        ``cancelled`` (the run's Ctrl-C) ends the wait within a fraction of a second with
        ``Interrupted``: a step thread blocked here would otherwise hold the process for the
        whole timeout after the person pressed Ctrl-C. ``remaining`` hears the seconds left
        every ``every`` seconds, so a person at the terminal sees the deadline come.
        """
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + every
        while not self._got.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if cancelled is not None and cancelled.is_set():
                raise Interrupted("stopped waiting for the GitHub App creation: the run is interrupted")
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            if remaining is not None and now >= next_tick:
                remaining(deadline - now)
                next_tick = now + every
        assert self._code is not None
        return self._code

    def _page(self) -> str:
        return (
            f'<form id="manifest" method="post" action="{html.escape(self.action)}">'
            f'<input type="hidden" name="manifest" value="{html.escape(json.dumps(self.manifest))}">'
            "<p>Creating the GitHub App for Argo CD and Grafana sign-in…</p>"
            '<button type="submit">Create the GitHub App</button></form>'
            '<script>document.getElementById("manifest").submit()</script>'
        )
