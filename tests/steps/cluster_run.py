"""Running cluster steps like ``World.run`` does, while watching Ansible's private data dir.

The data dir exists only during a playbook run, so it is scanned from inside
the run: ansible-runner calls the adapter's progress hook on every job event,
and the hook here walks the dir and records any file (other than the secret
vars file, the one place secrets may be) holding a known secret value.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from bootstrap import engine, session
from bootstrap.reporting import StepResult, Summary
from bootstrap.step import Context, Plan, Step
from tests.fixtures.world import World
from tests.unit.recording import RecordingReporter


@dataclass
class Run:
    summary: Summary
    reporter: RecordingReporter
    session: session.Session
    leaks: list[str] = field(default_factory=list)
    scans: int = 0

    @property
    def result(self) -> StepResult:
        return self.summary.results[-1]


def run(
    world: World,
    steps: Sequence[type[Step]],
    dry_run: bool = False,
    reporter: RecordingReporter | None = None,
    sess: session.Session | None = None,
) -> Run:
    sess = sess or world.session()
    reporter = reporter or RecordingReporter()
    tmp_root = world.dir / "ansible-tmp"
    tmp_root.mkdir(exist_ok=True)
    out = Run(Summary(customer="", mode=""), reporter, sess)
    ansible = sess.services.ansible
    ansible.tmp_root = tmp_root

    def scan(_line: str) -> None:
        out.scans += 1
        values = [v for v in sess.redactor.values if len(v) >= 8]
        forms = values + [base64.b64encode(v.encode()).decode() for v in values]
        for path in tmp_root.rglob("*"):
            if path.is_file():  # the vault vars are encrypted; the password pipe is no file
                text = path.read_bytes().decode("utf-8", errors="replace")
                out.leaks += [f"{path.relative_to(tmp_root)}" for f in forms if f in text]

    ansible.progress = scan
    eng = engine.Engine([s() for s in steps], sess.store, reporter, sess.redactor, retry_delay_cap=0.2)
    with sess.store.lock():
        out.summary = eng.run(sess.context, dry_run=dry_run)
    assert not list(tmp_root.iterdir()), "Ansible's private data dir was left behind"
    return out


def secrets_in(text: str, values: Sequence[str]) -> list[str]:
    """Which of ``values`` (raw or base64) occur in ``text``; reported masked."""
    found = [v for v in values if v in text or base64.b64encode(v.encode()).decode() in text]
    return [v[:3] + "…" for v in found]


def state_text(world: World) -> str:
    return (world.dir / ".bootstrap" / "state.json").read_text()


def destroy(world: World, steps: Sequence[type[Step]], dry_run: bool = False) -> Summary:
    sess = world.session()
    eng = engine.Engine(
        [s() for s in steps], sess.store, RecordingReporter(), sess.redactor, retry_delay_cap=0.2
    )
    with sess.store.lock():
        return eng.destroy(sess.context, dry_run=dry_run)


def apply_from(world: World, step: Step, start: str) -> tuple[Context, Plan]:
    """Plan ``step`` from ``start`` (must have changes), reset the call logs, apply exactly that plan."""
    ctx = world.context()
    plan = step.plan(ctx)
    assert not plan.empty, start
    world.reset_logs()
    step.apply(ctx, plan)
    return ctx, plan


def kube_writes(world: World) -> list[tuple[str, str, str]]:
    """The kube emulator's successful writes since the last reset: (method, resource, object name)."""
    out = []
    for call in world.kube.log.writes:
        *_, resource, name = call.path.split("?", 1)[0].rstrip("/").split("/")
        out.append((call.method, resource, name))
    return out
