"""Argo CD's real install manifest for the sandbox and the tests.

Nothing here is hand-made: the sandbox installs upstream's own ``install.yaml`` of
v3.3.14 (59 objects: the CRDs with their OpenAPI schemas, RBAC, ConfigMaps, the
six Deployments and the application-controller StatefulSet), kept unchanged in the
shared vendor directory (../shared/vendor/argo-cd/, see its README for the origin
and sha256). The sandbox copies it next to its other files and points
``argocd.install_url`` at the copy with ``argocd.sha256`` pinned, so the pin flow
is the one a customer uses. There is no network here, hence no download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import yaml

VERSION = "v3.3.14"
FILE = f"argo-cd/install-{VERSION}.yaml"
SHA256 = "74fe2e5b57b1ca652078c262e057b563efc4dcd317d734479185c2623177aea8"
"""The digest upstream's file has (vendor README); a copy that differs is refused."""


def vendor_dir() -> Path:
    """BOOTSTRAP_VENDOR_DIR, else <repo>/../shared/vendor, else /work/shared/vendor."""
    env = os.environ.get("BOOTSTRAP_VENDOR_DIR")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[1].parent / "shared" / "vendor",
        Path("/work/shared/vendor"),
    ]
    for candidate in candidates:
        if (candidate / FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"Argo CD's install manifest ({FILE}) is not in {', '.join(map(str, candidates))}; "
        "set BOOTSTRAP_VENDOR_DIR to the shared vendor directory"
    )


def path() -> Path:
    return vendor_dir() / FILE


@cache
def text() -> str:
    data = path().read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path()} has sha256 {digest}, not upstream's {SHA256}")
    return data.decode("utf-8")


def objects() -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text(), Loader=loader) if d]


def workloads(kind: str) -> tuple[str, ...]:
    return tuple(o["metadata"]["name"] for o in objects() if o["kind"] == kind)


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema the real CRD declares for ``kind`` (Application, AppProject, ApplicationSet)."""
    for obj in objects():
        if obj["kind"] == "CustomResourceDefinition" and obj["spec"]["names"]["kind"] == kind:
            version = next(v for v in obj["spec"]["versions"] if v.get("storage"))
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"the manifest defines no CRD for {kind}")


def write(directory: Path) -> tuple[str, str]:
    """Copy the manifest to ``directory``; return the copy's ``file://`` URL and its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"argocd-install-{VERSION}.yaml"
    shutil.copyfile(path(), target)
    text()  # refuse a vendor copy that is not upstream's
    return target.resolve().as_uri(), SHA256
