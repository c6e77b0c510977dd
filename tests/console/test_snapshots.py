"""Snapshots of the console a person reads: plan, run, status and destroy on the sandbox.

One customer goes through the whole life (plan, run, re-run, status, destroy) with the default
concurrency, each command as a person sees it on a terminal (colour, and ``NO_COLOR=1``) and as a
pipe gets it. Each transcript is checked for what must hold whatever the timing:

- every line is attributable: it is the header, the summary, a notice, a line of the step block
  it stands in, or (piped progress) starts with its step's id;
- each step has one block, and the summary's counts add up to the seven steps;
- no secret value (tokens, generated passwords and keys, read back from Vault) appears;
- piped and ``NO_COLOR`` output carry no escape sequence at all; a piped line is not cut at 80
  columns; the colour terminal does get colour.

Then the transcript is normalised and compared with ``tests/console/snapshots/<name>.txt``. What
legitimately varies is normalised: loopback ports, the test's directory and Vault prefix, times,
ids the services generate. Steps run concurrently and blocks are flushed whole in the order steps
finish, so the blocks are compared as units in step order, and piped progress lines as a sorted
set (a step may report the same wait more than once).

To accept a changed console: ``BOOTSTRAP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest
tests/console/test_snapshots.py`` rewrites the snapshots; review them with ``git diff``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from steps import STEPS
from tests.console import terminal
from tests.console.terminal import Capture
from tests.fixtures.vault import OpenBao
from tests.fixtures.world import World, open_world

pytestmark = pytest.mark.e2e

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("BOOTSTRAP_UPDATE_SNAPSHOTS") == "1"
IDS = [cls.id for cls in STEPS if "standalone" in cls.modes]  # the sandbox customer is standalone
CUSTOMER = "kuvaq"
DESTROY_PROMPT = r"Destroy all of the above for customer \w+\?.*: "
DESTROYED = ("argocd-dir", "deploy-key", "slack-channel")
"""What the snapshot's real destroy removes (GitHub, Vault and Slack only: seconds, not minutes)."""


@dataclass
class Scenario:
    """Every capture of the customer's life, by snapshot name, and the secrets to look for."""

    world: World
    captures: dict[str, Capture] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    declined_json: Capture | None = None
    """``destroy -o json`` declined at the terminal, stdout to a file."""
    writes: dict[str, list[str]] = field(default_factory=dict)
    """Writes any service received during a capture, for the captures that must make none."""


SECRET_KEYS = re.compile(r"password|private|secret|token|api_key")
"""Vault keys holding a secret (not the public half of the deploy key, not an OAuth client id)."""


def _vault_secrets(world: World) -> set[str]:
    """Every secret bootstrap stored in Vault for the customer (passwords, private key, API keys)."""
    client = world.vault.client
    found: set[str] = set()
    pending = [f"{world.vault.prefix}/{CUSTOMER}/"]
    while pending:
        path = pending.pop()
        for name in client.list(path.rstrip("/")):
            if name.endswith("/"):
                pending.append(path + name)
            else:
                data = client.read(path + name) or {}
                found |= {v for k, v in data.items() if SECRET_KEYS.search(k) and len(v) >= 8}
    return found


def _writes(world: World) -> list[str]:
    return [f"{server.name} {c.method} {c.path}" for server in world.servers for c in server.log.writes]


@pytest.fixture(scope="module")
def scenario(openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with open_world(tmp_path_factory.mktemp("console"), openbao, light_manifest=True) as world:
        env = {**world.cli_env()}
        env.pop("NO_COLOR", None)
        plain = {**env, "NO_COLOR": "1"}
        path = str(world.path)
        s = Scenario(world)
        s.secrets |= {v for k, v in world.env.items() if SECRET_KEYS.search(k.lower()) and len(v) >= 8}
        s.secrets.add(world.vault.token)

        def tty(name: str, argv: list[str], answer: tuple[str, str] | None = None) -> None:
            s.captures[f"{name}.tty"] = terminal.run_tty(argv, env, world.dir, answer)
            s.captures[f"{name}.tty-nocolor"] = terminal.run_tty(argv, plain, world.dir, answer)

        tty("plan-fresh", ["plan", path])
        s.captures["plan-fresh.piped"] = terminal.run_piped(["plan", path], env, world.dir)
        # Applying all seven is the slow part: once, piped, where its progress lines stay in the
        # transcript (on a terminal they are live lines, erased; the re-run shows those).
        s.captures["run.piped"] = terminal.run_piped(["run", path], env, world.dir)
        s.secrets |= _vault_secrets(world)
        tty("run-again", ["run", path])
        s.captures["plan-clean.piped"] = terminal.run_piped(["plan", path], env, world.dir)
        tty("status", ["status", path])
        s.captures["status.piped"] = terminal.run_piped(["status", path], env, world.dir)
        world.reset_logs()
        tty("destroy-declined", ["destroy", path], (DESTROY_PROMPT, "n"))
        s.declined_json = terminal.run_tty(
            ["destroy", path, "-o", "json"], env, world.dir, (DESTROY_PROMPT, "n"), world.dir / "out.json"
        )
        s.writes["destroy-declined"] = _writes(world)
        world.reset_logs()
        s.captures["destroy-unconfirmed.piped"] = terminal.run_piped(["destroy", path], env, world.dir)
        s.writes["destroy-unconfirmed"] = _writes(world)
        # The removal itself for the steps that need no playbook: a whole destroy takes minutes
        # (the declined destroy above already shows all seven steps' destroy plan).
        removal = ["destroy", path, "--yes", *(a for step in DESTROYED for a in ("--only", step))]
        s.captures["destroy.piped"] = terminal.run_piped(removal, env, world.dir)
        yield s


EXPECTED_CODES = {
    "plan-fresh": 2,
    "run": 0,
    "run-again": 0,
    "plan-clean": 0,
    "status": 0,
    "destroy-declined": 0,
    "destroy-unconfirmed": 4,
    "destroy": 0,
}
NAMES = [
    "plan-fresh.tty",
    "plan-fresh.tty-nocolor",
    "plan-fresh.piped",
    "run.piped",
    "run-again.tty",
    "run-again.tty-nocolor",
    "plan-clean.piped",
    "status.tty",
    "status.tty-nocolor",
    "status.piped",
    "destroy-declined.tty",
    "destroy-declined.tty-nocolor",
    "destroy-unconfirmed.piped",
    "destroy.piped",
]
STEP_COMMANDS = ("plan-fresh", "run", "run-again", "plan-clean", "destroy-declined", "destroy")


# -- the transcript's structure -------------------------------------------------------------------


@dataclass
class Transcript:
    """A step command's console, taken apart: blocks per step, progress lines, the rest in order."""

    blocks: dict[str, list[str]] = field(default_factory=dict)
    progress: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    """Lines outside the blocks that are neither progress nor the summary (header, notices, prompt)."""
    summary: str = ""
    outside: list[str] = field(default_factory=list)
    """``other`` and the summary, in the order they were printed."""


TIMING = re.compile(r"\d+/\d+ workloads ready in ")
"""Progress that only a slow moment shows (a poll that finds a workload not yet Available): checked
for attribution like any line, left out of the snapshot."""
PROGRESS = re.compile(rf"^  ({'|'.join(map(re.escape, IDS))}): ")
SUMMARY = re.compile(rf"^{CUSTOMER}: ")


def parse(text: str) -> Transcript:
    """Split a console into step blocks and the lines around them; fail on an unattributed line.

    A block starts with ``▶ <step>`` and holds the indented lines that follow; an indented line
    that names another step (``  <other>: …``) is that step's progress line printed between blocks.
    """
    t = Transcript()
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("▶ "):
            current = line[2:].strip()
            assert current in IDS, f"block of an unknown step: {line!r}"
            assert current not in t.blocks, f"two blocks for {current}"
            t.blocks[current] = []
            continue
        progress = PROGRESS.match(line)
        if current is not None and line.startswith("  ") and (progress is None or progress[1] == current):
            t.blocks[current].append(line)
            continue
        current = None
        if progress is not None:
            t.progress.append(line)
            continue
        if SUMMARY.match(line):
            assert not t.summary, f"two summary lines: {t.summary!r}, {line!r}"
            t.summary = line
        else:
            t.other.append(line)
        t.outside.append(line)
    return t


def check_attribution(name: str, t: Transcript) -> None:
    """Outside the blocks only the header, notices, the summary, progress and prompts may stand."""
    command = name.split(".")[0]
    allowed = (
        re.compile(r"^(run|plan|destroy|destroy-plan) customer \w+: \d+ step\(s\)$"),
        re.compile(r"^! "),
        re.compile(DESTROY_PROMPT + r"n?$"),
        re.compile(r"^nothing done$"),
    )
    for line in t.other:
        assert any(p.match(line) for p in allowed), f"{name}: a line no step owns: {line!r}"
    if command != "destroy-declined":
        assert t.summary, f"{name}: no summary line"


def check_counts(name: str, t: Transcript) -> None:
    """Every step has its block; the summary's step counts and the changed blocks add up to 7
    (to the steps selected, for the real destroy)."""
    selected = DESTROYED if name.startswith("destroy.") else IDS
    assert sorted(t.blocks) == sorted(selected), f"{name}: blocks {sorted(t.blocks)}"
    for step, lines in t.blocks.items():
        closing = lines[-1] if lines else ""
        assert step in closing, f"{name}: {step}'s block does not end with its outcome: {closing!r}"
    if not t.summary:
        return
    _, _, counted = t.summary.partition(": ")
    counted = counted.split(" — ")[0]
    words = re.findall(r"(\d+) (?:steps? )?(done|up to date|failed|waiting|skipped|interrupted)", counted)
    steps = sum(int(n) for n, _ in words)
    changed = sum(1 for lines in t.blocks.values() if re.search(r": \d+ change\(s\)$", lines[-1]))
    assert steps + changed == len(selected), f"{name}: {t.summary!r} and {changed} changed blocks"


def check_streams(name: str, capture: Capture, secrets: set[str]) -> None:
    mode = name.split(".")[1]
    for secret in secrets:
        assert secret not in capture.raw and secret not in capture.stdout, f"{name}: a secret is shown"
    if mode in ("piped", "tty-nocolor"):
        escapes = sorted(set(terminal.ESCAPE.findall(capture.raw)))
        assert not escapes and "\x1b" not in capture.raw, f"{name}: escape sequences {escapes}"
    else:
        assert terminal.SGR.search(capture.raw), f"{name}: a terminal run without colour"
    longest = max((len(line) for line in capture.text.splitlines()), default=0)
    assert longest < terminal.SCREEN_COLUMNS, f"{name}: a line filled the emulated screen"


# -- normalisation and comparison -------------------------------------------------------------------


TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


def normalise(text: str, world: World) -> str:
    return normalise_text(text, str(world.dir), world.vault.prefix)


def normalise_text(text: str, directory: str, vault_prefix: str) -> str:
    text = text.replace(directory, "<DIR>")
    text = text.replace(vault_prefix, "<VAULT_PREFIX>")
    text = re.sub(r"(127\.0\.0\.1|localhost):\d+", r"\1:<PORT>", text)
    # Times keep their width (9999-99-99 99:99:99), so a table's columns stay aligned.
    text = re.sub(TIME, lambda m: re.sub(r"\d", "9", m[0]), text)
    text = re.sub(r"\b\d+(\.\d+)?s\b", "<SECONDS>", text)
    text = re.sub(r"\b[0-9a-f]{40}\b", "<SHA>", text)
    text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<UUID>", text)
    text = re.sub(r"SHA256:[A-Za-z0-9+/=]{43}", "SHA256:<FINGERPRINT>", text)
    return text


def canonical(name: str, capture: Capture, world: World) -> str:
    """The snapshot's text: exit code, then blocks in step order, progress sorted, the rest in order."""
    text = normalise(capture.text, world)
    out = [f"# exit {capture.code}"]
    if name.split(".")[0] not in STEP_COMMANDS:
        return "\n".join([*out, text.rstrip("\n")]) + "\n"
    t = parse(text)
    out += t.outside[:1]
    for step in IDS:
        if step in t.blocks:
            out += [f"▶ {step}", *t.blocks[step]]
    if t.progress:
        steady = {line for line in t.progress if not TIMING.search(line)}
        out += ["# progress lines (any order, repeats dropped):", *sorted(steady)]
    out += t.outside[1:]
    return "\n".join(out) + "\n"


def compare(name: str, actual: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"{path} did not exist; written now: review it, then commit")
        return
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "now")
        )
        pytest.fail(f"{name} differs from {path.name} (BOOTSTRAP_UPDATE_SNAPSHOTS=1 accepts it):\n{diff}")


@pytest.mark.parametrize("name", NAMES)
def test_console(scenario: Scenario, name: str) -> None:
    capture = scenario.captures[name]
    command = name.split(".")[0]
    assert capture.code == EXPECTED_CODES[command], f"{name} exited {capture.code}:\n{capture.text}"
    check_streams(name, capture, scenario.secrets)
    if command in STEP_COMMANDS:
        t = parse(capture.text)
        check_attribution(name, t)
        if command != "destroy-declined" or t.blocks:
            check_counts(name, t)
    compare(name, canonical(name, capture, scenario.world))


def test_piped_lines_are_not_cut_at_80_columns(scenario: Scenario) -> None:
    """A pipe has no width: ids, targets and notes stay whole however long the line."""
    plan = scenario.captures["plan-fresh.piped"].text
    install = next(line for line in plan.splitlines() if line.strip().startswith("missing: "))
    assert len(install) > 80
    assert install.rstrip().endswith("NetworkPolicy/argocd-server-network-policy"), install[-80:]
    status = scenario.captures["status.piped"].text
    assert all("…" not in line for line in status.splitlines()), status
    assert "alertmanager-opsgenie  done" in status
    # And a terminal 100 columns wide shows the status table whole too.
    assert "…" not in scenario.captures["status.tty"].text


def test_the_declined_destroy_named_the_customer_and_showed_the_plan(scenario: Scenario) -> None:
    for name in ("destroy-declined.tty", "destroy-declined.tty-nocolor"):
        t = parse(scenario.captures[name].text)
        assert t.blocks, f"{name}: the prompt came before the plan"
        prompt = next(line for line in t.other if line.startswith("Destroy all"))
        assert f"customer {CUSTOMER}?" in prompt
        assert t.other[-1] == "nothing done"


def test_a_declined_destroy_with_json_output_prints_the_plan_it_did_not_carry_out(scenario: Scenario) -> None:
    """stdout still gets its one document: the destroy plan, exit code 0, and a notice that nothing
    was destroyed (the person read the plan as text on the terminal)."""
    capture = scenario.declined_json
    assert capture is not None and capture.code == 0, capture
    assert capture.stdout.startswith("{"), capture.stdout[:40]  # nothing but the document on stdout
    doc = json.loads(capture.stdout)
    assert doc["mode"] == "destroy-plan" and doc["exit_code"] == 0
    assert "declined at the prompt: nothing was destroyed" in doc["notices"]
    assert {s["id"] for s in doc["steps"]} == set(IDS)
    assert "Destroy all" in capture.text and '"exit_code"' not in capture.text  # the terminal got text


def test_a_destroy_declined_or_without_yes_writes_nothing(scenario: Scenario) -> None:
    """Answering no at the prompt, or no --yes without a terminal (exit 4): not one write anywhere."""
    assert scenario.writes == {"destroy-declined": [], "destroy-unconfirmed": []}
    assert "--yes" in scenario.captures["destroy-unconfirmed.piped"].text
