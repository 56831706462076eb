"""A module imported on first use (the implementation behind :mod:`monitor.core.lazy`, here so
that ``slices/`` can defer pandas too without importing ``monitor/``).

>>> m = lazy_module("colorsys")
>>> m.rgb_to_hsv(1.0, 0.0, 0.0)
(0.0, 1.0, 1.0)
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Module ``name``, imported when one of its attributes is first read."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it at the first attribute access."""
    return LazyModule(name)
