"""Reporters mask secrets; the summary maps outcomes to the documented exit codes."""

from __future__ import annotations

import io
import json

import pytest

from bootstrap import outcome
from bootstrap.errors import ExitCode
from bootstrap.outcome import Outcome, StepResult
from bootstrap.reporting import ConsoleReporter, JsonReporter, Summary
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
    summary = Summary("kuvaq", "run", [StepResult("slack-channel", Outcome.DONE, Plan(), {"token": SECRET})])
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
        ("run", [StepResult("a", Outcome.DONE, _CHANGE), StepResult("b", Outcome.UP_TO_DATE, Plan())], 0),
        ("plan", [StepResult("a", Outcome.UP_TO_DATE, Plan())], 0),
        ("plan", [StepResult("a", Outcome.CHANGED, _CHANGE)], 2),
        ("run", [StepResult("a", Outcome.DONE), StepResult("b", Outcome.FAILED)], 1),
        ("run", [StepResult("a", Outcome.WAITING)], 3),
        ("run", [StepResult("a", Outcome.FAILED), StepResult("b", Outcome.WAITING)], 1),
        ("run", [StepResult("a", Outcome.INTERRUPTED)], 130),
    ],
)
def test_exit_codes(mode: str, results: list[StepResult], code: int) -> None:
    assert Summary("kuvaq", mode, results).exit_code() == code


def test_plan_summary_counts_changes_and_steps() -> None:
    plan = Plan(
        changes=(
            Change(Action.CREATE, "x"),
            Change(Action.CREATE, "y"),
            Change(Action.UPDATE, "z"),
        )
    )
    summary = Summary(
        "kuvaq",
        "plan",
        [
            StepResult("a", Outcome.CHANGED, plan),
            StepResult("b", Outcome.UP_TO_DATE, Plan()),
            StepResult("c", Outcome.UP_TO_DATE, Plan()),
            StepResult("d", Outcome.FAILED, message="boom"),
            StepResult("e", Outcome.SKIPPED, message="not started: needs d (failed)"),
        ],
    )
    assert summary.line() == (
        "kuvaq: 2 to create, 1 to update, 0 to delete, 2 steps up to date, 1 step failed, 1 step skipped"
    )
    doc = summary.to_json()
    assert [s["status"] for s in doc["steps"]] == ["changed", "up-to-date", "up-to-date", "failed", "skipped"]
    assert sum(doc["counts"].values()) == 5


def test_concurrent_steps_print_whole_blocks_under_their_own_name(redactor: Redactor) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(redactor, stream=out)
    reporter.run_started("kuvaq", "run", ["one", "two"])
    reporter.step_started("one")
    reporter.step_started("two")
    reporter.step_planned("one", Plan(changes=(Change(Action.CREATE, "channel alerts-kuvaq"),)))
    reporter.step_planned("two", Plan(changes=(Change(Action.CREATE, "account deployer"),)))
    reporter.step_progress("one", "waiting for the channel")  # piped: a plain line naming its step
    reporter.step_applied("two", {})
    reporter.step_applied("one", {})
    lines = out.getvalue().splitlines()
    two = lines.index("▶ two")
    one = lines.index("▶ one")
    assert two < one  # in the order the steps finished
    assert lines[two + 1].endswith("create account deployer") and lines[two + 2].endswith("two done")
    assert lines[one + 1].endswith("create channel alerts-kuvaq") and lines[one + 2].endswith("one done")
    assert "  one: waiting for the channel" in lines


def test_diffs_show_changed_lines_unless_asked_for_all(redactor: Redactor) -> None:
    diff = "\n".join(["--- before", "+++ after", " context", *[f"+line {i}" for i in range(30)]])
    plan = Plan(changes=(Change(Action.UPDATE, "argocd/values.yaml", diff=diff),))
    short, full = io.StringIO(), io.StringIO()
    for stream, whole in ((short, False), (full, True)):
        reporter = ConsoleReporter(redactor, stream=stream, full_diff=whole)
        reporter.run_started("kuvaq", "plan", ["a"])
        reporter.step_started("a")
        reporter.step_planned("a", plan)
    assert "+line 11" in short.getvalue() and "+line 12" not in short.getvalue()
    assert "18 more changed line(s); --diff shows the whole diff" in short.getvalue()
    assert " context" not in short.getvalue()
    assert "+line 29" in full.getvalue() and " context" in full.getvalue()


def test_exit_code_of_failures_and_fleets() -> None:
    """Only-bad-input failures are 4, any other failure 1, interrupted beats both; a fleet takes the worst."""
    invalid = StepResult("a", Outcome.FAILED, invalid_input=True)
    assert outcome.exit_code([invalid]) == ExitCode.INVALID_INPUT
    assert outcome.exit_code([invalid, StepResult("b", Outcome.FAILED)]) == ExitCode.FAILED
    assert outcome.exit_code([invalid, StepResult("b", Outcome.INTERRUPTED)]) == ExitCode.INTERRUPTED
    assert outcome.worst([0, 2, 3]) == 3
    assert outcome.worst([4, 1]) == 1
    assert outcome.worst([3, 5]) == 5
    assert outcome.worst([2, 130, 1]) == 130
    assert outcome.worst([]) == 0
