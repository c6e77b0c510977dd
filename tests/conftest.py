"""Shared test setup: backend fixtures and the network tripwire.

The tripwire makes any connection to a non-loopback address fail the test, so
a test can never reach a real GitHub/Slack/OpsGenie by accident.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = [
    "tests.fixtures.github",
    "tests.fixtures.slack",
    "tests.fixtures.opsgenie",
    "tests.fixtures.jsm",
    "tests.fixtures.kube",
    "tests.fixtures.vault",
    "tests.fixtures.alertmanager",
    "tests.fixtures.world",
]

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        if not ip.is_loopback:
            raise RuntimeError(f"network tripwire: test tried to connect to {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def network_tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
    yield
