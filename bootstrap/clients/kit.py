"""The kit's addon catalog: ``catalog.yaml`` on a kit release branch (KIT.md).

Shared by argocd-dir, which renders the enabled addons, and the preflight, which
checks ``kit.addons`` before anything is written, so that both agree on what a
kit version offers and name an unknown addon the same way (field and line).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import yaml

from bootstrap.errors import PermanentError

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

CATALOG = "catalog.yaml"
RELEASE = re.compile(r"^v\d+(\.\d+)*$")


def parse(repo: str, version: str, text: str | None) -> dict[str, str]:
    """Addon name → its path in the kit; PermanentError when the catalog is missing or malformed."""
    if text is None:
        raise PermanentError(f"{repo} at {version} has no {CATALOG}, so kit.addons cannot be checked")
    try:
        data = yaml.safe_load(text)
        return {str(a["name"]): str(a.get("path") or f"addons/{a['name']}") for a in data["addons"]}
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise PermanentError(f"{repo} at {version}: {CATALOG} is malformed ({exc!r})") from None


def unknown_addons(config: CustomerConfig, known: dict[str, str]) -> list[str]:
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
