"""The real Alertmanager delivers a posted alert to a webhook; amtool rejects a broken config."""

from __future__ import annotations

import json
import queue
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox import processes
from tests.fixtures.alertmanager import AlertmanagerFactory

CONFIG = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: false
"""


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A loopback HTTP server that queues every JSON body POSTed to it."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_posted_alert_reaches_the_webhook(
    alertmanager_factory: AlertmanagerFactory, webhook: tuple[str, queue.Queue[dict[str, Any]]]
) -> None:
    url, received = webhook
    am = alertmanager_factory.start(CONFIG.format(url=url))
    alert = [
        {"labels": {"alertname": "BootstrapProbe", "customer": "kuvaq"}, "annotations": {"summary": "hi"}}
    ]
    request = urllib.request.Request(
        f"{am.url}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    # A bound on waiting, not a timing assertion: delivery takes ~20 ms here.
    delivered = received.get(timeout=120)
    assert delivered["receiver"] == "hook"
    assert delivered["status"] == "firing"
    assert [a["labels"]["alertname"] for a in delivered["alerts"]] == ["BootstrapProbe"]
    assert delivered["commonLabels"]["customer"] == "kuvaq"


def test_amtool_rejects_an_unknown_receiver(amtool_check: Callable[[str], None]) -> None:
    broken = CONFIG.format(url="http://127.0.0.1:9/hook").replace("receiver: hook", "receiver: nowhere")
    with pytest.raises(processes.ProcessError, match=r"amtool rejected .*\n.*nowhere"):
        amtool_check(broken)


def test_factory_checks_before_starting(alertmanager_factory: AlertmanagerFactory) -> None:
    with pytest.raises(processes.ProcessError, match="amtool rejected"):
        alertmanager_factory.start("route: [not, a, mapping]\n")


def test_amtool_accepts_the_valid_config(amtool_check: Callable[[str], None]) -> None:
    amtool_check(CONFIG.format(url="http://127.0.0.1:9/hook"))


def test_stop_ends_the_server(alertmanager_factory: AlertmanagerFactory) -> None:
    am = alertmanager_factory.start(CONFIG.format(url="http://127.0.0.1:9/hook"))
    assert am.alive()
    am.stop()
    assert not am.alive()
    am.stop()
