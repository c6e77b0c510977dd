"""Every ``--output json`` document matches the published schema (bootstrap/schemas/output.schema.json).

Programs that read bootstrap's stdout rely on that schema, so each kind of document is
checked here, produced the way the CLI produces it: through the CLI where that needs no
service (status, validate, errors, the preflight's refusal), in-process for the rest.
"""

from __future__ import annotations

import io
import json
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bootstrap import fleet, preflight
from bootstrap.outcome import Outcome, StepResult
from bootstrap.reporting import Summary
from bootstrap.step import Action, Change, Plan
from tests.unit.bad_inputs import EXAMPLE_ENV, EXAMPLE_PATH
from tests.unit.test_cli import bootstrap

SCHEMA = json.loads(files("bootstrap").joinpath("schemas/output.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def kind(doc: Any) -> str:
    """The one definition ``doc`` matches (the schema's oneOf makes it unique)."""
    VALIDATOR.validate(doc)
    matches = [
        name
        for name in ("summary", "fleet", "status", "statusFleet", "statusHub", "check", "validate", "error")
        if jsonschema.Draft202012Validator({**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{name}"}]}).is_valid(doc)
    ]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.fixture
def customer(tmp_path: Path) -> Path:
    path = tmp_path / "customer.yaml"
    shutil.copy(EXAMPLE_PATH, path)
    return path


def test_the_schema_itself_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_summaries_and_fleets() -> None:
    plan = Plan(changes=(Change(Action.CREATE, "x", "make x", "+x"),), notes=("n",))
    summary = Summary(
        "kuvaq",
        "plan",
        [
            StepResult("a", Outcome.CHANGED, plan),
            StepResult("b", Outcome.FAILED, message="boom"),
            StepResult("c", Outcome.SKIPPED),
        ],
    )
    assert kind(summary.to_json()) == "summary"
    out = io.StringIO()
    outcomes = [
        fleet.CustomerResult(Path("a/customer.yaml"), "a", 2, summary),
        fleet.CustomerResult(Path("b/customer.yaml"), "b", 4, error="b/customer.yaml: no such file"),
    ]
    fleet._print_fleet(outcomes, fleet.Options(mode="plan", json_output=True), write=out.write)
    assert kind(json.loads(out.getvalue())) == "fleet"


def test_check_documents() -> None:
    report = preflight.Report("kuvaq", [preflight.Result("github", preflight.Status.OK, "fine")], 0.1)
    assert kind({"exit_code": 0, "customers": [report.to_json()]}) == "check"


def test_status_validate_and_errors_through_the_cli(customer: Path, tmp_path: Path) -> None:
    status = bootstrap("status", str(customer), "-o", "json", cwd=customer.parent)
    assert kind(json.loads(status.stdout)) == "status"
    both = bootstrap("status", str(customer), str(customer), "-o", "json", cwd=customer.parent)
    assert kind(json.loads(both.stdout)) == "statusFleet"

    valid = bootstrap("validate", str(customer), "-o", "json", cwd=customer.parent, env=EXAMPLE_ENV)
    assert json.loads(valid.stdout) == [] and kind([]) == "validate"
    broken = tmp_path / "broken.yaml"
    broken.write_text(customer.read_text().replace("version: v1.4", "version: 14"))
    invalid = bootstrap("validate", str(broken), "-o", "json", cwd=customer.parent, env=EXAMPLE_ENV)
    assert invalid.returncode == 4 and kind(json.loads(invalid.stdout)) == "validate"

    refused = bootstrap("plan", str(customer), "--only", "argocd-dir", "-o", "json", cwd=customer.parent)
    doc = json.loads(refused.stdout)
    assert refused.returncode == 4 and kind(doc) == "error" and doc["checks"]
    unknown = bootstrap("run", str(customer), "--only", "nope", "-o", "json", cwd=customer.parent)
    assert kind(json.loads(unknown.stdout)) == "error"


def test_every_step_outcome_is_in_the_schema() -> None:
    assert set(SCHEMA["$defs"]["outcome"]["enum"]) == {str(o) for o in Outcome}
