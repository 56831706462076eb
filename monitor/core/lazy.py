"""Heavy libraries imported on first use, so a process that never needs them never pays
their start-up time and memory (scipy ≈ 0.5 s, River with scikit-learn ≈ 3 s and tens of MiB).

:func:`lazy_module` is the one way the daemon defers an import: a module-level name bound
to it behaves as the module once an attribute is read. Owners: ``monitor.drift.statistics``
and ``monitor.drift.decide`` (scipy, at the first window's tests), ``monitor.drift.concept``
(River, when a concept detector is built). ``tests/unit/test_light_start.py`` checks that
the run path of a spec without a concept detector imports neither River nor Numba.

>>> import sys
>>> m = lazy_module("colorsys")
>>> m.rgb_to_hsv(1.0, 0.0, 0.0)
(0.0, 1.0, 1.0)
>>> "colorsys" in sys.modules
True
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
