"""Run the CLI as a person and as a pipe would, and read back what each gets.

A terminal run goes through a real pseudo-terminal (pexpect) and its bytes are replayed into a
terminal emulator (pyte), so the transcript is what stays on the screen: the live progress lines
rich draws and erases are gone, the blocks and the summary remain. The emulator's screen is wider
than the ``COLUMNS`` the program is told, so a line longer than the terminal stays one line in the
transcript (wrapping it is the terminal's business; what the program wrote is what is checked).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pyte

COLUMNS = 100
ROWS = 40
SCREEN_COLUMNS = 4096
"""Wide enough for the longest line (the install's list of 59 objects is ~2,200 characters)."""
SCREEN_ROWS = 5000
TIMEOUT = 600.0
"""Generous: the machine may be busy; a run that hangs still ends the test."""

ESCAPE = re.compile(r"\x1b[\[\]()#;?]*[0-9;?]*[A-Za-z@`~]?")
SGR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Capture:
    """What one command left: its exit code, the human text, and the raw bytes behind it."""

    code: int
    text: str
    """The human output: the screen (terminal) or stderr then stdout (pipe), one line per line."""
    raw: str
    """Exactly what the program wrote to where the person looks (escapes included)."""
    stdout: str = ""


def run_piped(argv: list[str], env: Mapping[str, str], cwd: Path) -> Capture:
    """stdin, stdout and stderr are pipes (as in CI or ``| tee``); ``COLUMNS`` is not set."""
    proc = subprocess.run(
        [sys.executable, "-m", "bootstrap", *argv],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )
    # Human text is on stderr, except for the commands whose report is their output (status).
    return Capture(proc.returncode, proc.stderr + proc.stdout, proc.stderr + proc.stdout, proc.stdout)


def run_tty(
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    answer: tuple[str, str] | None = None,
    stdout_to: Path | None = None,
) -> Capture:
    """On a terminal ``COLUMNS`` wide; ``answer`` = (prompt pattern, reply) for one question.

    ``stdout_to``: stdout goes to that file (``-o json > file`` typed at a terminal), while stdin
    and stderr stay the terminal; the capture's ``stdout`` is the file's content.
    """
    command, args = sys.executable, ["-m", "bootstrap", *argv]
    if stdout_to is not None:
        command, args = "/bin/sh", ["-c", 'exec "$0" "$@" > "$BOOTSTRAP_TEST_STDOUT"', command, *args]
        env = {**env, "BOOTSTRAP_TEST_STDOUT": str(stdout_to)}
    child = pexpect.spawn(
        command,
        args,
        env={**env, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm-256color"},
        cwd=str(cwd),
        dimensions=(ROWS, COLUMNS),
        timeout=TIMEOUT,
        encoding=None,
    )
    raw = b""
    if answer is not None:
        child.expect(answer[0].encode())
        raw += (child.before or b"") + (child.after if isinstance(child.after, bytes) else b"")
        child.sendline(answer[1].encode())
    raw += child.read()
    child.close()
    code = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    text = raw.decode("utf-8", errors="replace")
    stdout = stdout_to.read_text() if stdout_to is not None else ""
    return Capture(code, screen_text(raw), text, stdout)


class _Screen(pyte.Screen):
    """pyte's screen, with erasing a line made sparse: rich erases its live lines several times a
    second, and pyte writes a blank into each of the screen's columns every time."""

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        line = self.buffer[self.cursor.y]
        if how == 2:
            line.clear()
        elif how == 0:
            for x in [x for x in line if x >= self.cursor.x]:
                del line[x]
        else:
            super().erase_in_line(how, private)


def screen_text(raw: bytes) -> str:
    """What stays on a terminal after ``raw`` was written to it.

    The emulated screen is taller than the one the program is told about, so nothing scrolls
    off: rich moves the cursor only within its live lines, which is the same on either.
    """
    screen = _Screen(SCREEN_COLUMNS, SCREEN_ROWS)
    pyte.ByteStream(screen).feed(raw)
    assert screen.cursor.y < SCREEN_ROWS - 1, "the transcript is longer than the emulated screen"
    lines = []
    for y in range(screen.cursor.y + 1):
        row = screen.buffer[y]
        width = max((x + 1 for x, char in row.items() if char.data not in (" ", "")), default=0)
        lines.append("".join(row[x].data for x in range(width)))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
