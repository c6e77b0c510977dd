"""Hypothesis: whatever bytes or documents arrive, the loader answers with a ConfigError or a config.

A traceback is never an acceptable answer to bad input (exit 4 with a message is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap import config
from bootstrap.errors import ConfigError
from tests.unit.bad_inputs import EXAMPLE

_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
_trees = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(data)
    try:
        config.load(path)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_config_error(tmp_path: Path, data: bytes) -> None:
    _load(tmp_path, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_trees)
def test_random_documents_never_raise_anything_but_config_error(tmp_path: Path, doc: Any) -> None:
    _load(tmp_path, yaml.safe_dump(doc).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(yaml.safe_load(EXAMPLE))), _trees)
def test_a_section_replaced_by_garbage_is_a_config_error(tmp_path: Path, section: str, garbage: Any) -> None:
    doc = yaml.safe_load(EXAMPLE)
    doc[section] = garbage
    _load(tmp_path, yaml.safe_dump(doc).encode())
