"""``bootstrap sandbox up|down``: the local backends as detached processes.

``up`` starts the emulator process (sandbox/serve.py) and a real
OpenBao dev server, then writes ``sandbox.env`` (the tokens the customer file
references) and ``customer.yaml`` (every service pointed at loopback).
``down`` stops both by the pids recorded in ``pids.json``. ``up`` on a directory
whose sandbox still runs refuses unless ``replace`` is given: a new sandbox has new
ports and tokens, so silently replacing it would break every shell that sourced
the old ``sandbox.env``. A directory whose processes are gone is reused quietly.

With ``hub`` a second Kubernetes emulator runs the management Argo CD and every
customer file written names it (``hub:``, hub mode). For fleet runs and benchmarks,
``customers=N`` adds customers c001..cNNN with their files in
``inventory/<name>/customer.yaml`` (each on its own cluster), and ``latency``
delays every emulated call; OpenBao stays real and undelayed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bootstrap.errors import BootstrapError, ConfigError
from sandbox import customer, processes

READY_TIMEOUT = 30.0
_EXPECTED = {"emulators": "sandbox.serve", "openbao": "bao"}
"""What each recorded process's command line contains (a reused pid is not ours)."""


def up(
    directory: Path, latency: float = 0.0, customers: int = 0, replace: bool = False, hub: bool = False
) -> Iterator[str]:
    directory = directory.resolve()
    live = running(directory)
    if live and not replace:
        raise ConfigError(
            f"a sandbox is already running in {directory} (pids {', '.join(map(str, live))}); "
            f"use it (source {directory / 'sandbox.env'}), stop it with "
            f"`{command()} sandbox down --dir {shlex.quote(str(directory))}`, or pass --replace"
        )
    if (directory / "pids.json").exists():
        yield from down(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "endpoints.json").unlink(missing_ok=True)
    log = open(directory / "emulators.log", "ab")  # noqa: SIM115 - handed to the child
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.serve",
            "--dir",
            str(directory),
            "--latency",
            str(latency),
            "--customers",
            str(customers),
            *(["--hub"] if hub else []),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    # A real-looking token: the redaction registry masks it everywhere, so "root" would mask the word.
    # No "." in it: OpenBao refuses custom root token ids with a period.
    vault_token = f"sandbox-root-{secrets.token_hex(16)}"
    try:
        bao = processes.start_openbao(directory / "openbao", root_token=vault_token, detach=True)
    except BootstrapError:
        processes.stop_pid(child.pid, expect="sandbox.serve")  # nothing records its pid yet
        raise
    (directory / "pids.json").write_text(json.dumps({"emulators": child.pid, "openbao": bao.pid}))
    endpoints = _wait_ready(directory, child)
    ep = customer.Endpoints(
        github=endpoints["github"],
        slack=endpoints["slack"],
        opsgenie=endpoints["opsgenie"],
        vault=bao.url,
        kubeconfig=endpoints["kubeconfig"],
        argocd_manifest=endpoints["argocd_manifest"],
        jsm=endpoints["jsm"],
        hub_kubeconfig=(endpoints.get("hub") or {}).get("kubeconfig", ""),
    )
    _write_customer(directory / "customer.yaml", ep, "kuvaq", endpoints["argocd_sha256"])
    for name, cluster in endpoints["customers"].items():
        fleet_ep = dataclasses.replace(ep, kubeconfig=cluster["kubeconfig"])
        _write_customer(
            directory / "inventory" / name / "customer.yaml", fleet_ep, name, endpoints["argocd_sha256"]
        )
    env = customer.env(vault_token) | endpoints["env"]
    env_path = directory / "sandbox.env"
    env_path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    os.chmod(env_path, 0o600)
    hub_url = (endpoints.get("hub") or {}).get("kube")
    yield (
        f"sandbox up in {directory}: GitHub {ep.github}, Slack {ep.slack}, OpsGenie {ep.opsgenie}, "
        f"JSM {ep.jsm}, Kubernetes {endpoints['kube']}, OpenBao {ep.vault}"
        + (f", hub (Argo CD) {hub_url}" if hub_url else "")
    )
    file = shlex.quote(str(directory / "customer.yaml"))
    yield f"next: source {shlex.quote(str(env_path))} && {command()} run {file}"
    if endpoints["customers"]:
        yield (
            f"fleet: {len(endpoints['customers'])} more customers: "
            f"{command()} run {shlex.quote(str(directory))}/inventory/*/customer.yaml --parallel 10"
        )


def command() -> str:
    """How to call ``bootstrap`` so the hint works as typed: by name when PATH finds this very
    program, else by its full path (e.g. a virtualenv that is not activated)."""
    ours = Path(sys.executable).parent / "bootstrap"
    found = shutil.which("bootstrap")
    if found and (not ours.exists() or Path(found).resolve() == ours.resolve()):
        return "bootstrap"
    return shlex.quote(str(ours)) if ours.exists() else f"{shlex.quote(sys.executable)} -m bootstrap"


def running(directory: Path) -> list[int]:
    """The recorded sandbox processes in ``directory`` that are still alive."""
    try:
        pids = json.loads((directory / "pids.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [
        int(pid) for name, pid in pids.items() if pid and processes.is_running(int(pid), _EXPECTED.get(name))
    ]


def down(directory: Path) -> Iterator[str]:
    pids_path = directory.resolve() / "pids.json"
    try:
        pids = json.loads(pids_path.read_text())
    except FileNotFoundError:
        yield f"no sandbox running in {directory}"
        return
    for name, expect in _EXPECTED.items():
        pid = pids.get(name)
        if pid and processes.stop_pid(int(pid), expect=expect):
            yield f"stopped {name} (pid {pid})"
    pids_path.unlink(missing_ok=True)


def _write_customer(path: Path, ep: customer.Endpoints, name: str, sha256: str) -> None:
    doc = customer.document(ep, name)
    doc["argocd"]["sha256"] = sha256
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Sandbox customer: every service on loopback. Source sandbox.env first.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def _wait_ready(directory: Path, child: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    path = directory / "endpoints.json"
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        if child.poll() is not None:
            tail = (directory / "emulators.log").read_text(errors="replace")[-2000:]
            raise BootstrapError(f"the sandbox emulators exited with {child.returncode}:\n{tail}")
        time.sleep(0.05)
    raise BootstrapError(
        f"the sandbox emulators did not become ready in {READY_TIMEOUT:.0f}s; "
        f"see {directory / 'emulators.log'}"
    )
