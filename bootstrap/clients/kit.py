"""The kit contract as read from a kit release branch (../shared/KIT.md).

Each kit section (``base``, ``aws``/``gcp``, ``addons``) is a Helm chart whose
``values.yaml`` lists its components under ``components``; the addon catalog of a
version is what ``addons/values.yaml`` lists. Shared by argocd-dir, which renders
the sections, and the preflight, which checks ``kit.addons`` before anything is
written, so that both agree on what a kit version offers and name an unknown addon
the same way (field and line).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.errors import PermanentError

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

ADDONS = "addons"
"""The kit section whose ``values.yaml`` is the addon catalog."""
CATALOG = f"{ADDONS}/values.yaml"
RELEASE = re.compile(r"^v\d+(\.\d+)*$")


def section_values(repo: str, version: str, section: str, text: str | None) -> dict[str, Any]:
    """A section chart's values (``<section>/values.yaml``), checked for the kit contract."""
    where = f"{repo} at {version}: {section}/values.yaml"
    if text is None:
        raise PermanentError(
            f"{where} is missing; a kit section is a Helm chart whose values.yaml lists its "
            "components (see README: the kit contract)"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PermanentError(f"{where} is not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("components", {}), dict):
        raise PermanentError(f"{where} must be a mapping with a `components` mapping")
    return data


def catalog(repo: str, version: str, text: str | None) -> list[str]:
    """The addons a kit version offers: the components of ``addons/values.yaml``."""
    return sorted(section_values(repo, version, ADDONS, text).get("components") or {})


def unknown_addons(config: CustomerConfig, known: Collection[str]) -> list[str]:
    """One message per addon of ``kit.addons`` the catalog lacks, each with its field and line."""
    return [
        config.located(f"kit.addons[{i}]", f"unknown addon {a!r}")
        for i, a in enumerate(config.kit.addons)
        if a not in known
    ]


def missing_version(config: CustomerConfig, branches: list[str]) -> str:
    """The message for a ``kit.version`` the kit repo has no branch for, listing its releases."""
    releases = [b for b in branches if RELEASE.match(b)] or branches
    ordered = sorted(releases, key=lambda b: tuple(int(n) for n in re.findall(r"\d+", b)))
    return config.located(
        "kit.version",
        f"{config.kit.repo} has no branch {config.kit.version!r}; "
        f"release branches: {', '.join(ordered) or '(none)'}",
    )
