"""Start-up stays light: `--help`, `validate` and `status` import no vendor SDK and no Ansible.

Checked by import, not by time (times are noisy here; the benchmark prints them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.bad_inputs import EXAMPLE_PATH

HEAVY = (
    "github",
    "slack_sdk",
    "hvac",
    "opsgenie_sdk",
    "kubernetes",
    "ansible_runner",
    "ansible",
    "bcrypt",
    "jinja2",
)


def loaded_modules(*argv: str, cwd: Path) -> set[str]:
    """Every module ``bootstrap *argv`` has loaded by its end (its output piped, as in a script)."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['bootstrap', *{list(argv)!r}]\n"
        "try:\n    runpy.run_module('bootstrap', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=False)
    return set(out.stdout.splitlines())


def imported_modules(*argv: str, cwd: Path) -> set[str]:
    return {name.split(".")[0] for name in loaded_modules(*argv, cwd=cwd)}


@pytest.mark.parametrize("argv", [("--help",), ("validate", "customer.yaml"), ("status", "customer.yaml")])
def test_light_commands_import_no_vendor_sdk(tmp_path: Path, argv: tuple[str, ...]) -> None:
    (tmp_path / "customer.yaml").write_bytes(EXAMPLE_PATH.read_bytes())
    modules = imported_modules(*argv, cwd=tmp_path)
    assert "bootstrap" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("argv", [("--help",), ("validate", "customer.yaml"), ("status", "customer.yaml")])
def test_light_commands_piped_import_no_rich_nor_engine(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """Help is plain text and piped output is plain lines: rich (~0.3 s of imports with typer's help
    panels) and the engine are loaded only by commands that run steps or draw on a terminal."""
    (tmp_path / "customer.yaml").write_bytes(EXAMPLE_PATH.read_bytes())
    modules = loaded_modules(*argv, cwd=tmp_path)
    assert "bootstrap.cli" in modules
    assert not {m for m in modules if m == "rich" or m.startswith(("rich.", "bootstrap.engine"))}
