"""Closed window → immutable per-slice results. A pure function of the window and the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from monitor.core.metrics import window_results
from monitor.core.pipeline import ClosedWindow
from slices.spec import ModelSpec


@dataclass(frozen=True)
class MultivariateDrift:
    """PCA reconstruction error of one slice's window against its reference band
    (``monitor.drift.multivariate``): ``error`` (mean over ``n`` records), the band
    ``[lower, upper]`` at this ``n``, ``drift`` (error outside the band) and ``reference``
    (``slice`` or ``overall``: whose reference records gave the band)."""

    error: float
    lower: float
    upper: float
    drift: bool
    n: int
    reference: str


@dataclass(frozen=True)
class EstimatedPerformance:
    """CBPE estimate of one slice's window (``monitor.drift.cbpe``): ``values`` (metric →
    estimate), ``intervals`` (metric → (lower, upper), accuracy and precision) and ``error``
    (metric → realised − estimated, for the metrics the window's labels define)."""

    values: MappingProxyType
    intervals: MappingProxyType
    error: MappingProxyType


@dataclass(frozen=True)
class SliceResult:
    """Metrics of one model × version × slice over one closed window.

    ``reported`` is False when the slice has fewer records than its ``min_size``: such a
    result is kept for bookkeeping but neither exported nor alerted on.
    """

    model: str
    version: str
    slice_name: str
    slice: str
    critical: bool
    window_start: float
    window_end: float
    count: int
    metrics: MappingProxyType
    reported: bool = True
    extra: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    multivariate: MultivariateDrift | None = None
    estimated: EstimatedPerformance | None = None


def evaluate_window(closed: ClosedWindow, model: ModelSpec) -> list[SliceResult]:
    """Per-slice results of ``closed``, ordered critical slices first, then by slice."""
    specs = {s.name: s for s in model.slices}
    wanted = set(model.metrics) if model.metrics else None
    results = []
    for (version, slice_name, label), group in closed.groups.items():
        spec = specs.get(slice_name)
        values: dict[str, Any] = window_results(group.accumulators)
        if wanted is not None:
            values = {k: v for k, v in values.items() if k in wanted or k == "count"}
        min_size = spec.min_size if spec else 0
        results.append(SliceResult(
            model=closed.model, version=version, slice_name=slice_name, slice=label,
            critical=bool(spec and spec.critical), window_start=closed.start,
            window_end=closed.end, count=group.count, metrics=MappingProxyType(values),
            reported=group.count >= min_size))
    results.sort(key=lambda r: (not r.critical, r.slice_name != "overall", r.slice, r.version))
    return results
