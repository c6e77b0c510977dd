"""``bootstrap sandbox up --hub`` end to end through the CLI: register the sandbox cluster, then ask the hub.

The newcomer's path in hub mode: start the sandbox with a hub, source its env, run the
registration, and ``status --hub`` lists the cluster with labels matching customer.yaml;
after customer.yaml changes, ``status --hub`` names the label that differs (exit 1).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from bootstrap import hub
from tests.fixtures.world import ROOT
from tests.unit.test_output_schema import kind


def cli(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=directory,
        timeout=600,
        check=False,
    )


def sourced(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = shlex.split(value)[0] if value else ""
    return out


def test_sandbox_up_hub_register_and_status(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    up = cli(tmp_path, {}, "sandbox", "up", "--hub", "--dir", str(directory))
    try:
        assert up.returncode == 0, up.stderr
        assert "hub (Argo CD)" in up.stderr
        env = sourced(directory / "sandbox.env")
        customer = directory / "customer.yaml"
        doc = yaml.safe_load(customer.read_text())
        assert doc["hub"]["context"] == "hub" and Path(doc["hub"]["kubeconfig"]).is_file()

        steps = cli(directory, env, "plan", str(customer), "--only", "cluster-register")
        assert steps.returncode == 2, steps.stderr  # changes planned, nothing written
        run = cli(directory, env, "run", str(customer), "--only", "cluster-register")
        assert run.returncode == 0, run.stderr

        status = cli(directory, env, "status", "--hub", str(customer), "--output", "json")
        assert status.returncode == 0, status.stderr + status.stdout
        doc_out = json.loads(status.stdout)
        assert kind(doc_out) == "statusHub"  # the documented JSON Schema
        [entry] = doc_out["hubs"]
        [cluster] = entry["clusters"]
        assert cluster["cluster"] == "kuvaq" and cluster["state"] == "matches", cluster
        assert cluster["labels"][hub.KUBERNETES_VERSION] == "1.33"
        assert '"config"' not in json.dumps(cluster)  # never the Secret's config (the token)

        doc["kit"]["addons"] = ["cert-manager"]
        customer.write_text(yaml.safe_dump(doc, sort_keys=False))
        differs = cli(directory, env, "status", "--hub", str(customer))
        assert differs.returncode == 1, differs.stderr
        addon = hub.addon_label(doc["kit"]["repo"], "external-dns")
        assert "differs" in differs.stdout and f"~ {addon}: true -> false" in differs.stdout, differs.stdout
    finally:
        down = cli(tmp_path, {}, "sandbox", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
