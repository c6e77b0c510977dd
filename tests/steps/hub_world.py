"""Hub-mode customers on one world: several customer files sharing one hub repo in the GitHub emulator.

Each customer gets its own directory (its own checkpoint), the world's emulators and the
same hub repo; ``cluster_secret`` builds the cluster Secret registration would write,
with the labels of the shared contract (bootstrap/hub.py), so the generator evaluation
runs on exactly the labels the hub would see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bootstrap import engine, hub, session
from bootstrap.config import CustomerConfig
from bootstrap.reporting import Summary
from bootstrap.secrets import Redactor
from sandbox import github_seed
from steps.argocd_dir import ArgocdDir
from tests.fixtures.world import World, deep_merge
from tests.unit.recording import RecordingReporter

HUB_OWNER, HUB_NAME = "acme", "platform-hub"
HUB_REPO = f"{HUB_OWNER}/{HUB_NAME}"
PATH = "hub"


def add_hub_repo(world: World) -> None:
    if (HUB_OWNER, HUB_NAME) not in world.github.repos:
        world.github.create_repo(HUB_OWNER, HUB_NAME, {"README.md": "# platform hub\n"})


def customer_file(world: World, name: str, **overrides: Any) -> Path:
    """A hub-mode customer file for ``name`` in its own directory (``overrides`` deep-merged)."""
    doc = world.document()
    doc["customer"] = {"name": name, "domain": f"{name}.example.com", "display_name": name.title()}
    doc["hub"] = {"namespace": "argocd", "gitops": {"repo": HUB_REPO, "branch": "main", "path": PATH}}
    doc = deep_merge(doc, overrides)
    directory = world.dir / name
    directory.mkdir(exist_ok=True)
    path = directory / "customer.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(world: World, path: Path, dry_run: bool = False, destroy: bool = False) -> Summary:
    sess = session.open_session(path, redactor=Redactor(), environ=world.env)
    eng = engine.Engine([ArgocdDir()], sess.store, RecordingReporter(), sess.redactor, retry_delay_cap=0.2)
    with sess.store.lock():
        if destroy:
            return eng.destroy(sess.context, engine.Selection(), dry_run=dry_run)
        return eng.run(sess.context, engine.Selection(), dry_run=dry_run)


def config(world: World, path: Path) -> CustomerConfig:
    return session.open_session(path, redactor=Redactor(), environ=world.env).config


def cluster_secret(cfg: CustomerConfig, server: str, **labels: str | None) -> dict[str, Any]:
    """The cluster Secret in the hub for ``cfg``: the contract's labels; ``labels`` override, None drops."""
    catalog = github_seed.KIT_ADDONS[cfg.kit.version]
    name = cfg.hub_cluster_name
    assert name is not None
    have = hub.cluster_labels(cfg, catalog, "1.31")
    for key, value in labels.items():
        real = {"kit_version": hub.KIT_VERSION, "cloud": hub.CLOUD, "project": hub.PROJECT}.get(key, key)
        if value is None:
            have.pop(real, None)
        else:
            have[real] = value
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": hub.cluster_secret_name(name), "namespace": "argocd", "labels": have},
        "type": "Opaque",
        "stringData": {"name": name, "server": server, "config": "{}"},
    }


def hub_files(world: World) -> dict[str, str]:
    return {
        p: t for p, t in world.github.read_tree(HUB_OWNER, HUB_NAME, "main").items() if p.startswith(PATH)
    }


def appsets(files: dict[str, str]) -> list[dict[str, Any]]:
    return [
        doc
        for path, text in sorted(files.items())
        if path.startswith(f"{PATH}/appsets/")
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and doc.get("kind") == "ApplicationSet"
    ]
