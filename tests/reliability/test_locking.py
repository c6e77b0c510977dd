"""One run per customer at a time: a second exits 5 naming the holder; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from tests.fixtures.world import World
from tests.reliability import harness

FAST = ("run", "customer.yaml", "--only", "argocd-dir")
HOLDER = ".bootstrap/state.lock.json"


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_second_run_is_refused_naming_the_holder(world: World) -> None:
    # Keeps the first run inside its lock for many seconds, so a second CLI start (slow on a busy
    # machine) surely meets it; lifted once the second run has answered.
    world.github.faults.latency = 3.0
    first = subprocess.Popen(
        [sys.executable, "-m", "bootstrap", *FAST],
        cwd=world.dir,
        env=world.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        holder = world.dir / HOLDER
        deadline = time.monotonic() + 60
        while not holder.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.exists(), "the first run never took the lock"
        second = harness.run_cli(world, *FAST)
        assert second.returncode == 5, second.describe()
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr, second.stderr
        assert "--break-lock" in second.stderr
    finally:
        world.github.faults.latency = 0.0
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err


def test_a_stale_lock_is_taken_over_with_a_notice(world: World) -> None:
    holder = world.dir / HOLDER
    holder.parent.mkdir(mode=0o700, exist_ok=True)
    pid = _dead_pid()
    holder.write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"})
    )
    run = harness.run_cli(world, *FAST)
    assert run.returncode == 0, run.describe()
    assert f"took over a stale lock left by pid {pid}" in run.stderr, run.stderr
    assert not holder.exists()  # released when the run ended
