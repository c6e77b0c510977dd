"""The guard between ansible-runner and ansible-playbook: nothing it started outlives the tool.

A stand-in "playbook" (a shell) starts one child in its session and one in a new
session (as ansible's workers do with ``setsid``). Killing the tool outright
(SIGKILL, no cleanup) or stopping the guard (SIGTERM, what Ctrl-C does) must
end every one of them. Waits are bounded generously; nothing is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.clients import playbook_guard

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

PLAYBOOK = "sleep 300 & setsid sleep 300 & wait"
BOUND = 120.0  # seconds; milliseconds are enough, a starved machine is slow

TOOL = textwrap.dedent(
    """
    import os, subprocess, sys, time
    script = (
        "import sys\\n"
        "from bootstrap.clients import playbook_guard\\n"
        f"sys.exit(playbook_guard.main('/bin/sh', {os.getpid()}, {sys.argv[1]!r}))\\n"
    )
    subprocess.Popen([sys.executable, "-c", script, "-c", sys.argv[2]], start_new_session=True)
    time.sleep(600)
    """
)


def _until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, list[int]]:
    """The tool, its guard's pid, and the guard's tree once the stand-in playbook runs."""
    pid_file = tmp_path / "guard.pid"
    tool = subprocess.Popen([sys.executable, "-c", TOOL, str(pid_file), PLAYBOOK])
    _until("the guard started", lambda: pid_file.exists() and pid_file.read_text() != "")
    guard = int(pid_file.read_text())
    # the shell, its two sleeps (one in its own session)
    _until("the playbook started", lambda: len(playbook_guard.descendants(guard)) >= 3)
    return tool, guard, [guard, *playbook_guard.descendants(guard)]


def test_killing_the_tool_kills_everything_the_playbook_started(tmp_path: Path) -> None:
    tool, _guard, tree = _start(tmp_path)
    tool.kill()  # SIGKILL: the tool runs no cleanup at all
    tool.wait()
    _until(f"every process of {tree} is gone", lambda: not any(_alive(p) for p in tree))


def test_stopping_the_guard_kills_its_whole_tree(tmp_path: Path) -> None:
    tool, guard, tree = _start(tmp_path)
    try:
        os.kill(guard, signal.SIGTERM)
        _until(f"every process of {tree} is gone", lambda: not any(_alive(p) for p in tree))
    finally:
        tool.kill()
        tool.wait()
