"""``bootstrap sandbox up`` never silently replaces a live sandbox, and its hint works as typed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import ConfigError
from sandbox import control


def test_a_live_sandbox_is_kept_unless_replace(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    try:
        lines = list(control.up(directory))
        env_before = (directory / "sandbox.env").read_text()
        pids = control.running(directory.resolve())
        assert len(pids) == 2

        with pytest.raises(ConfigError, match="--replace") as refused:
            list(control.up(directory))
        assert "sandbox down" in str(refused.value)
        assert (directory / "sandbox.env").read_text() == env_before  # the old tokens still work
        assert control.running(directory.resolve()) == pids

        list(control.up(directory, replace=True))
        assert (directory / "sandbox.env").read_text() != env_before
        assert not set(control.running(directory.resolve())) & set(pids)
    finally:
        list(control.down(directory))
    assert control.running(directory.resolve()) == []

    # The "next:" hint names a command that runs as typed from a plain shell.
    hint = next(line for line in lines if line.startswith("next: "))
    program = shlex.split(hint.split("&&", 1)[1])[:-2]
    if program == ["bootstrap"]:
        return  # found on PATH, as the hint assumes
    result = subprocess.run([*program, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bootstrap ")


def test_a_dead_sandbox_dir_is_reused_quietly(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    directory.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (directory / "pids.json").write_text(f'{{"emulators": {int(dead.stdout)}, "openbao": null}}')
    assert control.running(directory) == []
