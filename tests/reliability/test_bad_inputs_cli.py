"""Every malformed customer file is refused by ``bootstrap run`` before anything is contacted.

Each case of the shared corpus (tests/unit/bad_inputs.py) goes through the
real CLI in a subprocess, pointed at a live world: exit 4, one ``error:``
message naming the field (or the file), no traceback, no secret echoed, and no
call at all — every emulator's call log and the Vault proxy stay empty, and a
tripwire proxy in ``HTTP(S)_PROXY`` catches anything aimed elsewhere. Where a
case leaves them intact, the file's service URLs are pointed at the world, so a
call that should not happen would land in a call log rather than on the
network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.httpemu import EmulatorServer
from tests.fixtures.world import World
from tests.reliability.figures import Figures
from tests.unit.bad_inputs import BAD_INPUTS, BadInput

WORKERS = 4
# The default suite sends every third case through the CLI (all of them are also checked in-process by
# tests/unit); `.ci/reliability` (which sets BOOTSTRAP_CRASH_STRIDE) sends the whole corpus.
CASES = BAD_INPUTS if os.environ.get("BOOTSTRAP_CRASH_STRIDE") else BAD_INPUTS[::3]


def _pointed_at(world: World, content: bytes) -> bytes:
    """The case with its service URLs on the world's servers, where the case leaves them alone."""
    out = content.replace(b"url: https://vault.acme-sre.example", f"url: {world.vault_proxy.url}".encode())
    for section, url in (
        (b"github", world.github.url),
        (b"slack", world.slack.url + "/api/"),
        (b"alerting", world.opsgenie.url),
    ):
        header = b"\n" + section + b":\n"
        if out.count(header) == 1 and b"api_url" not in out:
            out = out.replace(header, header + b"  api_url: " + url.encode() + b"\n")
    return out


def _check(case: BadInput, path: Path, proc: subprocess.CompletedProcess[str]) -> list[str]:
    problems = []
    output = proc.stdout + proc.stderr
    if proc.returncode != 4:
        problems.append(f"exit {proc.returncode}")
    if "Traceback" in output:
        problems.append("traceback")
    if not proc.stderr.startswith("error: "):
        problems.append(f"no 'error:' message: {proc.stderr[:200]!r}")
    wanted = case.mentions or path.name
    if wanted not in proc.stderr:
        problems.append(f"message does not name {wanted!r}: {proc.stderr[:300]!r}")
    if case.secret and case.secret in output:
        problems.append("the secret is echoed")
    return problems


def test_bad_inputs_are_rejected_before_any_call(world: World, tmp_path: Path, figures: Figures) -> None:
    assert len(BAD_INPUTS) >= 60
    tripwire = EmulatorServer().start()
    env = {
        **world.cli_env(),
        "KUBECONFIG": str(world.kube.kubeconfig_path),
        "HTTP_PROXY": tripwire.url,
        "HTTPS_PROXY": tripwire.url,
        "ALL_PROXY": tripwire.url,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    world.reset_logs()

    def one(case: BadInput) -> tuple[BadInput, list[str]]:
        directory = tmp_path / re.sub(r"[^a-z0-9-]", "_", case.id)
        directory.mkdir()
        path = directory / "customer.yaml"
        path.write_bytes(_pointed_at(world, case.content))
        proc = subprocess.run(
            [sys.executable, "-m", "bootstrap", "run", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=directory,
            timeout=120,
            check=False,
        )
        return case, _check(case, path, proc)

    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = list(pool.map(one, CASES))
    finally:
        tripwire.stop()
    calls = {s.name: len(s.log.calls) for s in (*world.servers, tripwire) if s.log.calls}
    for case, problems in results:
        with figures.lock:
            figures.bad_inputs.add(not problems and not calls, f"{case.id}: {'; '.join(problems)}")
    failed = {case.id: problems for case, problems in results if problems}
    assert not failed, failed
    assert not calls, f"calls made while rejecting bad input: {calls}"
