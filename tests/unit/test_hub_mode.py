"""Hub mode without servers: which steps a customer has, and how status --hub compares labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bootstrap import config, hub, hub_status
from bootstrap.errors import ConfigError
from bootstrap.services import Services
from bootstrap.step import for_config
from sandbox import customer as sandbox_customer
from steps import STEPS

ENDPOINTS = sandbox_customer.Endpoints(
    "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", "http://127.0.0.1:4", "kubeconfig", ""
)


def load(hub_kubeconfig: str = "") -> config.CustomerConfig:
    ep = sandbox_customer.Endpoints(**{**ENDPOINTS.__dict__, "hub_kubeconfig": hub_kubeconfig})
    return config.parse_text(yaml.safe_dump(sandbox_customer.document(ep)))


def test_the_step_list_follows_the_mode() -> None:
    standalone, hubbed = load(), load("hub-kubeconfig")
    assert standalone.mode == "standalone" and hubbed.mode == "hub"
    alone, hubs = for_config(STEPS, standalone), for_config(STEPS, hubbed)
    assert [s.id for s in alone] == [c.id for c in STEPS if c.id != "cluster-register"]
    # argocd-users runs in both: in a hub, its accounts are the customer's own keys there.
    assert [s.id for s in hubs] == [c.id for c in STEPS]
    install = {s.id: s for s in hubs}["argocd-install"]
    assert "argocd-users" in install.requires
    assert "argocd-users" in {s.id: s for s in alone}["argocd-install"].requires


def test_the_hub_client_is_built_from_the_hub_section_only(tmp_path: Path) -> None:
    services = Services(load(), secrets=None, base_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no hub"):
        _ = services.hub_kube
    hubbed = Services(load("hub-kubeconfig"), secrets=None, base_dir=tmp_path)  # type: ignore[arg-type]
    assert hubbed.hub_kubeconfig == str(tmp_path / "hub-kubeconfig")
    assert hubbed.hub_kube.kubeconfig == str(tmp_path / "hub-kubeconfig") and hubbed.hub_kube.context == "hub"
    assert hubbed.kubeconfig == str(tmp_path / "kubeconfig")


def test_label_differences_name_only_our_labels() -> None:
    kit = "acme-sre/kit-core"
    want = {hub.KIT_VERSION: "v1.5", hub.addon_label(kit, "loki"): "true", hub.CLOUD: "aws"}
    live = {
        hub.KIT_VERSION: "v1.4",
        hub.addon_label(kit, "loki"): "true",
        hub.addon_label(kit, "velero"): "false",
        "team.example.com/owner": "sre",  # another tool's label: shown, never a difference
    }
    assert hub_status.differences(live, want, kit) == [
        f"~ {hub.KIT_VERSION}: v1.4 -> v1.5",
        f"+ {hub.CLOUD}: aws",
        f"- {hub.addon_label(kit, 'velero')}: false",
    ]
