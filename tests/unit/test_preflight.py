"""The preflight's contract with the engine and the steps, without any server.

The engine calls the hook with the chosen steps before the first one; a hook that
raises stops the run with nothing applied and no checkpoint written. Needs that
several steps declare are merged and checked once; a check that cannot run because
its credential does not resolve is "not checked", never failed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bootstrap import preflight
from bootstrap.config import CustomerConfig
from bootstrap.engine import Engine
from bootstrap.preflight import Report, Result, Status
from bootstrap.step import Context, Need, Step
from tests.unit.test_engine import Harness, StepA, StepB, StepC


class Refused(preflight.PreflightFailed):
    pass


def test_a_failing_hook_stops_before_the_first_step(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    seen: list[list[str]] = []

    def hook(ctx: Context, steps: Sequence[Step]) -> None:
        seen.append([s.id for s in steps])
        report = Report("kuvaq", [Result("slack token scopes", Status.FAILED, "missing chat:write")])
        raise Refused(report)

    eng = Engine([c(h.world) for c in (StepA, StepB, StepC)], h.store, h.reporter, h.redactor, preflight=hook)
    with pytest.raises(preflight.PreflightFailed) as exc:
        eng.run(h.context())
    assert seen == [["a", "b", "c"]]
    assert exc.value.exit_code == 1 and "slack token scopes: missing chat:write" in str(exc.value)
    assert h.world.applies == [] and h.reporter.events == []
    assert not (tmp_path / ".bootstrap" / "state.json").exists()


def test_a_passing_hook_lets_the_run_go_on(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    eng = Engine(
        [c(h.world) for c in (StepA, StepB)], h.store, h.reporter, h.redactor, preflight=lambda ctx, s: None
    )
    assert eng.run(h.context()).exit_code() == 0
    assert h.world.applies == ["a", "b"]


class Needy(StepA):
    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        return (Need("slack", "alerts", ("chat:write",)), Need("github", "kuvaq/infra", ("contents:write",)))


class AlsoNeedy(StepB):
    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        return (Need("slack", "alerts", ("channels:read", "chat:write")),)


def test_needs_are_merged_and_unresolved_credentials_mean_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path)  # its environ is empty: every env: reference is unset
    calls: list[tuple[str, dict[Need, list[str]]]] = []

    def fake(service: str) -> object:
        def check(ctx: Context, needs: dict[Need, list[str]]) -> list[Result]:
            calls.append((service, needs))
            return [Result(service, Status.OK, "fine")]

        return check

    monkeypatch.setattr(preflight, "CHECKS", {s: fake(s) for s in ("slack", "github")})
    report = preflight.run(h.context(), [Needy(h.world), AlsoNeedy(h.world)])
    assert calls == []  # both credentials are unset: neither service is asked
    by_check = {r.check: r for r in report.results}
    assert by_check["slack"].status is Status.SKIPPED and by_check["github"].status is Status.SKIPPED
    assert by_check["slack"].steps == ("a", "b")
    unset = by_check["slack.token (env:SLACK_BOT_TOKEN)"]
    assert unset.status is Status.INVALID and "(line " in unset.detail
    assert report.exit_code() == 4

    h.tmp_path = tmp_path
    ctx = h.context()
    ctx.secrets._environ = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "GITHUB_TOKEN": "ghp-1",
        "OPSGENIE_API_KEY": "o",
        "KIT_TOKEN": "k",
        "JSM_API_TOKEN": "j",
        "VAULT_TOKEN": "v",
    }
    report = preflight.run(ctx, [Needy(h.world), AlsoNeedy(h.world)])
    merged = dict(calls)["slack"]
    assert list(merged) == [Need("slack", "alerts", ("chat:write", "channels:read"))]
    assert merged[Need("slack", "alerts", ("chat:write", "channels:read"))] == ["a", "b"]
    assert report.exit_code() == 0
