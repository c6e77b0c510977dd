"""The sandbox's emulator process: GitHub, Slack, OpsGenie, JSM Ops and Kubernetes on loopback.

``bootstrap sandbox up`` starts this module detached; it seeds the emulators,
writes ``endpoints.json`` into the sandbox directory (the signal that it is
ready) and serves until SIGTERM. Keeping all emulators in one process means
one pid to stop and one place to read call logs from (``/_emulator/calls``).

With ``--customers N`` it also seeds customers ``c001``..``cNNN`` for fleet
runs and benchmarks. Each gets its own Kubernetes emulator: every customer has
a cluster of its own, and the Argo CD objects (``argocd-cm`` and friends) are
per cluster, so customers sharing one would overwrite each other's accounts.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

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
    args = parser.parse_args()
    directory: Path = args.dir.resolve()

    github, slack, opsgenie, kube = GitHubEmulator(), SlackEmulator(), OpsGenieEmulator(), KubeEmulator()
    jsm = JsmEmulator()
    names = seed.customer_names(args.customers)
    clusters = {name: KubeEmulator() for name in names}
    emulators = (github, slack, opsgenie, jsm, kube, *clusters.values())
    for emu in emulators:
        emu.start()
        emu.faults.latency = args.latency
    seeds = seed.seed_all(github, slack, opsgenie, directory, jsm=jsm)
    seed.seed_customers(github, names)
    kubeconfig = kube.write_kubeconfig(directory / "kubeconfig", context="sandbox")
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
    }
    tmp = directory / "endpoints.json.tmp"
    tmp.write_text(json.dumps(ready, indent=2))
    tmp.replace(directory / "endpoints.json")
    stop.wait()
    for emu in emulators:
        emu.stop()


if __name__ == "__main__":
    main()
