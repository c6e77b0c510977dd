"""Driving the CLI against a world, killing it at an exact write, and describing the end state.

The reliability tests share three things:

- ``run_cli``: ``python -m bootstrap ARGS`` in a subprocess (its own session and
  TMPDIR under the world's dir), with every server's ``after_write`` hook
  counting writes across GitHub, Slack, OpsGenie, Kubernetes and Vault; with
  ``kill_after=k`` the hook SIGKILLs the tool and everything it started
  (ansible-playbook included) the moment the k-th write has been answered —
  a crash with no chance to clean up, as a power cut would be;
- ``snapshot``: what a customer's onboarding left behind, with generated values
  (keys, passwords, ids) replaced by their shape, so two runs compare equal
  exactly when they created the same resources, no more and no fewer;
- ``check_invariants``: the cross-service facts that must hold after any
  successful run (the deploy key on GitHub is Vault's, the OpsGenie key in Vault
  is the integration's and the Alertmanager Secret's, …).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import yaml

from bootstrap.clients import github as github_client
from sandbox import customer as sandbox_customer
from steps import STEPS
from tests.fixtures.world import World

CUSTOMER = "kuvaq"
RUN = ("run", "customer.yaml", "-p", "1")
"""The whole workflow, steps one at a time so that the k-th write is the same write in every run."""
STEP_IDS = tuple(s.id for s in STEPS if "standalone" in s.modes)
AM_SECRET = "alertmanager-gitops-bootstrap"
DEFAULT_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@dataclass
class CliRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    writes: list[str] = field(default_factory=list)
    """``server METHOD path`` of every successful write, in the order they were answered."""
    killed_at: str | None = None

    def describe(self) -> str:
        return f"bootstrap {' '.join(self.args)} → {self.returncode}\n--- stderr ---\n{self.stderr[-4000:]}"


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (read from /proc before the kill reparents them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process it started (ansible-runner's pexpect child has its own session)."""
    for victim in [*_descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _start(world: World, args: tuple[str, ...], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m bootstrap ARGS`` in its own session (a process group to signal), TMPDIR in the world."""
    tmp = world.dir / "tmp"
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bootstrap", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**world.cli_env(), "TMPDIR": str(tmp), **(env or {})},
        cwd=world.dir,
        start_new_session=True,
    )


def run_cli(
    world: World,
    *args: str,
    kill_after: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    on_write: Callable[[int, str], bool] | None = None,
) -> CliRun:
    """Run the CLI against ``world``; with ``kill_after`` SIGKILL it right after that many writes.

    ``on_write(n, write)`` is called (in the server's thread) after the n-th write (``server METHOD
    path``); returning True kills too.
    """
    lock = threading.Lock()
    writes: list[str] = []
    killed: list[str] = []
    holder: dict[str, subprocess.Popen[str]] = {}

    def hook_for(server: Any) -> Any:
        def after_write(count: int) -> None:
            call = server.log.writes[count - 1]
            with lock:
                writes.append(f"{server.name} {call.method} {call.path}")
                kill = on_write is not None and on_write(len(writes), writes[-1])
                if (kill or len(writes) == kill_after) and "proc" in holder and not killed:
                    killed.append(writes[-1])
                    kill_tree(holder["proc"].pid)

        return after_write

    for server in world.servers:
        server.faults.after_write = hook_for(server)
    try:
        proc = _start(world, args, env)
        holder["proc"] = proc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            out, err = proc.communicate()
    finally:
        for server in world.servers:
            server.faults.after_write = None
    with lock:
        return CliRun(args, proc.returncode, out, err, list(writes), killed[0] if killed else None)


# -- signals at wall-clock times ------------------------------------------------------------------------

SURVIVOR_GRACE = 60.0
"""Seconds the processes of a killed run get to die (milliseconds suffice; a busy machine is slow)."""
QUIET_AFTER = 1.0
"""Seconds without a write demanded once every process of a killed run is gone."""


@dataclass
class SignalledRun:
    run: CliRun
    signalled: bool
    """False when the run had ended before the signal was due."""
    exit_seconds: float = 0.0
    """From the signal to the tool's exit."""
    survivors: list[str] = field(default_factory=list)
    """Command lines of processes of the run still alive ``SURVIVOR_GRACE`` after the signal."""
    writes_after_signal: int = 0
    """Writes answered after the signal (requests already in flight may land)."""
    late_writes: list[str] = field(default_factory=list)
    """Writes answered once every process of the run was gone: a leftover writer."""


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _mentioning(text: str) -> set[int]:
    """Live processes whose command line mentions ``text`` (the run's private dirs live under it)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and text in _cmdline(int(entry)) and _start_time(int(entry)):
            found.add(int(entry))
    return found


def run_cli_signalled(
    world: World,
    *args: str,
    after: float,
    sig: int = signal.SIGKILL,
    timeout: float = 300,
    at_write: int | None = None,
) -> SignalledRun:
    """Run the CLI and send ``sig`` to its process group ``after`` seconds (what a terminal or CI does).

    With ``at_write``, the signal goes as soon as the run has made that many writes (``after`` is
    then the longest wait): a moment the run is surely busy in some step's apply, however fast
    the machine, where a delay alone may come after the run has finished.

    Unlike ``kill_after``, only the process group is signalled: whatever the tool started in
    other sessions (ansible-runner's pexpect child, ansible's workers) must go by itself.
    """
    tmp = world.dir / "tmp"
    tmp.mkdir(exist_ok=True)
    lock = threading.Lock()
    writes: list[str] = []
    reached = threading.Event()

    def hook_for(server: Any) -> Any:
        def after_write(count: int) -> None:
            call = server.log.writes[count - 1]
            with lock:
                writes.append(f"{server.name} {call.method} {call.path}")
                if at_write is not None and len(writes) >= at_write:
                    reached.set()

        return after_write

    for server in world.servers:
        server.faults.after_write = hook_for(server)
    try:
        proc = _start(world, args)
        out_err: dict[str, str] = {}

        def read() -> None:
            out_err["out"], out_err["err"] = proc.communicate()

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + after
        while reader.is_alive() and not reached.is_set() and time.monotonic() < deadline:
            reader.join(timeout=0.01)
        if not reader.is_alive():
            return SignalledRun(CliRun(args, proc.returncode, out_err["out"], out_err["err"], writes), False)
        tree = {pid: _start_time(pid) for pid in [proc.pid, *_descendants(proc.pid)]}
        with lock:
            at_signal = len(writes)
        signalled = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        reader.join(timeout=timeout)
        if reader.is_alive():
            kill_tree(proc.pid)
            reader.join()
        exit_seconds = time.monotonic() - signalled

        def alive() -> set[int]:
            still = {pid for pid, started in tree.items() if started and _start_time(pid) == started}
            return still | _mentioning(str(tmp))

        deadline = signalled + SURVIVOR_GRACE
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = sorted(alive())
        survivor_lines = [f"{pid}: {_cmdline(pid)}" for pid in survivors]
        for pid in survivors:  # clean up for the next run, after noting them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with lock:
            gone_at = len(writes)
        time.sleep(QUIET_AFTER)
        with lock:
            late = writes[gone_at:]
            after_signal = len(writes) - at_signal
    finally:
        for server in world.servers:
            server.faults.after_write = None
    run = CliRun(args, proc.returncode, out_err.get("out", ""), out_err.get("err", ""), list(writes))
    return SignalledRun(run, True, exit_seconds, survivor_lines, after_signal, late)


# -- end state -------------------------------------------------------------------------------------------


def vault_tree(world: World) -> dict[str, Any]:
    """Every secret under the customer's Vault folder: path → (data, custom metadata), read directly."""
    root = f"{world.vault.prefix}/{CUSTOMER}"
    found: dict[str, Any] = {}
    todo = [""]
    while todo:
        sub = todo.pop()
        for name in world.vault.client.list(f"{root}/{sub}".rstrip("/")):
            if name.endswith("/"):
                todo.append(sub + name)
                continue
            stored = world.vault.client.read_version(f"{root}/{sub}{name}")
            if stored is not None:
                found[sub + name] = stored
    return found


def _shape(value: str) -> str:
    """Generated values differ between runs; only their presence is compared."""
    return "<set>" if value else "<empty>"


_LOOPBACK = re.compile(r"127\.0\.0\.1:\d+")


def snapshot(world: World) -> dict[str, Any]:
    """What the onboarding left behind, comparable between runs (see the module docstring)."""
    owner, repo = sandbox_customer.INFRA_REPO.split("/")
    gh = world.github
    keys = sorted((k["title"], k["read_only"]) for k in gh.deploy_keys(owner, repo))
    # Paths only: the rendered files name this world's emulator host; their content is proven
    # equal to the render by verify() and by the third run making no commit.
    tree = sorted(p for p in gh.read_tree(owner, repo, "main") if p.startswith("argocd/"))
    channel = world.slack.channel_by_name(f"alerts-{CUSTOMER}")
    slack = None
    if channel is not None:
        slack = {
            "archived": channel.archived,
            "private": channel.is_private,
            "topic": channel.topic,
            "purpose": channel.purpose,
            "members": sorted(channel.members),
            "messages": [m.get("text", "") for m in world.slack.messages(channel.id)],
        }
    integrations = sorted((i.name, i.type, i.enabled) for i in world.opsgenie.integrations.values())
    vault = {
        path: {
            "data": {k: _shape(v) for k, v in s.data.items()},
            "metadata": sorted(s.custom_metadata),
        }
        for path, s in vault_tree(world).items()
    }
    objects: dict[str, Any] = {}
    for obj in world.kube.objects():
        meta = obj.get("metadata") or {}
        if obj["kind"] == "Namespace" and meta.get("name") in DEFAULT_NAMESPACES:
            continue
        ident = f"{obj['apiVersion']} {obj['kind']} {meta.get('namespace') or '-'}/{meta['name']}"
        if obj["kind"] == "Secret":
            objects[ident] = sorted(obj.get("data") or {})
        elif obj["kind"] == "ConfigMap":
            # Values may name this world's emulators (e.g. Slack's API URL in the notifications
            # config): the loopback port is the only part that differs between worlds.
            data = (obj.get("data") or {}).items()
            objects[ident] = {k: _LOOPBACK.sub("127.0.0.1:PORT", v) for k, v in sorted(data)}
        else:
            objects[ident] = None
    return {
        "github": {"deploy_keys": keys, "argocd_tree": tree},
        "slack": slack,
        "opsgenie": integrations,
        "vault": vault,
        "cluster": objects,
    }


def diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty = converged to the same state)."""
    out: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in b:
                    out.append(f"{path}{key}: missing (orphan lost or not created)")
                elif key not in a:
                    out.append(f"{path}{key}: unexpected (duplicate or orphan)")
                else:
                    walk(f"{path}{key}.", a[key], b[key])
        elif a != b:
            out.append(f"{path.rstrip('.')}: expected {a!r}, got {b!r}")

    walk("", expected, actual)
    return out


def check_invariants(world: World) -> list[str]:
    """Cross-service facts every successful run must leave true; returns the violations."""
    problems: list[str] = []
    owner, repo = sandbox_customer.INFRA_REPO.split("/")
    tree = vault_tree(world)
    state = world.state()
    for sid in STEP_IDS:
        status = (state["steps"].get(sid) or {}).get("status")
        if status != "done":
            problems.append(f"checkpoint: {sid} is {status}, not done")
    if "deploy-key" in STEP_IDS:
        stored = tree.get("deploy-key")
        ours = [k for k in world.github.deploy_keys(owner, repo) if k["title"] == f"argocd-{CUSTOMER}"]
        if stored is None:
            problems.append("vault: no deploy-key")
        else:
            fp = github_client.fingerprint(stored.data["public_key"])
            got = [(github_client.fingerprint(k["key"]), k["read_only"]) for k in ours]
            if got != [(fp, True)]:
                problems.append(f"github: deploy keys {got}, expected exactly [({fp}, read-only)]")
            repo_secret = world.kube.get("v1", "Secret", "argocd", f"repo-{CUSTOMER}-infra")
            if "argocd-install" in STEP_IDS and repo_secret is not None:
                key = base64.b64decode(repo_secret["data"]["sshPrivateKey"]).decode()
                if key != stored.data["private_key"]:
                    problems.append("cluster: the repo Secret does not carry Vault's deploy key")
    if "alertmanager-opsgenie" in STEP_IDS:
        named = [i for i in world.opsgenie.integrations.values() if i.name == f"alertmanager-{CUSTOMER}"]
        stored = tree.get("alertmanager/opsgenie")
        secret = world.kube.get("v1", "Secret", "monitoring", AM_SECRET)
        if len(named) != 1:
            problems.append(f"opsgenie: {len(named)} integrations named alertmanager-{CUSTOMER}")
        elif stored is None or stored.data.get("api_key") != named[0].api_key:
            problems.append("vault: the OpsGenie key is not the integration's")
        elif secret is None:
            problems.append("cluster: no Alertmanager Secret")
        else:
            config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
            keys = [c["api_key"] for r in config["receivers"] for c in r.get("opsgenie_configs") or []]
            if keys != [named[0].api_key]:
                problems.append("cluster: the Alertmanager Secret does not carry the integration's key")
    if "argocd-users" in STEP_IDS:
        secret = world.kube.get("v1", "Secret", "argocd", "argocd-secret") or {}
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        for path, stored in tree.items():
            if not path.startswith("argocd/users/"):
                continue
            name = path.rsplit("/", 1)[1]
            hashed = data.get("admin.password" if name == "admin" else f"accounts.{name}.password")
            if hashed is None or not bcrypt.checkpw(stored.data["password"].encode(), hashed.encode()):
                problems.append(f"cluster: the password hash of {name} does not match Vault's password")
    return problems


def leftovers(world: World) -> list[str]:
    """Resources of ours still present after a destroy (empty = everything removed)."""
    owner, repo = sandbox_customer.INFRA_REPO.split("/")
    found: list[str] = []
    keys = [k for k in world.github.deploy_keys(owner, repo) if k["title"] == f"argocd-{CUSTOMER}"]
    found += [f"github deploy key {k['id']}" for k in keys]
    tree = world.github.read_tree(owner, repo, "main")
    found += [f"github file {p}" for p in tree if p.startswith("argocd/")]
    channel = world.slack.channel_by_name(f"alerts-{CUSTOMER}")
    if channel is not None and not channel.archived:
        found.append(f"slack channel {channel.name} (not archived)")
    found += [
        f"opsgenie integration {i.id}"
        for i in world.opsgenie.integrations.values()
        if i.name == f"alertmanager-{CUSTOMER}"
    ]
    found += [f"vault {p}" for p in vault_tree(world)]
    for obj in world.kube.objects():
        meta = obj.get("metadata") or {}
        if obj["kind"] == "Namespace":
            continue  # namespaces may be shared with what the platform installs later; steps keep them
        managers = {m.get("manager", "") for m in meta.get("managedFields") or []}
        if any(m.startswith("bootstrap-") for m in managers):
            owned = _owned_data(obj)
            if owned or obj["kind"] not in ("ConfigMap", "Secret"):
                found.append(f"cluster {obj['kind']} {meta.get('namespace')}/{meta['name']} {owned}")
    return found


def _owned_data(obj: dict[str, Any]) -> list[str]:
    """Data keys still owned by one of our field managers (shared objects may stay, empty of ours)."""
    keys: list[str] = []
    for entry in obj["metadata"].get("managedFields") or []:
        if not str(entry.get("manager", "")).startswith("bootstrap-"):
            continue
        fields = entry.get("fieldsV1") or {}
        for section in ("f:data", "f:stringData"):
            keys += [k.removeprefix("f:") for k in (fields.get(section) or {})]
    return keys


def owned_data_keys(world: World) -> dict[tuple[str, str, str], set[str]]:
    """(kind, namespace, name) → the data keys our field managers own now (record it before a destroy)."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for obj in world.kube.objects():
        meta = obj.get("metadata") or {}
        keys = set(_owned_data(obj))
        if keys and obj["kind"] in ("ConfigMap", "Secret"):
            out[(obj["kind"], meta.get("namespace") or "", meta["name"])] = keys
    return out


def remaining_keys(world: World, recorded: dict[tuple[str, str, str], set[str]]) -> list[str]:
    """Which of ``recorded`` are still in their objects' data, whoever owns them now."""
    found: list[str] = []
    for obj in world.kube.objects():
        meta = obj.get("metadata") or {}
        ident = (obj["kind"], meta.get("namespace") or "", meta["name"])
        left = recorded.get(ident, set()) & set(obj.get("data") or {})
        found += [f"cluster {ident[0]} {ident[1]}/{ident[2]} key {k}" for k in sorted(left)]
    return found


def decoded_secret(secret: dict[str, Any] | None) -> dict[str, str]:
    """A Secret's data, base64-decoded."""
    return {k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data") or {}).items()}


def read_version(world: World, path: str, version: int) -> str | None:
    """The ``password`` of one version of a KV v2 secret, read directly; None if deleted or destroyed."""
    import hvac

    client = hvac.Client(url=world.vault.url, token=world.vault.token)
    try:
        body = client.secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point="secret", raise_on_deleted_version=False
        )
    except hvac.exceptions.InvalidPath:
        return None
    data = (body.get("data") or {}).get("data")
    return str(data["password"]) if data else None


@dataclass(frozen=True)
class Reference:
    """A clean, uninterrupted run of the whole workflow in its own world."""

    snapshot: dict[str, Any]
    writes: list[str]
    steps: list[str]
    """The step that was running at each write."""
    seconds: float = 0.0
    """How long the clean run took (signals at random times are drawn from this span)."""


def running_step(world: World) -> str:
    """The step the checkpoint says is running (``?`` if none is, or it cannot be read)."""
    try:
        steps = world.state()["steps"]
    except (OSError, ValueError, KeyError):
        return "?"
    return next((sid for sid, rec in steps.items() if rec.get("status") == "running"), "?")


def reference(world: World) -> Reference:
    """Run the whole workflow cleanly in ``world`` and describe what it did and left."""
    steps: list[str] = []

    def attribute(_n: int, _write: str) -> bool:
        steps.append(running_step(world))
        return False

    started = time.monotonic()
    clean = run_cli(world, *RUN, on_write=attribute)
    seconds = time.monotonic() - started
    assert clean.returncode == 0, clean.describe()
    assert check_invariants(world) == []
    assert len(steps) == len(clean.writes) and "?" not in steps, steps
    return Reference(snapshot(world), clean.writes, steps, seconds)


def resume(world: World, ref: Reference, runs: list[CliRun]) -> list[str]:
    """Run to the end after a crash; what differs from the clean run ``ref`` (empty = converged).

    A further run must then make no write. Every run is appended to ``runs`` (for the secret scan).
    """
    problems: list[str] = []
    again = run_cli(world, *RUN)
    runs.append(again)
    if again.returncode != 0:
        return [f"re-run exited {again.returncode}: {again.stderr[-1500:]}"]
    problems += check_invariants(world)
    problems += diff(ref.snapshot, snapshot(world))
    third = run_cli(world, *RUN)
    runs.append(third)
    if third.returncode != 0 or third.writes:
        problems.append(f"a third run exited {third.returncode} with writes {third.writes}")
    return problems


def settle(world: World) -> None:
    """Run the whole workflow to the end (cheap when it already is) and fail loudly if it cannot."""
    done = run_cli(world, *RUN)
    assert done.returncode == 0, done.describe()
