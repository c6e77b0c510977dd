"""The built wheel works on its own: installed outside the checkout, it runs the sandbox end to end.

What an installed package needs that a checkout has for free (the playbooks and
templates as package data, the emulators as a top-level package, no path found
through ``Path(__file__).parents`` into the repository) is proven here: the
wheel is built from a copy of the sources (so the build leaves nothing in the
checkout), installed with ``--no-deps`` into a fresh virtualenv whose only other
import path is the project's .venv site-packages (the dependencies; a .pth line
does not run the .venv's own .pth files, so the editable install of the checkout
stays invisible), and ``bootstrap sandbox up`` + ``bootstrap run`` run from a
directory outside the checkout. Offline: the build uses the .venv's setuptools.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "bootstrap", "steps", "playbooks", "sandbox")

pytestmark = pytest.mark.e2e


def _sh(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """A fresh virtualenv (its bin dir is yielded) with only the wheel installed in it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = (sys.executable, "-m", "pip")
    _sh(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", src, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("gitops_bootstrap-*.whl"))
    venv = tmp_path / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
    (Path(purelib.stdout.strip()) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _sh(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    yield venv / "bin"


def test_the_installed_wheel_runs_the_sandbox_end_to_end(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    # The dependencies' own executables (ansible-playbook, bao) come last, after the wheel's.
    path = os.pathsep.join([str(installed), os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PATH": path, "TMPDIR": str(tmp_path)}
    where = _sh(
        installed / "python",
        "-c",
        "import bootstrap, playbooks, sandbox, steps; "
        "print(*(m.__file__ for m in (bootstrap, playbooks, sandbox, steps)), sep='\\n')",
        cwd=work,
        env=env,
    )
    for module_file in where.stdout.split():
        assert Path(module_file).is_relative_to(installed.parent), module_file  # not the checkout

    bootstrap = installed / "bootstrap"
    _sh(bootstrap, "sandbox", "up", "--dir", "sb", cwd=work, env=env)
    try:
        for line in (work / "sb" / "sandbox.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        run = subprocess.run(
            [str(bootstrap), "run", "sb/customer.yaml"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        _sh(bootstrap, "sandbox", "down", "--dir", "sb", cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "kuvaq: run 7 done" in run.stderr
