"""Benchmark of gitops-bootstrap against a sandbox with injected latency (issue 8).

Run from the project root: ``.venv/bin/python bench/run.py [--latency 0.05] [--fleet 50] [--noop-fleet 8]``
(about 8 minutes on 2 cores; nearly half of it is Ansible setting up the no-op fleet).
It starts its own sandbox (``bootstrap sandbox up --latency L --customers N``) in a temporary directory,
drives the CLI in subprocesses exactly as a user would, reads the emulators' call logs over
``/_emulator/calls`` and prints one report: full run vs its critical-path bound, the no-op re-run, calls
per step vs a justified minimum, the fleet speed-up and start-up time, each next to its target.

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
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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
        5,
        "kit branch head, kit tree (catalog + template paths), catalog blob, infra branch head, infra tree "
        "(unchanged files are known by blob SHA, no blob reads)",
    ),
    "deploy-key": (2, "list the repo's deploy keys, read the private half in Vault"),
    "argocd-users": (5, "argocd-cm, argocd-rbac-cm, argocd-secret, one Vault read per user (2)"),
    "github-oauth": (4, "Vault record of the app, argocd-cm, argocd-secret, Grafana's secret"),
    "slack-channel": (3, "list channels (finds archived too), members, history (the 'connected' message)"),
    "alertmanager-opsgenie": (3, "list integrations by team, Vault key, the Alertmanager Secret"),
    "argocd-install": (
        11,
        "Namespace (manifest digest), one read per kind in the manifest (6 kinds: a list, or a get for a "
        "single object), repo Secret, root Application, initial admin Secret (must be gone), deploy key in "
        "Vault; the step gets the 3 CRDs one by one (+2): a cluster-wide CRD list is megabytes",
    ),
}
"""Per step: (reads needed to observe that nothing changed, why). Kube discovery is counted apart."""


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
        proc = subprocess.run(
            [*BOOTSTRAP, *args], env=self.env, cwd=self.dir, capture_output=True, text=True, check=False
        )
        wall, cpu = time.monotonic() - started, _children_cpu() - cpu
        windows = [line.split() for line in self.playbook_log.read_text().splitlines()]
        playbooks = [(float(start), float(end)) for start, end in windows]
        return Run(proc.returncode, wall, proc.stdout, proc.stderr, playbooks, cpu)


@dataclass
class Run:
    rc: int
    wall: float
    stdout: str
    stderr: str
    playbooks: list[tuple[float, float]]
    cpu: float
    """CPU seconds of the process and of everything it ran (Ansible included)."""
    calls: list[Call] = field(default_factory=list)

    @property
    def playbook_seconds(self) -> float:
        return sum(end - start for start, end in self.playbooks)

    def in_playbook(self, call: Call) -> bool:
        return any(start <= call.at <= end for start, end in self.playbooks)

    def json(self) -> Any:
        return json.loads(self.stdout)


BOOTSTRAP = [sys.executable, "-m", "bootstrap"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _http(method: str, url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as resp:
        return str(resp.read().decode())


def start_sandbox(directory: Path, latency: float, customers: int) -> Sandbox:
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


def fleet(sb: Sandbox, mode: str, names: Sequence[str], parallel: int) -> Run:
    run = sb.measure(mode, *(str(sb.customer(n)) for n in names), "--parallel", str(parallel), "-o", "json")
    doc = run.json()
    bad = [
        c["customer"] for c in doc["customers"] if c["exit_code"] not in ((0,) if mode == "run" else (0, 2))
    ]
    if bad:
        raise SystemExit(
            f"fleet {mode} -p {parallel}: customers {bad} did not succeed:\n{run.stderr[-3000:]}"
        )
    return run


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
        f"  ratio wall / bound: raw {full.wall / raw_s:.2f}, with Ansible {full.wall / with_s:.2f}   "
        f"target <= 1.25 (with Ansible): {verdict(full.wall / with_s <= 1.25)}"
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
    print(f"  wall {noop.wall:.2f} s = {ratio:.3f} x first run   target <= 0.1: {verdict(ratio <= 0.1)}")
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per emulated call (0.05)")
    parser.add_argument("--fleet", type=int, default=50, help="fresh customers in the fleet plan (50)")
    parser.add_argument(
        "--noop-fleet", type=int, default=8, help="customers set up, then re-run as a fleet (8)"
    )
    parser.add_argument("--help-runs", type=int, default=10, help="runs of bootstrap --help (10)")
    args = parser.parse_args()
    lat = args.latency
    order = engine.order([cls() for cls in STEPS])
    # c001: per-step attribution; c002: full run and no-op; then the no-op fleet; the plan fleet stays fresh.
    names = [f"c{i:03d}" for i in range(1, 3 + args.noop_fleet + args.fleet)]
    noop_names, fleet_names = names[2 : 2 + args.noop_fleet], names[2 + args.noop_fleet :]
    started = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="bootstrap-bench-"))
    print(
        f"gitops-bootstrap bench: {lat * 1000:.0f} ms per emulated call (Vault real, undelayed), "
        f"{os.cpu_count()} CPUs, sandbox in {directory}",
        flush=True,
    )
    sb = start_sandbox(directory, lat, len(names))
    try:
        first = attribute(sb, "c001", order)
        noop_steps = attribute(sb, "c001", order)
        full = sb.measure("run", str(sb.customer("c002")), "-o", "json")
        noop = sb.measure("run", str(sb.customer("c002")), "-o", "json")
        if full.rc or noop.rc:
            raise SystemExit(f"the full run exited {full.rc}, the no-op {noop.rc}:\n{full.stderr[-3000:]}")
        report_run(lat, order, first, full, noop)
        report_steps(first, noop_steps)
        report_check(sb, "c002")

        section(f"fleet plan: {len(fleet_names)} fresh customers, `bootstrap plan` --parallel 1 vs 10")
        plan1, plan10 = fleet(sb, "plan", fleet_names, 1), fleet(sb, "plan", fleet_names, 10)
        speedup = plan1.wall / plan10.wall
        print(
            f"  --parallel 1: {plan1.wall:6.2f} s   --parallel 10: {plan10.wall:6.2f} s   "
            f"speed-up {speedup:.1f}x   target >= 7x: {verdict(speedup >= 7)}   "
            f"(CPU {plan1.cpu:.1f} s / {plan10.cpu:.1f} s)"
        )

        section(f"fleet no-op: {len(noop_names)} customers set up by `run --parallel 10`, then re-run")
        setup = fleet(sb, "run", noop_names, 10)
        print(
            f"  setup, full runs --parallel 10: {setup.wall:.1f} s, {len(setup.playbooks)} playbooks, "
            f"CPU {setup.cpu:.0f} s ({setup.cpu / len(noop_names):.0f} s per customer: Ansible)"
        )
        run1, run10 = fleet(sb, "run", noop_names, 1), fleet(sb, "run", noop_names, 10)
        speedup = run1.wall / run10.wall
        print(
            f"  no-op --parallel 1: {run1.wall:6.2f} s   --parallel 10: {run10.wall:6.2f} s   "
            f"speed-up {speedup:.1f}x   target >= 7x: {verdict(speedup >= 7)}"
        )
        print(
            f"  writes {sum(c.write and c.status < 400 for c in run1.calls + run10.calls)}, "
            f"playbooks {len(run1.playbooks) + len(run10.playbooks)} in the two no-op fleet runs"
        )

        section("start-up")
        help_s, pass_s, heavy = help_startup(args.help_runs)
        print(
            f"  bootstrap --help: median {help_s:.3f} s of {args.help_runs} runs   "
            f"python -c pass: {pass_s:.3f} s   target < 0.3 s: {verdict(help_s < 0.3)}"
        )
        print(f"  vendor SDKs / pydantic imported by --help (-X importtime): {', '.join(heavy) or 'none'}")
        print(f"\nbench finished in {time.monotonic() - started:.0f} s")
    finally:
        stop_sandbox(sb)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
