"""The command line through ``python -m bootstrap`` in a subprocess: exit codes and streams.

STEPS is still empty here, so these tests cover the CLI's contract (parsing,
validation, the lock, JSON on stdout, exit codes), not the steps. ``forget``'s
happy path needs a known step id, so it runs in-process with a one-step tuple.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import steps
from bootstrap import cli
from bootstrap.checkpoint import FileStore, State, Status
from bootstrap.step import Context, Outputs, Plan, Step, StepId
from tests.unit.bad_inputs import BAD_INPUTS, EXAMPLE_ENV, EXAMPLE_PATH, BadInput


def bootstrap(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def customer(tmp_path: Path) -> Path:
    path = tmp_path / "customer.yaml"
    shutil.copy(EXAMPLE_PATH, path)
    return path


def state_dir(customer: Path) -> Path:
    return customer.parent / ".bootstrap"


def test_help(tmp_path: Path) -> None:
    result = bootstrap("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "plan", "status", "forget", "validate", "schema"):
        assert command in result.stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "bootstrap"
    result = subprocess.run(
        [str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "validate" in result.stdout


def test_validate_example(customer: Path) -> None:
    result = bootstrap("validate", str(customer), cwd=customer.parent, env=EXAMPLE_ENV)
    assert result.returncode == 0, result.stderr
    assert "valid (customer kuvaq, kit acme-sre/kit-core@v1.4)" in result.stderr
    assert result.stdout == ""


def test_validate_bad_file_names_the_field(customer: Path) -> None:
    customer.write_text(EXAMPLE_PATH.read_text().replace("  cloud: aws ", "  cloud: azure "))
    result = bootstrap("validate", str(customer), cwd=customer.parent)
    assert result.returncode == 4
    assert "kit.cloud: Input should be 'aws' or 'gcp' (line 14)" in result.stderr
    assert "Traceback" not in result.stderr


_THROUGH_THE_CLI = [
    "empty-file",
    "not-utf8-latin1",
    "yaml-bomb-aliases",
    "complex-mapping-key",
    "integer-too-long",
    "kit-version-inner-dotdot",
    "literal-github-token",
    "oversized-file",
]


@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if c.id in _THROUGH_THE_CLI], ids=lambda c: str(c.id))
def test_bad_inputs_through_the_cli(case: BadInput, tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(case.content)
    result = bootstrap("validate", str(path), cwd=tmp_path)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert case.mentions in result.stderr
    if case.secret:
        assert case.secret not in result.stderr + result.stdout


def test_missing_file(tmp_path: Path) -> None:
    result = bootstrap("validate", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 4
    assert "nope.yaml: no such file" in result.stderr


def test_usage_error_is_invalid_input(customer: Path) -> None:
    result = bootstrap("run", str(customer), "--bogus", cwd=customer.parent)
    assert result.returncode == 4
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_prints_json(tmp_path: Path) -> None:
    result = bootstrap("schema", cwd=tmp_path)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "vault" in schema["properties"]


def test_run_unknown_only_is_invalid_input(customer: Path) -> None:
    result = bootstrap("run", str(customer), "--only", "nope", cwd=customer.parent)
    assert result.returncode == 4
    assert "unknown step 'nope'; steps are:" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_without_credentials_names_the_missing_variable(customer: Path) -> None:
    result = bootstrap("plan", str(customer), "--only", "argocd-dir", cwd=customer.parent)
    assert result.returncode == 4, result.stderr
    assert "github.token" in result.stderr and "GITHUB_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_json_output_is_one_document_on_stdout(customer: Path) -> None:
    result = bootstrap("run", str(customer), "--only", "argocd-dir", "--output", "json", cwd=customer.parent)
    doc = json.loads(result.stdout)
    assert doc["customer"] == "kuvaq"
    assert doc["exit_code"] == result.returncode == 4
    # The example's env: references are unset here: the preflight stops the run before any step.
    assert {c["check"] for c in doc["checks"] if c["result"] == "invalid"} >= {
        "github.token (env:GITHUB_TOKEN)"
    }
    assert "preflight check(s) failed for kuvaq" in doc["error"] and len(doc["messages"]) > 1
    assert result.stderr.startswith("error: ")


def test_status_json_on_a_fresh_state(customer: Path) -> None:
    result = bootstrap("status", str(customer), "--output", "json", cwd=customer.parent)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["customer"] == "kuvaq"
    assert doc["state"] == str(state_dir(customer) / "state.json")
    assert [row["id"] for row in doc["steps"]] == [cls.id for cls in steps.STEPS if "standalone" in cls.modes]
    assert all(row["status"] == "pending" for row in doc["steps"])


def test_status_piped_cuts_nothing_and_notes_get_own_lines(customer: Path, tmp_path: Path) -> None:
    state = State(customer="kuvaq")
    rec = state.record("alertmanager-opsgenie")
    rec.status = Status.FAILED
    rec.error = "OpsGenie answered 403 for GET /v2/integrations\nthe key needs config access; " + "x" * 150
    FileStore(state_dir(customer)).save(state)
    other = tmp_path / "second" / "customer.yaml"
    other.parent.mkdir()
    shutil.copy(customer, other)
    result = bootstrap("status", str(customer), str(other), cwd=customer.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("alertmanager-opsgenie "))
    assert lines[row].split()[1] == "failed"
    assert lines[row + 1] == "    OpsGenie answered 403 for GET /v2/integrations"
    assert lines[row + 2].endswith("x" * 150)  # not cut at the terminal width
    assert result.stdout.count("kuvaq — ") == 2  # one block per file


def test_status_refuses_another_customers_state(customer: Path) -> None:
    FileStore(state_dir(customer)).save(State(customer="other"))
    result = bootstrap("status", str(customer), "--output", "json", cwd=customer.parent)
    assert result.returncode == 4  # the state file is input the user must fix
    assert "belongs to customer 'other'" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 4  # a document for the error, nothing else


def test_forget_unknown_step(customer: Path) -> None:
    result = bootstrap("forget", str(customer), "no-such-step", cwd=customer.parent)
    assert result.returncode == 4
    assert "unknown step 'no-such-step'" in result.stderr


def test_locked_state_exits_5_naming_the_holder(customer: Path) -> None:
    with FileStore(state_dir(customer)).lock():
        result = bootstrap("run", str(customer), cwd=customer.parent)
    assert result.returncode == 5
    assert f"locked by pid {os.getpid()} on " in result.stderr
    assert "--break-lock" in result.stderr
    assert "Traceback" not in result.stderr


def test_break_lock_takes_over(customer: Path) -> None:
    with FileStore(state_dir(customer)).lock():
        result = bootstrap("run", str(customer), "--only", "argocd-dir", "--break-lock", cwd=customer.parent)
    assert result.returncode == 4, result.stderr  # past the lock; then the missing GITHUB_TOKEN
    assert f"broke the lock held by pid {os.getpid()}" in result.stderr


# -- forget, in-process with a known step ------------------------------------------------------


class Recorded(Step):
    id = StepId("deploy-key")
    title = "a step with a checkpoint record"
    requires: ClassVar[tuple[StepId, ...]] = ()

    def plan(self, ctx: Context) -> Plan:
        return Plan()

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        return {}

    def verify(self, ctx: Context) -> None:
        return None

    def plan_destroy(self, ctx: Context) -> Plan:
        return Plan()

    def destroy(self, ctx: Context, plan: Plan) -> None:
        return None


def main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["bootstrap", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code or 0)


def test_forget_drops_one_record(customer: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "STEPS", (Recorded,))
    store = FileStore(state_dir(customer))
    state = State(customer="kuvaq")
    state.record("deploy-key").status = Status.DONE
    state.record("argocd-dir").status = Status.DONE
    store.save(state)

    assert main(monkeypatch, "forget", str(customer), "deploy-key") == 0
    after = store.load("kuvaq")
    assert set(after.steps) == {"argocd-dir"}

    with store.lock():
        assert main(monkeypatch, "forget", str(customer), "deploy-key") == 5


def test_steps_lists_every_id_in_run_order(customer: Path) -> None:
    result = bootstrap("steps", cwd=customer.parent)
    assert result.returncode == 0, result.stderr
    ids = [line.split()[0] for line in result.stdout.splitlines()]
    assert sorted(ids) == sorted(cls.id for cls in steps.STEPS)
    assert ids.index("slack-channel") < ids.index("alertmanager-opsgenie")
    assert "(needs slack-channel)" in result.stdout


def test_shell_completion_offers_step_ids(customer: Path) -> None:
    """As bash asks the installed command (the completion variable is named after the program)."""
    program = Path(sys.executable).parent / "bootstrap"
    env = {
        "_BOOTSTRAP_COMPLETE": "complete_bash",
        "COMP_WORDS": "bootstrap run x --only argocd-",
        "COMP_CWORD": "4",
    }
    result = subprocess.run(
        [str(program)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert sorted(result.stdout.split()) == ["argocd-dir", "argocd-install", "argocd-users"], result.stderr


@pytest.mark.parametrize(
    "args",
    [("run", "missing.yaml", "-o", "json"), ("run", "customer.yaml", "--only", "nope", "--output=json")],
)
def test_json_output_prints_a_document_for_errors_too(customer: Path, args: tuple[str, ...]) -> None:
    result = bootstrap(*args, cwd=customer.parent)
    assert result.returncode == 4
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 4 and doc["error"] and doc["messages"]


# -- preview is read-only; an unwritable state dir is found first -------------------------------


def test_plan_runs_beside_a_run_and_writes_nothing(customer: Path) -> None:
    store = FileStore(state_dir(customer))
    recorded = State(customer="kuvaq")
    recorded.record("argocd-dir").status = Status.DONE
    store.save(recorded)
    before = store.path.read_bytes()
    with store.lock():  # a run in progress
        result = bootstrap("plan", str(customer), "--only", "argocd-dir", cwd=customer.parent)
    assert result.returncode == 4, result.stderr  # past the (absent) lock: the missing GITHUB_TOKEN
    assert "locked" not in result.stderr
    assert store.path.read_bytes() == before  # a failing plan records nothing


def _read_only(directory: Path) -> list[str] | None:
    """A command prefix that runs with ``directory`` mounted read-only (None when impossible here)."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mount = f'mount --bind "{directory}" "{directory}" && mount -o remount,bind,ro "{directory}"'
    prefix = [unshare, "-rm", "sh", "-c", mount + ' && exec "$@"', "sh"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=60)
    return prefix if probe.returncode == 0 else None


def test_read_only_state_dir_is_one_clear_error_before_anything_else(customer: Path) -> None:
    directory = state_dir(customer)
    directory.mkdir()
    prefix = _read_only(directory)
    if prefix is None:
        pytest.skip("cannot make a read-only directory here (root without unshare)")
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "bootstrap", "run", str(customer), "--only", "argocd-dir"],
        cwd=customer.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    directory.chmod(0o700)
    assert result.returncode == 1, result.stderr
    assert f"cannot write the checkpoint directory {directory}" in result.stderr
    assert "GITHUB_TOKEN" not in result.stderr  # found before credentials, the lock or any service
    assert "Traceback" not in result.stderr
    assert list(directory.iterdir()) == []
