"""Everything imported lazily by clients and steps is imported before the engine starts threads.

Concurrent first imports of one package can hand a thread a half-initialised
module (``cannot import name 'parse_dict_header' from partially initialized
module 'requests.utils'``), so ``services.preload`` must cover every lazy import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from bootstrap import services

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)


def _lazy_imports(path: Path) -> set[str]:
    """Modules imported inside functions (not at module level, not under TYPE_CHECKING)."""
    found: set[str] = set()
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_every_lazy_import_of_clients_and_steps_is_preloaded() -> None:
    sources = [*(ROOT / "bootstrap" / "clients").glob("*.py"), *(ROOT / "steps").glob("*.py")]
    lazy = set().union(*(_lazy_imports(p) for p in sources))
    # The project's own modules are not third-party: ``steps.STEPS`` imports the step modules on its
    # first access, which the CLI makes on the main thread before the engine starts any.
    ours_top = {"bootstrap", "steps"}
    third_party = {m for m in lazy if m.split(".")[0] not in STDLIB and m.split(".")[0] not in ours_top}
    covered = {
        m
        for m in third_party
        if any(m == p or m.startswith(p + ".") or p.startswith(m + ".") for p in services.PRELOAD)
    }
    assert third_party - covered == set()
    ours = {m for m in lazy if m.startswith("bootstrap.clients.")}
    assert ours <= set(services.PRELOAD) | {"bootstrap.clients.github_keys"}


def test_preload_imports_every_sdk_in_a_fresh_interpreter() -> None:
    code = (
        "import sys; from bootstrap import services; services.preload(); "
        "missing = [m for m in services.PRELOAD if m not in sys.modules]; print(missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
