"""Heavy libraries imported on first use, so a process that never needs them never pays
their start-up time and memory (scipy ≈ 0.5 s, River with scikit-learn ≈ 3 s and tens of MiB).

:func:`lazy_module` is the one way the daemon defers an import: a module-level name bound
to it behaves as the module once an attribute is read. Owners: ``monitor.drift.statistics``
and ``monitor.drift.decide`` (scipy, at the first window's tests), ``monitor.drift.concept``
(River, when a concept detector is built), the run path's modules (pandas, at the first
batch; ``slices/`` uses :mod:`slices.lazy`, the same class, as it never imports ``monitor/``).
``tests/unit/test_light_start.py`` checks that the run path of a spec without a concept
detector imports neither River nor Numba, and that start-up (up to the first chunk of
records) imports neither pandas nor scipy.

>>> import sys
>>> m = lazy_module("colorsys")
>>> m.rgb_to_hsv(1.0, 0.0, 0.0)
(0.0, 1.0, 1.0)
>>> "colorsys" in sys.modules
True
"""

from __future__ import annotations

from slices.lazy import LazyModule, lazy_module

__all__ = ["LazyModule", "lazy_module"]
