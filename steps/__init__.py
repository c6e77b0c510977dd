"""The steps, in the order a person reads them; the engine orders them by ``requires``."""

from __future__ import annotations

from bootstrap.step import Step

STEPS: tuple[type[Step], ...] = ()
