"""The Ansible playbooks that change the cluster, and the built-in templates, as package data.

They ship inside the wheel (not beside a checkout) so that an installed ``bootstrap``
finds them wherever it runs: callers ask this module for a path instead of walking
up from ``__file__``. ansible-playbook needs a real file, which a wheel installed by
pip always provides (packages are unpacked onto the filesystem, never run zipped).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """The file or directory ``parts`` inside this package, e.g. ``path("apply.yml")``."""
    return Path(str(files(__name__).joinpath(*parts)))
