"""With ``-o json`` an error is a JSON document too: a program reading stdout never gets nothing.

Each refusal here happens before any service is contacted; the document is checked against the
published schema (its ``error`` definition) and the person still reads the message on stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.bad_inputs import EXAMPLE_PATH
from tests.unit.test_output_schema import kind

CASES = {
    "missing file (run)": ["run", "missing.yaml"],
    "missing file (status)": ["status", "missing.yaml"],
    "destroy without --yes off a terminal": ["destroy", "customer.yaml"],
    "selection contradicts itself": ["run", "customer.yaml", "--only", "argocd-dir", "--skip", "argocd-dir"],
    "unknown step": ["plan", "customer.yaml", "--only", "argocd-dri"],
    "usage error": ["run"],
}


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_an_error_is_one_json_document(tmp_path: Path, argv: list[str]) -> None:
    shutil.copy(EXAMPLE_PATH, tmp_path / "customer.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "bootstrap", *argv, "--output", "json"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    doc = json.loads(proc.stdout)
    assert kind(doc) == "error"
    assert doc["exit_code"] == 4
    assert doc["error"] and doc["error"] in proc.stderr
