"""Help speaks to a person: metavars (CUSTOMER.yaml..., STEP, DIR), never a Python type.

typer prints the annotation beside each parameter (``<list[Path]>``, ``<bool>`` for ``-h``) and
writes a required argument as ``{CUSTOMER.yaml...}...`` in the usage line; the CLI re-classes its
parameters to show the metavar alone. Every command's help is rendered, in a subprocess as a
person runs it, so a typer upgrade that brings the types back fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from bootstrap import cli
from steps import STEPS

PYTHON_TYPE = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|[A-Z]\w*)>")


def commands() -> list[tuple[str, ...]]:
    """Every command path (``()`` is the root), from the app itself: a new command is covered."""
    found: list[tuple[str, ...]] = [()]
    root = typer.main.get_command(cli.app)
    pending: list[tuple[tuple[str, ...], object]] = [((), root)]
    while pending:
        path, command = pending.pop()
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found.append((*path, name))
            pending.append(((*path, name), sub))
    return found


def help_of(*path: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bootstrap", *path, "-h"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"},
        cwd=Path(__file__).parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_command_is_listed() -> None:
    assert {("run",), ("status",), ("validate",), ("sandbox", "up")} <= set(commands())


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "bootstrap")
def test_help_shows_metavars_not_python_types(path: tuple[str, ...]) -> None:
    text = help_of(*path)
    assert not PYTHON_TYPE.search(text), PYTHON_TYPE.search(text)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert "-h" in text and "--help" in text


@pytest.mark.parametrize(
    ("path", "argument"),
    [
        (("run",), "CUSTOMER.yaml..."),
        (("plan",), "CUSTOMER.yaml..."),
        (("status",), "CUSTOMER.yaml..."),
        (("validate",), "CUSTOMER.yaml..."),
        (("check",), "CUSTOMER.yaml..."),
        (("destroy",), "CUSTOMER.yaml"),
        (("forget",), "CUSTOMER.yaml STEP"),
        (("rotate",), "CUSTOMER.yaml WHAT"),
    ],
)
def test_usage_names_the_arguments(path: tuple[str, ...], argument: str) -> None:
    usage = next(line for line in help_of(*path).splitlines() if "Usage:" in line)
    assert usage.split("[OPTIONS]")[1].strip() == argument


@pytest.mark.parametrize("path", [("run",), ("plan",), ("destroy",), ("forget",)])
def test_step_options_list_every_step_id(path: tuple[str, ...]) -> None:
    flat = " ".join(line.strip("│ ") for line in help_of(*path).splitlines())
    for option in ("--only", "--skip", "--from") if path == ("run",) else ():
        assert option in flat
    listed = re.findall(r"one of: ([a-z, \-]+)\.", re.sub(r"\s+", " ", flat))
    assert listed, flat
    for ids in listed:
        assert [i.strip() for i in ids.split(",")] == [cls.id for cls in STEPS]


def test_rotate_names_what_it_rotates() -> None:
    text = help_of("rotate")
    offered = cli._rotations()
    assert {"deploy-key", "passwords", "alerting-key", "cluster-token"} <= set(offered)
    for what in offered:
        assert what in text
