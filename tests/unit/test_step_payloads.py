"""Typed plan payloads: apply's operations travel with the plan, typed, and are never printed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from bootstrap.step import Action, Change, Plan


@dataclass(frozen=True)
class _Store:
    path: str
    password: str = field(repr=False)


def test_payloads_are_not_part_of_the_printed_plan() -> None:
    change = Change(Action.CREATE, "x", "make x", payload=_Store("kv/x", "s3cret-value"))
    plan = Plan((change,), observed=_Store("kv/y", "other-s3cret"))
    printed = json.dumps(plan.to_json())
    assert "kv/x" not in printed and "s3cret" not in printed and "payload" not in printed


def test_a_payload_of_another_shape_is_a_type_error_that_shows_no_secret() -> None:
    change = Change(Action.CREATE, "x", payload=_Store("kv/x", "s3cret-value"))
    assert change.payload_as(_Store).path == "kv/x"
    with pytest.raises(TypeError, match="expected a int payload") as err:
        change.payload_as(int)
    assert "s3cret" not in str(err.value)
    with pytest.raises(TypeError, match="observing _Store"):
        Plan(observed=None).observed_as(_Store)
