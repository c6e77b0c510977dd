"""``bootstrap status --hub``: the clusters a hub knows, and whether each one's labels match customer.yaml.

What it guarantees:

* it only reads: the hub's cluster Secrets (``argocd.argoproj.io/secret-type=cluster``
  in ``hub.namespace``), each customer cluster's ``/version`` and the kit's catalog,
  i.e. exactly what cluster-register computes its labels from (bootstrap/hub.py), so
  "matches" here means cluster-register's plan would not touch the labels;
* it never prints a Secret's ``config`` (the bearer token): only ``name``, ``server``
  and the labels;
* labels outside the tool's own keys (other tools' labels on the Secret) are shown
  but never count as a difference; one hub is listed once however many customer
  files name it, with every cluster registered there, known to the given files or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap import hub, session
from bootstrap.clients import argocd
from bootstrap.clients import kit as kit_catalog
from bootstrap.errors import BootstrapError, ConfigError


@dataclass
class Cluster:
    name: str
    server: str
    secret: str
    labels: dict[str, str]
    customer: str | None = None
    """The customer file that names this cluster, if one was given."""
    differences: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def state(self) -> str:
        if self.customer is None:
            return "no customer.yaml given"
        if self.error is not None:
            return "unknown"
        return "differs" if self.differences else "matches"

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.name,
            "server": self.server,
            "secret": self.secret,
            "customer": self.customer,
            "state": self.state,
            "differences": self.differences,
            "error": self.error,
            "labels": self.labels,
        }


@dataclass
class Hub:
    where: str
    clusters: list[Cluster] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Customer files whose cluster is not registered in this hub."""

    def to_json(self) -> dict[str, Any]:
        return {
            "hub": self.where,
            "clusters": [c.to_json() for c in self.clusters],
            "not_registered": self.missing,
        }

    @property
    def problems(self) -> bool:
        return bool(self.missing) or any(c.state in ("differs", "unknown") for c in self.clusters)


def ours(key: str, kit_repo: str) -> bool:
    """Whether the tool owns the label key (its prefix, the kit's addon switches, Argo CD's type)."""
    return (
        key.startswith(f"{hub.PREFIX}/")
        or key.startswith(f"{hub.kit_label_domain(kit_repo)}/")
        or key in (hub.SECRET_TYPE, hub.MANAGED_BY)
    )


def differences(live: Mapping[str, str], want: Mapping[str, str], kit_repo: str) -> list[str]:
    """``~ key: live -> want``, ``+ key: want`` (missing), ``- key: live`` (ours, not wanted)."""
    out = [
        f"~ {k}: {live[k]} -> {v}" if k in live else f"+ {k}: {v}"
        for k, v in want.items()
        if live.get(k) != v
    ]
    out += [f"- {k}: {v}" for k, v in sorted(live.items()) if k not in want and ours(k, kit_repo)]
    return out


def expected_labels(sess: session.Session) -> dict[str, str]:
    """The labels cluster-register would write for this customer: kit catalog + the cluster's /version."""
    cfg = sess.config
    github = sess.services.github
    head = github.branch_head(cfg.kit.repo, cfg.kit.version)
    if head is None:
        raise ConfigError(kit_catalog.missing_version(cfg, github.branches(cfg.kit.repo)))
    catalog = kit_catalog.catalog(
        cfg.kit.repo, cfg.kit.version, github.read_file(cfg.kit.repo, head, kit_catalog.CATALOG)
    )
    major, minor = sess.services.kube.version()
    return hub.cluster_labels(cfg, catalog, hub.minor_version(major, minor))


def report(paths: Sequence[Path]) -> list[Hub]:
    """One entry per distinct hub named by the customer files, in the order first named."""
    sessions = [session.open_session(p) for p in paths]
    hubs: dict[tuple[str | None, str | None, str], tuple[Hub, list[session.Session]]] = {}
    for sess, path in zip(sessions, paths, strict=True):
        cfg = sess.config.hub
        if cfg is None:
            raise ConfigError(
                f"{path}: names no hub (standalone mode); status --hub needs hub: in customer.yaml"
            )
        key = (sess.services.hub_kubeconfig, cfg.context, cfg.namespace)
        kubeconfig = sess.services.hub_kubeconfig or "KUBECONFIG"
        where = f"{cfg.context or 'current context'} ({kubeconfig}) namespace {cfg.namespace}"
        hubs.setdefault(key, (Hub(where), []))[1].append(sess)
    out = []
    for (_config, _context, namespace), (entry, members) in hubs.items():
        kube = members[0].services.hub_kube
        selector = f"{hub.SECRET_TYPE}=cluster"
        by_name: dict[str, Cluster] = {}
        for secret in kube.list("v1", "Secret", namespace, label_selector=selector):
            data = argocd.secret_data(secret)
            meta = secret.get("metadata") or {}
            name = data.get("name") or str(meta.get("name"))
            by_name[name] = Cluster(
                name,
                data.get("server", ""),
                f"{namespace}/{meta.get('name')}",
                dict(meta.get("labels") or {}),
            )
        for sess in members:
            cluster_name = sess.config.hub_cluster_name or ""
            found = by_name.get(cluster_name)
            if found is None:
                entry.missing.append(f"{cluster_name} ({sess.path})")
                continue
            found.customer = str(sess.path)
            try:
                want = expected_labels(sess)
            except BootstrapError as exc:
                found.error = sess.redactor.redact(str(exc))
                continue
            found.differences = differences(found.labels, want, sess.config.kit.repo)
        entry.clusters = sorted(by_name.values(), key=lambda c: c.name)
        out.append(entry)
    return out


def print_text(hubs: Sequence[Hub]) -> None:
    """One block per hub: a line per cluster, its differences and labels indented under it."""
    for entry in hubs:
        print(f"hub {entry.where}: {len(entry.clusters)} registered cluster(s)")
        width = max((len(c.name) for c in entry.clusters), default=7)
        for c in entry.clusters:
            print(f"  {c.name.ljust(width)}  {c.state:<22}  {c.server}")
            for line in c.differences:
                print(f"      {line}")
            if c.error:
                print(f"      cannot compare: {c.error}")
            for k, v in sorted(c.labels.items()):
                print(f"      label {k}={v}")
        for line in entry.missing:
            print(f"  not registered: {line}")
