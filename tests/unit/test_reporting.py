"""Reporters mask secrets; the summary maps outcomes to the documented exit codes."""

from __future__ import annotations

import io
import json

import pytest

from bootstrap.reporting import ConsoleReporter, JsonReporter, StepResult, Summary
from bootstrap.secrets import MASK, Redactor
from bootstrap.step import Action, Change, Plan

SECRET = "xoxb-Reporting-Secret-123456"


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.register(SECRET)
    return r


def test_console_masks_every_text_path(redactor: Redactor) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(redactor, stream=out)
    plan = Plan(
        changes=(Change(Action.UPDATE, f"secret/{SECRET}", summary=SECRET, diff=f"-old\n+{SECRET}"),),
        notes=(f"note {SECRET}",),
    )
    reporter.run_started("kuvaq", "run", ["slack-channel"])
    reporter.notice(f"notice {SECRET}")
    reporter.step_started("slack-channel")
    reporter.step_progress("slack-channel", f"progress {SECRET}")
    reporter.step_planned("slack-channel", plan)
    reporter.step_failed("slack-channel", f"failed {SECRET} [bold]markup[/]", retrying=False)
    reporter.step_waiting("slack-channel", f"waiting {SECRET}")
    text = out.getvalue()
    assert SECRET not in text
    assert text.count(MASK) >= 7
    assert "[bold]markup[/]" in text  # message text is escaped, not interpreted as markup


def test_json_reporter_prints_one_masked_document(redactor: Redactor) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    reporter = JsonReporter(redactor, stdout=stdout, stderr=stderr)
    summary = Summary("kuvaq", "run", [StepResult("slack-channel", "done", Plan(), {"token": SECRET})])
    reporter.run_finished(summary)
    doc = json.loads(stdout.getvalue())
    assert doc["steps"][0]["outputs"] == {"token": MASK}
    assert doc["exit_code"] == 0
    assert SECRET not in stdout.getvalue() + stderr.getvalue()
    assert "run" in stderr.getvalue()


_CHANGE = Plan(changes=(Change(Action.CREATE, "x"),))


@pytest.mark.parametrize(
    ("mode", "results", "code"),
    [
        ("run", [], 0),
        ("run", [StepResult("a", "done", _CHANGE), StepResult("b", "up-to-date", Plan())], 0),
        ("plan", [StepResult("a", "planned", Plan())], 0),
        ("plan", [StepResult("a", "planned", _CHANGE)], 2),
        ("run", [StepResult("a", "done"), StepResult("b", "failed")], 1),
        ("run", [StepResult("a", "waiting")], 3),
        ("run", [StepResult("a", "failed"), StepResult("b", "waiting")], 1),
        ("run", [StepResult("a", "interrupted")], 130),
    ],
)
def test_exit_codes(mode: str, results: list[StepResult], code: int) -> None:
    assert Summary("kuvaq", mode, results).exit_code() == code
