"""The sandbox's emulator process: GitHub, Slack, OpsGenie, JSM Ops and Kubernetes on loopback.

``bootstrap sandbox up`` starts this module detached; it seeds the emulators,
writes ``endpoints.json`` into the sandbox directory (the signal that it is
ready) and serves until SIGTERM. Keeping all emulators in one process means
one pid to stop and one place to read call logs from (``/_emulator/calls``).

With ``--customers N`` it also seeds customers ``c001``..``cNNN`` for fleet
runs and benchmarks. With ``--hub`` a further Kubernetes emulator is the hub (hub
mode: the management Argo CD every customer cluster is registered in; sandbox/hub.py).
Each fleet customer gets its own Kubernetes emulator: every customer has
a cluster of its own, and the Argo CD objects (``argocd-cm`` and friends) are
per cluster, so customers sharing one would overwrite each other's accounts.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from sandbox import hub as sandbox_hub
from sandbox import seed
from sandbox.github import GitHubEmulator
from sandbox.jsm import JsmEmulator
from sandbox.kube import KubeEmulator
from sandbox.opsgenie import OpsGenieEmulator
from sandbox.slack import SlackEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="Seconds added to every call (benchmarks)."
    )
    parser.add_argument("--customers", type=int, default=0, help="Extra customers c001..cNNN to seed.")
    parser.add_argument("--hub", action="store_true", help="Also run a hub cluster with Argo CD (hub mode).")
    args = parser.parse_args()
    directory: Path = args.dir.resolve()

    github, slack, opsgenie, kube = GitHubEmulator(), SlackEmulator(), OpsGenieEmulator(), KubeEmulator()
    jsm = JsmEmulator()
    names = seed.customer_names(args.customers)
    clusters = {name: KubeEmulator() for name in names}
    hub = KubeEmulator() if args.hub else None
    emulators = (github, slack, opsgenie, jsm, kube, *clusters.values(), *([hub] if hub else []))
    for emu in emulators:
        emu.start()
        emu.faults.latency = args.latency
    seeds = seed.seed_all(github, slack, opsgenie, directory, jsm=jsm)
    seed.seed_customers(github, names)
    kubeconfig = kube.write_kubeconfig(directory / "kubeconfig", context="sandbox")
    hub_info: dict[str, str] = {}
    if hub is not None:
        sandbox_hub.install_argocd(hub)
        sandbox_hub.seed_gitops_repo(github)
        hub_kubeconfig = hub.write_kubeconfig(directory / "hub-kubeconfig", context=sandbox_hub.CONTEXT)
        hub_info = {"kube": hub.url, "kubeconfig": str(hub_kubeconfig)}
    customers = {
        name: {
            "kube": emu.url,
            "kubeconfig": str(emu.write_kubeconfig(directory / "inventory" / name / "kubeconfig", "sandbox")),
        }
        for name, emu in clusters.items()
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ready = {
        "github": github.url,
        "slack": slack.url,
        "opsgenie": opsgenie.url,
        "jsm": jsm.url,
        "kube": kube.url,
        "kubeconfig": str(kubeconfig),
        "argocd_manifest": seeds.argocd_manifest,
        "argocd_sha256": seeds.argocd_sha256,
        "env": seeds.extra_env,
        "customers": customers,
        "hub": hub_info,
    }
    tmp = directory / "endpoints.json.tmp"
    tmp.write_text(json.dumps(ready, indent=2))
    tmp.replace(directory / "endpoints.json")
    stop.wait()
    for emu in emulators:
        emu.stop()


if __name__ == "__main__":
    main()
