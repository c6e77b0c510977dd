"""FIDELITY.md names the test holding each claim; a renamed or deleted test must not leave it stale."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TABLE = TESTS / "fixtures" / "FIDELITY.md"
PREFIX = {"be": "backends", "st": "steps", "u": "unit"}


def test_every_test_the_fidelity_table_names_exists() -> None:
    named: list[tuple[Path, str | None]] = []
    current: Path | None = None
    for match in re.finditer(r"`((?:be|st|u)/[\w/]+\.py)?(?:::(\w+))?[^`]*`", TABLE.read_text()):
        file, name = match.groups()
        if file:
            area, rest = file.split("/", 1)
            current = TESTS / PREFIX[area] / rest
            named.append((current, name))
        elif name and current is not None:
            named.append((current, name))
    assert len(named) > 60
    for path, name in named:
        assert path.is_file(), f"FIDELITY.md names {path}, which does not exist"
        if name:
            defined = {
                n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
            }
            assert name in defined, f"FIDELITY.md names {path.name}::{name}, which does not exist"
