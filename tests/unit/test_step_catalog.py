"""steps/catalog.py repeats each step's id and modes so that `status` needs no step import: it must agree."""

from __future__ import annotations

import subprocess
import sys

from steps import STEPS, catalog


def test_the_catalog_names_every_step_with_its_modes_in_order() -> None:
    assert [(e.id, e.modes) for e in catalog.CATALOG] == [(cls.id, cls.modes) for cls in STEPS]


def test_for_mode_is_what_for_config_builds() -> None:
    assert catalog.for_mode("standalone") == [c.id for c in STEPS if "standalone" in c.modes]
    assert catalog.for_mode("hub") == [c.id for c in STEPS if "hub" in c.modes]


def test_the_catalog_imports_no_step() -> None:
    code = "import sys, steps.catalog; print(sorted(m for m in sys.modules if m.startswith('steps.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['steps.catalog']"
