"""The manifest flow's wait tells a person how long is left and how to reach it from a remote shell."""

from __future__ import annotations

import threading

import pytest

from bootstrap.clients.github_manifest import ManifestFlow, remote_hint


def test_the_wait_counts_down_and_gives_up_at_the_deadline() -> None:
    left: list[float] = []
    with (
        ManifestFlow("http://127.0.0.1:9", "kuvaq", {"name": "argocd-kuvaq"}) as flow,
        pytest.raises(TimeoutError),
    ):
        flow.wait(1.2, threading.Event(), remaining=left.append, every=0.3)
    assert left, "no countdown was reported"
    assert left == sorted(left, reverse=True) and all(0 < s < 1.2 for s in left)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DISPLAY": ":0"}, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, None),
        ({"SSH_CONNECTION": "10.0.0.5 51234 10.0.0.9 22"}, "ssh -L 8123:127.0.0.1:8123 10.0.0.9"),
        ({"DISPLAY": "localhost:10.0", "SSH_CONNECTION": "a 1 b 22"}, "ssh -L 8123:127.0.0.1:8123 b"),
        ({}, "ssh -L 8123:127.0.0.1:8123 THIS-HOST"),
    ],
)
def test_remote_shells_get_the_port_forwarding_command(environ: dict[str, str], expected: str | None) -> None:
    hint = remote_hint("http://127.0.0.1:8123/", environ)
    if expected is None:
        assert hint is None
    else:
        assert hint is not None and expected in hint and "http://127.0.0.1:8123/" in hint
