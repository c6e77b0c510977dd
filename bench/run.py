"""Benchmark of gitops-bootstrap against a sandbox with injected latency (issues 8 and 14).

Run from the project root: ``.venv/bin/python bench/run.py [--latency 0.05] [--fleet 10]``
(about 15 minutes on 2 cores, most of it Ansible setting up the fleets' customers).
It starts its own sandbox (``bootstrap sandbox up --latency L --customers N``, which installs the real
Argo CD manifest from the vendor dir) in a temporary directory, drives the CLI in subprocesses exactly as
a user would, reads the emulators' call logs over ``/_emulator/calls`` and prints one report, each figure
next to its target: full run vs the latency-only critical-path bound, Ansible's fixed cost per playbook
start and per object, the no-op re-run, calls per step vs a justified minimum, fleet runs and fleet no-ops
(``--parallel 10`` vs 1; measured on ``--fleet`` customers each and extrapolated to 50 from the measured
per-customer CPU cost when fewer), the peak memory of a fleet run, start-up, and the sandbox's own CPU.

How calls are attributed: every step is run alone (``--only ID -p 1``, in dependency order) on a fresh
customer, with the logs cleared before each; calls a playbook makes are told apart by time (the bench puts
an ``ansible-playbook`` shim first on PATH that logs each playbook's start and end). Vault calls go through
an in-process forwarding proxy (no latency: Vault stays real) so they are counted too. The shared rate
budgets are turned off (``BOOTSTRAP_RATE_*=0``): the emulators impose no limits, and a fleet figure would
otherwise measure the budget, not the tool.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bootstrap import engine  # noqa: E402
from bootstrap.clients.ansible import AnsibleRunner  # noqa: E402
from bootstrap.step import Step  # noqa: E402
from sandbox.proxy import ForwardingProxy  # noqa: E402
from steps import STEPS  # noqa: E402

EMULATED = ("github", "slack", "opsgenie", "kube")
"""Services whose calls carry the injected latency (Vault is real and undelayed)."""
_DISCOVERY = re.compile(r"^/(version|api|apis|api/v1|apis/[^/]+/[^/]+)$")
HEAVY = ("github", "slack_sdk", "hvac", "kubernetes", "ansible_runner", "opsgenie_sdk", "pydantic")
"""Modules ``bootstrap --help`` must not import."""

NOOP_MINIMUM: dict[str, tuple[int, str]] = {
    "argocd-dir": (
        7,
        "kit branch head, the three values files the render reads (base, the cloud, addons: components, "
        "chart repos and the catalog, each read by path), kit template tree, infra branch head, infra tree "
        "(unchanged files are known by blob SHA, no blob reads); fewer would need a cache of kit files",
    ),
    "deploy-key": (2, "list the repo's deploy keys, read the private half in Vault"),
    "argocd-users": (5, "argocd-cm, argocd-rbac-cm, argocd-secret, one Vault read per user (2)"),
    "github-oauth": (4, "Vault record of the app, argocd-cm, argocd-secret, Grafana's secret"),
    "slack-channel": (3, "list channels (finds archived too), members, history (the 'connected' message)"),
    "alertmanager-opsgenie": (
        4,
        "list integrations by team, the heartbeat (dead-man's switch), Vault key, the Alertmanager Secret",
    ),
    "argocd-install": (
        19,
        "Namespace (manifest digest), one read per namespaced kind of the real manifest (9: a list per kind, "
        "whose Secret list also answers for the repo, kit and initial admin Secrets, or a get for the single "
        "StatefulSet), one label-selected list per cluster-scoped kind (CRD, ClusterRole, "
        "ClusterRoleBinding: 3), AppProject, root Application, deploy key in Vault, and from GitHub "
        "the infra branch head, root.yaml and project.yaml (3)",
    ),
}
"""Per step: (reads needed to observe that nothing changed, why). Kube discovery is counted apart."""

FLEET_TARGET = 50
"""The fleet size the issue's targets are stated for."""


# -- the sandbox --------------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    method: str
    path: str
    status: int
    at: float
    write: bool

    @property
    def discovery(self) -> bool:
        return self.service == "kube" and self.method == "GET" and bool(_DISCOVERY.match(self.path))


@dataclass
class Sandbox:
    """A sandbox started for this bench, its call logs, and a way to run the CLI against it."""

    dir: Path
    env: dict[str, str]
    urls: dict[str, list[str]]
    proxy: ForwardingProxy
    playbook_log: Path

    def customer(self, name: str) -> Path:
        return self.dir / "inventory" / name / "customer.yaml"

    def clear(self) -> None:
        for urls in self.urls.values():
            for url in urls:
                _http("DELETE", f"{url}/_emulator/calls")
        self.proxy.log.clear()

    def calls(self) -> list[Call]:
        out = [
            Call("vault", c.method, c.path, c.status, c.at, c.write)
            for c in list(self.proxy.log.calls)
            if not c.path.endswith("/login")
        ]
        for service, urls in self.urls.items():
            for url in urls:
                for c in json.loads(_http("GET", f"{url}/_emulator/calls"))["calls"]:
                    out.append(Call(service, c["method"], c["path"], c["status"], c["at"], c["write"]))
        return out

    def measure(self, *args: str) -> Run:
        """Run the CLI with fresh call logs; the run keeps the calls it caused."""
        self.clear()
        run = self.cli(*args)
        run.calls = self.calls()
        return run

    def cli(self, *args: str) -> Run:
        self.playbook_log.write_text("")
        cpu, started = _children_cpu(), time.monotonic()
        proc = subprocess.Popen(
            [*BOOTSTRAP, *args],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sampler = RssSampler(proc.pid)
        sampler.start()
        stdout, stderr = proc.communicate()
        sampler.stop()
        wall, cpu = time.monotonic() - started, _children_cpu() - cpu
        windows = [line.split() for line in self.playbook_log.read_text().splitlines()]
        playbooks = [(float(start), float(end)) for start, end in windows]
        return Run(proc.returncode, wall, stdout, stderr, playbooks, cpu, sampler.peak, sampler.peak_main)

    def sandbox_cpu(self) -> float:
        """CPU seconds the sandbox's processes (emulators, OpenBao, Alertmanagers) have used so far."""
        pids = json.loads((self.dir / "pids.json").read_text())
        return sum(_tree_cpu(int(pid)) for pid in pids.values() if pid)


@dataclass
class Run:
    rc: int
    wall: float
    stdout: str
    stderr: str
    playbooks: list[tuple[float, float]]
    cpu: float
    """CPU seconds of the process and of everything it ran (Ansible included)."""
    peak_rss: int = 0
    """Peak memory (bytes, summed PSS) of the process and everything it ran, sampled every 0.1 s."""
    peak_rss_main: int = 0
    """Peak RSS (bytes) of the bootstrap process alone (its VmHWM)."""
    calls: list[Call] = field(default_factory=list)

    @property
    def playbook_seconds(self) -> float:
        return sum(end - start for start, end in self.playbooks)

    def in_playbook(self, call: Call) -> bool:
        return any(start <= call.at <= end for start, end in self.playbooks)

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError:
            raise SystemExit(
                f"bootstrap exited {self.rc} without a JSON document; its stderr ends:\n{self.stderr[-3000:]}"
            ) from None


BOOTSTRAP = [sys.executable, "-m", "bootstrap"]


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (index 0 = state); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _tree_cpu(root: int) -> float:
    """utime+stime of ``root`` and its live descendants, plus what their reaped children used."""
    total = 0
    for pid in _descendants(root):
        fields = _proc_stat(pid)
        if fields:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICK


def _pss(pid: int) -> int:
    """A process's proportional set size in bytes: shared pages split among their users, so a sum over
    a tree (ansible-playbook forks its workers) counts each page once; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class RssSampler:
    """Samples the summed PSS of a process tree (the CLI and its playbooks) until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_main = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in _descendants(self.pid):
                total += _pss(pid)
            self.peak = max(self.peak, total)
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_main = max(self.peak_main, int(line.split()[1]) * 1024)
            except OSError:
                pass
            self._stop.wait(0.1)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _http(method: str, url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as resp:
        return str(resp.read().decode())


def start_sandbox(directory: Path, latency: float, customers: int, hub: bool = False) -> Sandbox:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTSTRAP_RATE_")}
    subprocess.run(
        [
            *BOOTSTRAP,
            "sandbox",
            "up",
            "--dir",
            str(directory),
            "--latency",
            str(latency),
            "--customers",
            str(customers),
            *(["--hub"] if hub else []),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    for line in (directory / "sandbox.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    endpoints = json.loads((directory / "endpoints.json").read_text())
    urls = {s: [endpoints[s]] for s in ("github", "slack", "opsgenie", "kube")}
    urls["kube"] += [c["kube"] for c in endpoints["customers"].values()]
    # The emulators impose no rate limit; the shared budgets would only measure themselves.
    env.update({f"BOOTSTRAP_RATE_{s.upper()}": "0" for s in ("github", "slack", "opsgenie")})
    shim_dir = directory / "shim"
    shim_dir.mkdir()
    real = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    playbook_log = directory / "playbooks.log"
    shim = shim_dir / "ansible-playbook"
    shim.write_text(
        f'#!/bin/sh\nstart=$(date +%s.%N)\n"{real}" "$@"\nrc=$?\n'
        f'echo "$start $(date +%s.%N)" >> "{playbook_log}"\nexit $rc\n'
    )
    shim.chmod(0o755)
    env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    files = [directory / "customer.yaml", *sorted((directory / "inventory").glob("*/customer.yaml"))]
    proxy = ForwardingProxy(yaml.safe_load(files[0].read_text())["vault"]["url"])
    proxy.start()
    for path in files:  # every customer reaches Vault through the counting proxy
        doc = yaml.safe_load(path.read_text())
        doc["vault"]["url"] = proxy.url
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Sandbox(directory, env, urls, proxy, playbook_log)


def stop_sandbox(sb: Sandbox) -> None:
    sb.proxy.stop()
    subprocess.run([*BOOTSTRAP, "sandbox", "down", "--dir", str(sb.dir)], capture_output=True, check=False)


# -- measuring ----------------------------------------------------------------------------------------


@dataclass
class StepCalls:
    """What one step did when run alone."""

    step: str
    wall: float
    tool: dict[str, list[Call]] = field(default_factory=dict)
    """Calls by the tool itself per service (discovery excluded)."""
    discovery: int = 0
    playbook_calls: int = 0
    playbooks: int = 0
    playbook_seconds: float = 0.0
    changes: int = 0

    def count(self, services: Sequence[str] = (*EMULATED, "vault"), writes: bool | None = None) -> int:
        return sum(1 for s in services for c in self.tool.get(s, []) if writes is None or c.write == writes)


def attribute(sb: Sandbox, customer: str, order: list[Step]) -> dict[str, StepCalls]:
    """Run each step alone (dependency order) and attribute every call to it."""
    out: dict[str, StepCalls] = {}
    for step in order:
        sb.clear()
        # --skip-checks: the calls attributed are the step's own (the preflight is measured apart)
        run = sb.cli(
            "run", str(sb.customer(customer)), "--only", step.id, "-p", "1", "-o", "json", "--skip-checks"
        )
        if run.rc != 0:
            raise SystemExit(f"bootstrap run --only {step.id} exited {run.rc}:\n{run.stderr[-3000:]}")
        sc = StepCalls(step.id, run.wall, playbooks=len(run.playbooks), playbook_seconds=run.playbook_seconds)
        result = run.json()["steps"][0]
        sc.changes = len((result.get("plan") or {}).get("changes") or [])
        for call in sb.calls():
            if run.in_playbook(call):
                sc.playbook_calls += 1
            elif call.discovery:
                sc.discovery += 1
            else:
                sc.tool.setdefault(call.service, []).append(call)
        out[step.id] = sc
    return out


def longest_chain(order: list[Step], weight: dict[str, float]) -> tuple[float, list[str]]:
    """The heaviest path along ``requires`` (the steps are already in dependency order)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for step in order:
        before = max((best[r] for r in step.requires if r in best), default=(0.0, []), key=lambda b: b[0])
        best[step.id] = (before[0] + weight[step.id], [*before[1], step.id])
    return max(best.values(), key=lambda b: b[0])


def help_startup(runs: int) -> tuple[float, float, list[str]]:
    """Median seconds of ``bootstrap --help`` and of ``python -c pass``; heavy modules --help imports."""
    script = Path(sys.executable).parent / "bootstrap"
    cmd = [str(script)] if script.exists() else BOOTSTRAP

    def median(argv: list[str]) -> float:
        times = []
        for _ in range(runs):
            started = time.monotonic()
            subprocess.run(argv, capture_output=True, check=True)
            times.append(time.monotonic() - started)
        return statistics.median(times)

    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bootstrap", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line}
    return median([*cmd, "--help"]), median([sys.executable, "-c", "pass"]), sorted(imported & set(HEAVY))


def fleet(sb: Sandbox, mode: str, names: Sequence[str], parallel: int, *extra: str) -> Run:
    run = sb.measure(
        mode, *(str(sb.customer(n)) for n in names), "--parallel", str(parallel), "-o", "json", *extra
    )
    doc = run.json()
    bad = [
        c["customer"] for c in doc["customers"] if c["exit_code"] not in ((0,) if mode == "run" else (0, 2))
    ]
    if bad:
        raise SystemExit(
            f"fleet {mode} -p {parallel}: customers {bad} did not succeed:\n{run.stderr[-3000:]}"
        )
    return run


@dataclass(frozen=True)
class AnsibleCost:
    start_wall: float
    object_wall: float
    start_cpu: float
    object_cpu: float


def ansible_cost(sb: Sandbox, lat: float, customer: str, small: int = 1, large: int = 41) -> AnsibleCost:
    """Ansible's own cost per playbook start and per object: apply.yml on ``small`` then ``large`` new
    ConfigMaps in a scratch namespace of ``customer``'s cluster, each playbook's wall minus the latency of
    the calls it made, and its CPU (best of two each), fitted as fixed + per object x n. CPU is the figure
    to trust on a busy machine (wall then includes waiting for a core)."""
    doc = yaml.safe_load(sb.customer(customer).read_text())
    kubeconfig, context = doc["cluster"]["kubeconfig"], doc["cluster"].get("context")
    runner = AnsibleRunner()
    serial = iter(range(10_000))

    def own(n: int) -> tuple[float, float]:
        best, best_cpu = math.inf, math.inf
        for _ in range(2):
            batch = next(serial)
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-ansible"}}
            objects = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"bench-{batch}-{i}", "namespace": "bench-ansible"},
                    "data": {"i": str(i)},
                }
                for i in range(n - 1)
            ]
            sb.clear()
            started, cpu = time.monotonic(), _children_cpu()
            runner.apply([ns, *objects], "bench", {}, kubeconfig, context)
            wall, cpu = time.monotonic() - started, _children_cpu() - cpu
            calls = sum(1 for c in sb.calls() if c.service == "kube")
            best, best_cpu = min(best, wall - lat * calls), min(best_cpu, cpu)
        return best, best_cpu

    (one, one_cpu), (many, many_cpu) = own(small), own(large)
    per_object, per_object_cpu = (many - one) / (large - small), (many_cpu - one_cpu) / (large - small)
    return AnsibleCost(one - per_object * small, per_object, one_cpu - per_object_cpu * small, per_object_cpu)


def extrapolate(n: int, p1: Run, p10: Run, to: int = FLEET_TARGET) -> tuple[float, float, float]:
    """Estimated walls of ``to`` customers at --parallel 1 and 10 from runs of ``n``, and the speed-up.

    Sequential wall grows linearly. The parallel wall can be no less than the CPU all customers need
    spread over the cores (the measured CPU per customer, Ansible included), nor than ceil(to/10) waves
    of one customer's sequential wall: the larger of the two is an optimistic (low) estimate, so the
    speed-up printed is an upper estimate.
    """
    per_wall, per_cpu = p1.wall / n, p10.cpu / n
    cores = os.cpu_count() or 1
    seq = per_wall * to
    par = max(per_cpu * to / cores, math.ceil(to / 10) * per_wall)
    return seq, par, seq / par


def print_speedup(n: int, p1: Run, p10: Run, what: str = "customers") -> None:
    """The speed-up for ``FLEET_TARGET`` ``what`` next to its target: measured, or extrapolated from ``n``."""
    if n >= FLEET_TARGET:
        print(f"  target >= 7x: {verdict(p1.wall / p10.wall >= 7)}")
        return
    seq, par, est = extrapolate(n, p1, p10)
    print(
        f"  {FLEET_TARGET} {what}, estimated: --parallel 1 {seq:.0f} s, "
        f"--parallel 10 >= {par:.0f} s (CPU-bound on {os.cpu_count()} cores), "
        f"speed-up <= {est:.1f}x   target >= 7x: {verdict(est >= 7)}"
    )


def median_wall(sb: Sandbox, runs: int, *args: str) -> float:
    walls = []
    for _ in range(runs):
        run = sb.cli(*args)
        if run.rc not in (0, 2):
            raise SystemExit(f"bootstrap {' '.join(args)} exited {run.rc}:\n{run.stderr[-2000:]}")
        walls.append(run.wall)
    return statistics.median(walls)


# -- report -------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def table(rows: Sequence[Sequence[object]]) -> Iterator[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [
            str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ]
        yield "  " + "  ".join(cells)


def report_run(lat: float, order: list[Step], first: dict[str, StepCalls], full: Run, noop: Run) -> None:
    full_calls, noop_calls = full.calls, noop.calls
    section("full run: one fresh customer, default --parallel 4, vs the critical-path bound")
    latency_calls = {s: first[s].count(EMULATED) + first[s].playbook_calls for s in first}
    # Discovery is paid once per process, by the first step that reads the cluster.
    discovery = max(sc.discovery for sc in first.values())
    raw_s, raw_chain = longest_chain(order, {s: lat * n for s, n in latency_calls.items()})
    raw_s += lat * discovery
    ansible = {s: max(0.0, first[s].playbook_seconds - lat * first[s].playbook_calls) for s in first}
    with_s, chain = longest_chain(order, {s: lat * latency_calls[s] + ansible[s] for s in first})
    with_s += lat * discovery
    n_raw = sum(latency_calls[s] for s in raw_chain) + discovery
    by_playbooks = sum(first[s].playbook_calls for s in raw_chain)
    print(f"  longest chain by latency: {' -> '.join(raw_chain)}")
    print(f"    {n_raw} emulated calls ({discovery} kube discovery, {by_playbooks} made by playbooks)")
    print(f"  bound, latency only          = {n_raw} x {lat * 1000:.0f} ms = {raw_s:6.2f} s")
    extra = sum(ansible[s] for s in chain)
    print(f"  + Ansible on {' -> '.join(chain)}: {extra:.2f} s")
    print(
        "    (each playbook's time measured alone, minus the latency of its own calls already counted above)"
    )
    print(f"  bound with Ansible           = {with_s:6.2f} s")
    writes = sum(c.write and c.status < 400 for c in full_calls)
    print(f"  full run wall                = {full.wall:6.2f} s   ({len(full_calls)} calls, {writes} writes)")
    print(
        f"  ratio wall / latency-only bound {full.wall / raw_s:.2f}   target <= 1.6: "
        f"{verdict(full.wall / raw_s <= 1.6)}   (wall / bound with Ansible {full.wall / with_s:.2f})"
    )
    seconds = {s["id"]: s["seconds"] for s in full.json()["steps"]}
    rows: list[list[object]] = [["step", "alone s", "in full run s", "playbooks"]]
    rows += [[s, f"{first[s].wall:.2f}", f"{seconds.get(s, 0):.2f}", first[s].playbooks] for s in first]
    print("  where the time goes (step wall alone incl. process start-up, and inside the full run):")
    for line in table(rows):
        print("  " + line)
    print(
        f"  full run: {len(full.playbooks)} playbooks, {full.playbook_seconds:.1f} s of playbook time "
        f"(alone: {sum(sc.playbook_seconds for sc in first.values()):.1f} s); CPU {full.cpu:.1f} s "
        f"on {os.cpu_count()} cores"
    )

    section("no-op re-run of the same customer")
    ratio = noop.wall / full.wall
    noop_writes = [c for c in noop_calls if c.write and c.status < 400]
    print(f"  wall {noop.wall:.2f} s = {ratio:.3f} x first run   target <= 0.05: {verdict(ratio <= 0.05)}")
    print(
        f"  writes {len(noop_writes)} (GitHub, Slack, OpsGenie, Kubernetes, Vault)   "
        f"target 0: {verdict(not noop_writes)}"
    )
    print(
        f"  playbook runs {len(noop.playbooks)} (ansible-playbook shim on PATH)   "
        f"target 0: {verdict(not noop.playbooks)}"
    )
    by = {s: sum(1 for c in noop_calls if c.service == s) for s in (*EMULATED, "vault")}
    print(
        f"  calls {len(noop_calls)}: "
        + ", ".join(f"{s} {n}" for s, n in by.items())
        + f" (of which kube discovery {sum(c.discovery for c in noop_calls)}); CPU {noop.cpu:.2f} s"
    )


def report_ansible(cost: AnsibleCost, full: Run) -> None:
    section("Ansible's own cost (apply.yml on new ConfigMaps; wall minus the latency of its calls, and CPU)")
    print(
        f"  per playbook start: wall {cost.start_wall:.2f} s, CPU {cost.start_cpu:.2f} s   "
        f"per object: wall {cost.object_wall * 1000:.0f} ms, CPU {cost.object_cpu * 1000:.0f} ms"
    )
    print(
        f"  the full run started {len(full.playbooks)} playbooks: "
        f"{len(full.playbooks) * cost.start_cpu:.1f} s of CPU in start-ups alone; the real manifest's "
        "3 CRDs (~2 MB) cost far more than a ConfigMap each"
    )


def report_steps(first: dict[str, StepCalls], noop: dict[str, StepCalls]) -> None:
    section("calls per step, each run alone (Vault included; kube discovery and playbook calls apart)")
    rows: list[list[object]] = [
        [
            "step",
            "1st reads",
            "1st writes",
            "changes",
            "min 1st",
            "playbooks",
            "pb calls",
            "no-op",
            "min",
            "excess",
        ]
    ]
    for sid, sc in first.items():
        minimum = NOOP_MINIMUM[sid][0]
        n = noop[sid].count()
        rows.append(
            [
                sid,
                sc.count(writes=False),
                sc.count(writes=True),
                sc.changes,
                minimum + sc.changes,
                sc.playbooks,
                sc.playbook_calls,
                n,
                minimum,
                n - minimum,
            ]
        )
    for line in table(rows):
        print(line)
    total = sum(noop[s].count() for s in first)
    minimum = sum(NOOP_MINIMUM[s][0] for s in first)
    print(
        f"  no-op calls, all steps {total} vs justified minimum {minimum} (excess {total - minimum})   "
        f"target excess 0: {verdict(total <= minimum)}"
    )
    print("  no-op minimum ('min') = the reads needed to observe that nothing changed:")
    for sid, (n, why) in NOOP_MINIMUM.items():
        print(f"    {sid} {n}: {why}")
    print("  first-run minimum ('min 1st') = those reads + one write per planned change: a lower bound")
    print(
        f"  kube discovery per process: {max(sc.discovery for sc in noop.values())} calls on a no-op "
        f"(more on a first run: a kind missing from discovery, e.g. Application before its CRD, re-discovers)"
    )


def report_check(sb: Sandbox, customer: str) -> None:
    """`bootstrap check` (every preflight check, read-only) vs a `plan` of the same up-to-date customer."""
    section(f"preflight: `bootstrap check` vs `bootstrap plan` on the up-to-date customer {customer}")
    path = str(sb.customer(customer))
    check, plan = sb.measure("check", path), sb.measure("plan", path)
    bare = sb.measure("plan", path, "--skip-checks")
    if check.rc != 0 or plan.rc != 0:
        raise SystemExit(
            f"check exited {check.rc}, plan {plan.rc}:\n{check.stderr[-3000:]}{plan.stderr[-3000:]}"
        )
    writes = sum(c.write and c.status < 400 for c in check.calls)
    for name, run in (("check", check), ("plan", plan), ("plan --skip-checks", bare)):
        by = {s: sum(1 for c in run.calls if c.service == s) for s in (*EMULATED, "vault")}
        detail = ", ".join(f"{s} {n}" for s, n in by.items())
        print(f"  {name:<18} wall {run.wall:5.2f} s   calls {len(run.calls):3d} ({detail})")
    calls_ratio, wall_ratio = len(check.calls) / max(1, len(plan.calls)), check.wall / plan.wall
    print(
        f"  check / plan: calls {calls_ratio:.2f}, wall {wall_ratio:.2f}   target < 1: "
        f"{verdict(calls_ratio < 1 and wall_ratio < 1)}   "
        f"writes by check {writes} (target 0: {verdict(not writes)})"
    )


PARTS = ("steps", "fleet", "startup")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per emulated call (0.05)")
    parser.add_argument(
        "--fleet",
        type=int,
        default=10,
        help=f"fresh customers per fleet run (10); figures for {FLEET_TARGET} are extrapolated from them",
    )
    parser.add_argument("--runs", type=int, default=10, help="runs of each start-up command (10)")
    parser.add_argument(
        "--hub",
        type=int,
        default=0,
        help=f"instead of the rest: register N fresh clusters in one hub --parallel 10, N others "
        f"--parallel 1 (figures for {FLEET_TARGET} extrapolated)",
    )
    parser.add_argument(
        "--part",
        action="append",
        choices=PARTS,
        help="run only these parts of the bench (repeatable; default all): `steps` = full run, no-op, "
        "Ansible's cost, calls per step, preflight; `fleet` = fleet plan, run, memory and no-op; "
        "`startup` = --help, status, validate",
    )
    args = parser.parse_args()
    parts = set(args.part or PARTS)
    if args.hub:
        hub_bench(args.latency, args.hub)
        return
    lat, n = args.latency, args.fleet
    if n < 2:
        parser.error("--fleet must be at least 2 (one customer is not a fleet run)")
    # The bench customers are standalone: a hub-only step (cluster-register) is not theirs.
    order = engine.order([cls() for cls in STEPS if "standalone" in cls.modes])
    # c001: per-step attribution; c002: full run and no-op; then one fresh fleet per --parallel setting.
    names = [f"c{i:03d}" for i in range(1, 3 + 2 * n)]
    fleet10, fleet1 = names[2 : 2 + n], names[2 + n :]
    started, cpu_started = time.monotonic(), _children_cpu() + _self_cpu()
    directory = Path(tempfile.mkdtemp(prefix="bootstrap-bench-"))
    print(
        f"gitops-bootstrap bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{lat * 1000:.0f} ms per emulated call (Vault real, undelayed), {os.cpu_count()} CPUs, "
        f"real Argo CD manifest, sandbox in {directory}",
        flush=True,
    )
    sb = start_sandbox(directory, lat, len(names))
    sandbox_started = sb.sandbox_cpu()
    try:
        if "steps" in parts:
            steps_bench(sb, lat, order)
        if "fleet" in parts:
            fleet_bench(sb, n, names, fleet10, fleet1)
        if "startup" in parts:
            startup_bench(sb, args.runs)

        section("the sandbox's own CPU")
        sandbox = sb.sandbox_cpu() - sandbox_started
        tool = _children_cpu() + _self_cpu() - cpu_started
        print(
            f"  emulators + OpenBao + Alertmanagers {sandbox:.0f} s of CPU, the tool (Ansible included, "
            f"and the bench's Vault proxy) {tool:.0f} s: the sandbox's share {sandbox / (sandbox + tool):.0%}"
        )
        print("  hub mode figures: `bench/run.py --hub N` (a sandbox of its own)")
        print(f"\nbench finished in {time.monotonic() - started:.0f} s")
    finally:
        stop_sandbox(sb)
        shutil.rmtree(directory, ignore_errors=True)


def steps_bench(sb: Sandbox, lat: float, order: list[Step]) -> None:
    """c001: per-step attribution; c002: full run and no-op; Ansible's cost; calls per step; preflight."""
    first = attribute(sb, "c001", order)
    noop_steps = attribute(sb, "c001", order)
    full = sb.measure("run", str(sb.customer("c002")), "-o", "json")
    noop = sb.measure("run", str(sb.customer("c002")), "-o", "json")
    if full.rc or noop.rc:
        raise SystemExit(f"the full run exited {full.rc}, the no-op {noop.rc}:\n{full.stderr[-3000:]}")
    report_run(lat, order, first, full, noop)
    report_ansible(ansible_cost(sb, lat, "c001"), full)
    report_steps(first, noop_steps)
    report_check(sb, "c002")


def fleet_bench(sb: Sandbox, n: int, names: list[str], fleet10: list[str], fleet1: list[str]) -> None:
    """Fleet plan, fleet run (p10 vs p1) with its peak memory, and the fleet no-op."""
    section(f"fleet plan: {2 * n} fresh customers, `bootstrap plan` --parallel 1 vs 10")
    plan1, plan10 = fleet(sb, "plan", names[2:], 1), fleet(sb, "plan", names[2:], 10)
    print(
        f"  --parallel 1: {plan1.wall:6.2f} s   --parallel 10: {plan10.wall:6.2f} s   "
        f"speed-up {plan1.wall / plan10.wall:.1f}x   (CPU {plan1.cpu:.1f} s / {plan10.cpu:.1f} s)"
    )

    section(f"fleet run: {n} fresh customers --parallel 10, {n} others --parallel 1")
    run10, run1 = fleet(sb, "run", fleet10, 10), fleet(sb, "run", fleet1, 1)
    speedup = run1.wall / run10.wall
    print(
        f"  --parallel 1: {run1.wall:6.1f} s   --parallel 10: {run10.wall:6.1f} s   "
        f"speed-up {speedup:.1f}x on {n}   "
        f"CPU per customer {run10.cpu / n:.1f} s (p10) / {run1.cpu / n:.1f} s (p1)"
    )
    print_speedup(n, run1, run10)
    rss, main_rss, at_once = run10.peak_rss, run10.peak_rss_main, min(n, 10)
    print(
        f"  peak memory of the --parallel 10 run ({at_once} customers at once): {rss / 2**20:.0f} MiB "
        f"(summed PSS of the tool + its playbooks; the tool's own peak RSS {main_rss / 2**20:.0f} MiB)"
    )
    # A 50-customer run keeps 10 at once. The tool's own memory is taken to grow in proportion (an
    # upper bound: most of it is the interpreter and its imports); the playbooks' share only up to the
    # process's playbook slots: up to 3 playbooks of one customer run together (argocd-users,
    # github-oauth, alertmanager-opsgenie), so a few customers in flight already fill them.
    slots = int(sb.env.get("BOOTSTRAP_PLAYBOOKS") or os.cpu_count() or 1)
    share = (rss - main_rss) * min(3 * 10, slots) / min(3 * at_once, slots)
    est = main_rss * 10 / at_once + share
    print(
        f"  {FLEET_TARGET} customers (10 at once), estimated: {est / 2**20:.0f} MiB "
        f"(the tool x {10 / at_once:.1f}, playbooks bounded by {slots} slots)   "
        f"target <= 1 GiB: {verdict(est <= 2**30)}"
    )

    both = [*fleet10, *fleet1]
    section(f"fleet no-op: the {len(both)} customers just set up, re-run --parallel 1 vs 10")
    nop1, nop10 = fleet(sb, "run", both, 1), fleet(sb, "run", both, 10)
    speedup = nop1.wall / nop10.wall
    print(
        f"  --parallel 1: {nop1.wall:6.2f} s   --parallel 10: {nop10.wall:6.2f} s   "
        f"speed-up {speedup:.1f}x on {len(both)}   CPU per customer {nop10.cpu / len(both):.2f} s"
    )
    print_speedup(len(both), nop1, nop10)
    print(
        f"  writes {sum(c.write and c.status < 400 for c in nop1.calls + nop10.calls)}, "
        f"playbooks {len(nop1.playbooks) + len(nop10.playbooks)} in the two no-op fleet runs"
    )


def startup_bench(sb: Sandbox, runs: int) -> None:
    """--help vs python -c pass, status and validate (medians)."""
    section("start-up")
    help_s, pass_s, heavy = help_startup(runs)
    print(
        f"  bootstrap --help: median {help_s:.3f} s of {runs} runs   "
        f"python -c pass: {pass_s:.3f} s   ratio {help_s / pass_s:.1f}   "
        f"target <= 5: {verdict(help_s <= 5 * pass_s)}"
    )
    print(f"  vendor SDKs / pydantic imported by --help (-X importtime): {', '.join(heavy) or 'none'}")
    path = str(sb.customer("c002"))
    for command in ("status", "validate"):
        wall = median_wall(sb, runs, command, path)
        print(f"  bootstrap {command}: median {wall:.3f} s   target <= 0.3 s: {verdict(wall <= 0.3)}")


def hub_bench(lat: float, n: int) -> None:
    """Hub mode: ``cluster-register`` of ``n`` fresh clusters into one hub at --parallel 10 and of
    ``n`` others at --parallel 1 (the registration requires no other step, so it runs alone)."""
    if n < 2:
        raise SystemExit("--hub must be at least 2 (one cluster is not a fleet run)")
    names = [f"c{i:03d}" for i in range(1, 1 + 2 * n)]
    directory = Path(tempfile.mkdtemp(prefix="bootstrap-bench-hub-"))
    print(
        f"gitops-bootstrap hub bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{lat * 1000:.0f} ms per emulated call, {os.cpu_count()} CPUs, sandbox in {directory}",
        flush=True,
    )
    sb = start_sandbox(directory, lat, len(names), hub=True)
    try:
        section(f"hub: register {n} clusters --parallel 10, {n} others --parallel 1 (cluster-register)")
        only = ("--only", "cluster-register")
        run10, run1 = fleet(sb, "run", names[:n], 10, *only), fleet(sb, "run", names[n:], 1, *only)
        print(
            f"  --parallel 1: {run1.wall:6.1f} s   --parallel 10: {run10.wall:6.1f} s   "
            f"speed-up {run1.wall / run10.wall:.1f}x on {n}   CPU per cluster {run10.cpu / n:.1f} s"
        )
        print_speedup(n, run1, run10, "clusters")
        again = fleet(sb, "run", names, 10, *only)
        writes = sum(c.write and c.status < 400 for c in again.calls)
        print(f"  no-op re-run of all {len(names)} --parallel 10: {again.wall:.1f} s, {writes} writes")
    finally:
        stop_sandbox(sb)
        shutil.rmtree(directory, ignore_errors=True)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
