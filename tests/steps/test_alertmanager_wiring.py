"""The Alertmanager config and its wiring into kube-prometheus-stack, held against the real artefacts.

Routes are proven with the real ``amtool config routes test`` (Debian's
prometheus-alertmanager): noise goes nowhere, nobody is paged for info or warning.
The wiring is proven with the chart's own files (vendor/kube-prometheus-stack/): the
values argocd-dir renders, merged the way Helm merges values files over the chart's
values.yaml, make the chart's secret template render no Secret of its own and point
the operator at bootstrap's Secret, in the namespace Alertmanager runs in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap import config
from sandbox import customer as sandbox_customer
from sandbox import github_seed
from steps import alertmanager_opsgenie
from steps.argocd_dir import ArgocdDir
from tests.fixtures.world import World, deep_merge

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ENDPOINTS = sandbox_customer.Endpoints(
    "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", "http://127.0.0.1:4", "kc", "file:///m"
)


def vendor() -> Path:
    env = os.environ.get("BOOTSTRAP_VENDOR_DIR")
    root = Path(__file__).resolve().parents[2]
    for candidate in ([Path(env)] if env else []) + [
        root.parent / "shared" / "vendor",
        Path("/work/shared/vendor"),
    ]:
        if (candidate / "kube-prometheus-stack").is_dir():
            return candidate / "kube-prometheus-stack"
    pytest.skip("the shared vendor directory is not available")


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    cfg = config.CustomerConfig.model_validate(sandbox_customer.document(ENDPOINTS))
    text = alertmanager_opsgenie.dump(alertmanager_opsgenie.render(cfg, "og-key", "xoxb-token"))
    path = tmp_path / "alertmanager.yaml"
    path.write_text(text)
    subprocess.run([AMTOOL, "check-config", str(path)], check=True, capture_output=True, timeout=60)
    return path


ROUTES = [
    # labels, receivers amtool must answer
    ({"alertname": "InfoInhibitor", "severity": "none", "namespace": "x"}, "null"),
    ({"alertname": "Watchdog", "severity": "none"}, "null"),
    ({"alertname": "KubePodCrashLooping", "severity": "info"}, "slack"),
    ({"alertname": "KubePodCrashLooping", "severity": "warning"}, "slack"),
    ({"alertname": "KubeNodeNotReady", "severity": "critical"}, "opsgenie,slack"),
    ({"alertname": "SomethingWithoutSeverity"}, "slack"),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES, ids=[r[1] + ":" + str(r[0]) for r in ROUTES])
def test_amtool_routes(rendered: Path, labels: dict[str, str], receivers: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    out = subprocess.run(
        [AMTOOL, "config", "routes", "test", f"--config.file={rendered}", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == receivers


def test_chart_inhibit_rules_are_kept(rendered: Path) -> None:
    ours = yaml.safe_load(rendered.read_text())["inhibit_rules"]
    chart = yaml.safe_load((vendor() / "values.yaml").read_text())["alertmanager"]["config"]["inhibit_rules"]

    def normal(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The chart writes `severity = critical`, ours quotes the value: the same matcher.
        strip = re.compile(r'"([^"]*)"')
        return [
            {k: [strip.sub(r"\1", m) for m in v] if k.endswith("matchers") else v for k, v in r.items()}
            for r in rules
        ]

    assert normal(ours) == normal(chart)


_GUARD = re.compile(
    r"^\{\{- if and \(\.Values\.alertmanager\.enabled\) \(not \.Values\.alertmanager\.alertmanagerSpec\."
    r"useExistingSecret\) \}\}$"
)


def chart_renders_its_secret(values: Mapping[str, Any]) -> bool:
    """The guard of the chart's templates/alertmanager/secret.yaml, evaluated on ``values``."""
    first = (vendor() / "templates-alertmanager-secret.yaml").read_text().splitlines()[0]
    assert _GUARD.match(first), f"the chart's secret template changed its guard: {first}"
    am = values.get("alertmanager") or {}
    return bool(am.get("enabled")) and not bool((am.get("alertmanagerSpec") or {}).get("useExistingSecret"))


def test_rendered_values_make_the_chart_use_our_secret(world: World) -> None:
    summary, _, _ = world.run((ArgocdDir,))
    assert summary.results[0].status == "done", summary.results[0].message
    git = world.github.read_tree(*sandbox_customer.INFRA_REPO.split("/"), "main")
    customer = yaml.safe_load(git["argocd/values/base.yaml"])
    kit = yaml.safe_load(github_seed.section_files("base", "v1.4")["base/values.yaml"])
    # Helm coalesces the values file over the chart's values.yaml (maps merge, scalars override).
    section = deep_merge(kit, customer)
    component = section["components"]["kube-prometheus-stack"]
    chart_defaults = yaml.safe_load((vendor() / "values.yaml").read_text())
    effective = deep_merge(chart_defaults, component["values"])
    assert chart_renders_its_secret(chart_defaults)  # without our values the chart owns the Secret
    assert not chart_renders_its_secret(effective)
    spec = effective["alertmanager"]["alertmanagerSpec"]
    am = world.session().context.config.alerting.alertmanager
    assert spec["configSecret"] == am.secret_name != "alertmanager-kube-prometheus-stack-alertmanager"
    assert component["namespace"] == am.namespace  # configSecret is read from Alertmanager's namespace
