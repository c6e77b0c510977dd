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
from tests.unit.bad_inputs import BAD_INPUTS, EXAMPLE_PATH, BadInput

EXAMPLE_ENV = {
    "GITHUB_TOKEN": "ghp_example",
    "SLACK_BOT_TOKEN": "xoxb-example",
    "OPSGENIE_API_KEY": "og-example",
    "VAULT_TOKEN": "hvs.example",
}
"""What the example's env: references need to resolve (validate checks them)."""


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
    assert doc["steps"] == []
    assert result.stderr.startswith("error: ")


def test_status_json_on_a_fresh_state(customer: Path) -> None:
    result = bootstrap("status", str(customer), "--output", "json", cwd=customer.parent)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["customer"] == "kuvaq"
    assert doc["state"] == str(state_dir(customer) / "state.json")
    assert [row["id"] for row in doc["steps"]] == [cls.id for cls in steps.STEPS]
    assert all(row["status"] == "pending" for row in doc["steps"])


def test_status_refuses_another_customers_state(customer: Path) -> None:
    FileStore(state_dir(customer)).save(State(customer="other"))
    result = bootstrap("status", str(customer), "--output", "json", cwd=customer.parent)
    assert result.returncode == 4  # the state file is input the user must fix
    assert "belongs to customer 'other'" in result.stderr
    assert result.stdout == ""


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
