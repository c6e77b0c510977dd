"""Shared test setup: backend fixtures, the network tripwire and the reliability figures line.

The tripwire makes any connection to a non-loopback address fail the test, so
a test can never reach a real GitHub/Slack/OpsGenie by accident.

The figures hooks live here, not in tests/reliability/: under pytest-xdist the controller
process collects nothing, so only this conftest (loaded at start-up) runs there to add up
what each worker process counted and print one line.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.figures import FIGURES, print_summary

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


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker: hand this process's figures to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["reliability_figures"] = FIGURES.counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the xdist controller: add up a finished worker's figures."""
    counts = getattr(node, "workeroutput", {}).get("reliability_figures")
    if counts:
        FIGURES.absorb(counts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_summary(terminalreporter)
