"""Every dotted path a step declares in ``reads`` names a field of customer.yaml.

The input digest hashes ``config_slice(config, path)`` for each path; a typo there
resolves to ``None`` silently, so the step would never re-run when the field it
really reads changes. This walks the pydantic models instead of a sample file, so
an optional section that the example leaves out is checked too.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from bootstrap.config import CustomerConfig
from steps import STEPS


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` walks through model fields (by name or alias) from CustomerConfig."""
    current: list[type[BaseModel]] = [CustomerConfig]
    for part in dotted.split("."):
        found = [
            info
            for model in current
            for name, info in model.model_fields.items()
            if part in (name, info.alias)
        ]
        if not found:
            return False
        current = [m for info in found for m in _models(info.annotation)]
    return True


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.id)
def test_every_read_path_names_a_field(step: type[Any]) -> None:
    missing = [path for path in step.reads if not resolves(path)]
    assert not missing, f"{step.id} reads paths that are not fields of customer.yaml: {missing}"


def test_the_walker_rejects_a_typo() -> None:
    assert resolves("github.infra_repo")
    assert not resolves("github.infra_rpo")
    assert not resolves("nosuchsection")
