"""Secret hygiene: after a run, no secret may be found anywhere the tool leaves text behind.

The secrets are everything the run loaded or generated: the tokens in the
world's environment and every value stored under the customer's Vault folder
(read back from OpenBao directly, so nothing the tool says is trusted). Each
is searched for as itself, JSON-escaped (a PEM in a JSON log has ``\\n``), in
base64, and line by line for multi-line values (a partial PEM is a leak too).

Where: the captured stdout/stderr/JSON of every CLI call, the checkpoint and
everything else under the world's directory (Ansible private data dirs land
there: the CLI runs with TMPDIR inside it), and ``/tmp/ansible-*`` and
``/tmp/bootstrap-ansible-*`` in case anything ignored TMPDIR.

Values that are not secret although Vault holds them (a public key, an OAuth
client id, which customer.yaml itself contains) are not searched for, nor are
values shorter than ``MIN_LENGTH``, nor PEM lines every key of that type
shares (the ``openssh-key-v1`` header), which would match by accident. The
``/tmp`` places are searched for this world's generated secrets only: the
sandbox tokens (and the inputs Vault stores as they are, like the OAuth client
secret) are the same in every world, and other runs on this machine (other
tests, other people, older versions) may legitimately be using them right now.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.world import World
from tests.reliability import harness

MIN_LENGTH = 8
NOT_SECRET = frozenset({"public_key", "client_id", "app_slug", "app_id"})
GLOBAL_PLACES = ("/tmp/ansible-*", "/tmp/bootstrap-ansible-*")
MAX_FILE = 20 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    where: str
    secret: str
    """Which secret (its name, never its value)."""

    def __str__(self) -> str:
        return f"{self.secret} found in {self.where}"


def secrets_of(world: World) -> dict[str, str]:
    """name → value of every secret this world's runs loaded or generated (as Vault holds them now)."""
    found = {f"env {k}": v for k, v in world.env.items()}
    for path, stored in harness.vault_tree(world).items():
        for key, value in stored.data.items():
            if key not in NOT_SECRET:
                found[f"vault {path}#{key}"] = value
    return found


def _common_pem_lines() -> frozenset[str]:
    from steps.deploy_key import generate

    return frozenset(line.strip() for line in generate()[0].splitlines())


_COMMON = _common_pem_lines()


def _needles(name: str, value: str) -> Iterable[tuple[str, str]]:
    if len(value) < MIN_LENGTH:
        return
    yield name, value
    escaped = json.dumps(value)[1:-1]
    if escaped != value:
        yield f"{name} (JSON-escaped)", escaped
    yield f"{name} (base64)", base64.b64encode(value.encode()).decode()
    for i, line in enumerate(value.splitlines()):
        line = line.strip()
        if len(line) >= 16 and line not in _COMMON and line != value:
            yield f"{name} (line {i + 1})", line


def _world_files(world: World) -> Iterable[Path]:
    return (p for p in world.dir.rglob("*") if p.is_file() and not p.is_symlink())


def _global_files() -> Iterable[Path]:
    for pattern in GLOBAL_PLACES:
        for top in glob.glob(pattern):
            root = Path(top)
            yield from ([root] if root.is_file() else (p for p in root.rglob("*") if p.is_file()))


def scan(
    world: World,
    texts: Iterable[tuple[str, str]] = (),
    secrets: dict[str, str] | None = None,
) -> list[Finding]:
    """Every place a secret of ``world`` shows up: in ``texts`` (label, text) and in files left behind."""
    wanted = secrets if secrets is not None else secrets_of(world)
    needles = [n for name, value in wanted.items() for n in _needles(name, value)]
    # The sandbox's inputs are the same in every world, also once stored in Vault (the OAuth client
    # secret given through the environment): in /tmp they may belong to any other run on this machine.
    shared = set(world.env.values())
    unique = [
        n
        for name, value in wanted.items()
        if not name.startswith("env ") and value not in shared
        for n in _needles(name, value)
    ]
    findings: list[Finding] = []

    def search(where: str, text: str, among: list[tuple[str, str]]) -> None:
        for name, needle in among:
            if needle in text:
                findings.append(Finding(where, name))

    for label, text in texts:
        search(label, text, needles)
    for files, among in ((_world_files(world), needles), (_global_files(), unique)):
        for path in files:
            try:
                if path.stat().st_size > MAX_FILE:
                    continue
                text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                continue
            search(str(path), text, among)
    return findings


def cli_texts(runs: Iterable[harness.CliRun]) -> list[tuple[str, str]]:
    """The captured output of CLI runs, labelled for findings."""
    out: list[tuple[str, str]] = []
    for i, run in enumerate(runs):
        out.append((f"run {i} ({' '.join(run.args)}) stdout", run.stdout))
        out.append((f"run {i} ({' '.join(run.args)}) stderr", run.stderr))
    return out


@dataclass
class Watch:
    """What ``watching`` saw: scans made while the tool ran, how many caught playbooks running."""

    findings: set[str]
    scans: int = 0
    scans_during_playbooks: int = 0


@contextlib.contextmanager
def watching(world: World) -> Iterator[Watch]:
    """Scan for secrets over and over while the body runs the tool: nothing may be on disk even briefly.

    Each scan re-reads the secrets from Vault (new ones appear as the run goes); a scan that found
    a playbook's private data dir (its encrypted vars file) counts as made during a playbook.
    """
    watch = Watch(set())
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                playbooks = any((world.dir / "tmp").glob("bootstrap-ansible-*/env/secret-vars.vault"))
                wanted = secrets_of(world)
                found = scan(world, secrets=wanted)
            except Exception:  # Vault busy, a directory vanishing under the walk: scan again
                stop.wait(0.1)
                continue
            watch.findings |= {str(f) for f in found}
            watch.scans += 1
            watch.scans_during_playbooks += playbooks
            stop.wait(0.2)  # often enough to catch a file that lives for a second

    thread = threading.Thread(target=loop, name="secret-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=120)
