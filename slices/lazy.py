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
    """Module ``name``, imported when one of its attributes is first read.

    Each attribute read is kept on the instance, so that later reads are plain attribute
    lookups (``value is pd.NaT`` per value costs what it costs on the module itself).
    """

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:  # only for attributes not read yet
        if attr.startswith("__"):  # copy, pickle and inspect probe dunders: not the module's
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        value = getattr(self._module, attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it at the first attribute access."""
    return LazyModule(name)
