"""The process that stands between ansible-runner and ansible-playbook, so a playbook dies with the tool.

Why it exists: ansible-runner starts its command through pexpect, i.e. in a new
session with SIGHUP ignored, and ansible-playbook's workers each call
``setsid`` again. Killing the process group of ``bootstrap`` (a CI timeout, a
terminal closing) therefore reached none of them, and a playbook went on
writing to the cluster after the run was gone. The guard fixes that from the
inside of the tree, without changing how ansible-runner launches it:

* it asks the kernel for a **parent-death signal** (``PR_SET_PDEATHSIG``), so
  it is told when the bootstrap process dies, however it dies (SIGKILL too);
* it is a **child subreaper** (``PR_SET_CHILD_SUBREAPER``): every process
  ansible-playbook starts, even in its own session, stays in the guard's tree;
* on SIGTERM, SIGHUP, SIGINT or parent death it SIGKILLs that whole tree
  (repeating until nothing of it is left) and exits; when the playbook ends by
  itself, strays are removed the same way. Nothing it started outlives it;
* ansible-playbook itself also gets a parent-death signal, so even a guard
  killed outright takes the playbook with it (its workers are then stopped by
  ansible-playbook's own SIGTERM handler).

Linux only (``prctl``); elsewhere the guard just runs the playbook.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_REAP_BUDGET = 10.0  # seconds; killing a tree takes milliseconds, this only bounds a pathological case


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """Ask for SIGTERM when the parent dies (survives ``exec``; used as a ``preexec_fn`` too)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _children_map() -> dict[int, list[int]]:
    """ppid → live (non-zombie) pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    tree = _children_map()
    found: list[int] = []
    todo = [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree() -> None:
    """SIGKILL everything below this process until nothing is left, reaping as we go."""
    deadline = time.monotonic() + _REAP_BUDGET
    while time.monotonic() < deadline:
        pids = descendants(os.getpid())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        if not pids:
            return
        time.sleep(0.01)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _stop(signum: int, _frame: FrameType | None) -> None:
    kill_tree()
    os._exit(128 + signum)


def main(playbook_binary: str, parent: int, pid_file: str) -> int:
    """Run ``playbook_binary`` with this process's arguments; see the module docstring."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop)
    die_with_parent()
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:
        return 128 + signal.SIGTERM  # the tool died before the parent-death signal was armed
    Path(pid_file).write_text(str(os.getpid()))
    child = subprocess.Popen([playbook_binary, *sys.argv[1:]], preexec_fn=die_with_parent)
    rc = child.wait()
    kill_tree()
    return rc if rc >= 0 else 128 - rc
