"""Closed window → immutable per-slice results. A pure function of the window and the spec."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from monitor.core.compare import compare_metrics, pairs_in_window, replicates
from monitor.core.metrics import window_results
from monitor.core.metrics.registry import replicated_metrics, window_intervals
from monitor.core.types import ClosedWindow, SliceResult
from slices.spec import ModelSpec


def evaluate_window(closed: ClosedWindow, model: ModelSpec) -> list[SliceResult]:
    """Per-slice results of ``closed``, ordered critical slices first, then by slice."""
    specs = {s.name: s for s in model.slices}
    wanted = set(model.metrics) if model.metrics else None
    results = []
    seen: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}  # for the comparisons
    for (version, slice_name, label), group in closed.groups.items():
        spec = specs.get(slice_name)
        values: dict[str, Any] = window_results(group.accumulators)
        if wanted is not None:
            values = {k: v for k, v in values.items() if k in wanted or k == "count"}
        intervals = window_intervals(group.accumulators, model.confidence_level, values) \
            if model.confidence_level is not None else {}
        min_size = spec.min_size if spec else 0
        results.append(SliceResult(
            model=closed.model, version=version, slice_name=slice_name, slice=label,
            critical=bool(spec and spec.critical), window_start=closed.start,
            window_end=closed.end, count=group.count, metrics=MappingProxyType(values),
            reported=group.count >= min_size, intervals=MappingProxyType(intervals)))
        if model.compare and model.confidence_level is not None:
            seen[(version, slice_name, label)] = (values, intervals,
                                                  replicates(group.accumulators))
    if seen:
        results = _with_comparisons(results, seen, model)
    results.sort(key=lambda r: (not r.critical, r.slice_name != "overall", r.slice, r.version))
    return results


def _with_comparisons(results: list[SliceResult], seen: dict, model: ModelSpec
                      ) -> list[SliceResult]:
    """Each candidate's results with its differences to the baseline versions of the model's
    ``compare`` pairs, slice by slice (both versions present in the slice)."""
    pairs = pairs_in_window(model.compare, {v for v, _, _ in seen})
    replicated = replicated_metrics(model)
    out = []
    for r in results:
        diffs = []
        for baseline, candidate, paired in pairs:
            base = seen.get((baseline, r.slice_name, r.slice))
            cand = seen.get((r.version, r.slice_name, r.slice))
            if candidate == r.version and base is not None and cand is not None:
                diffs.extend(compare_metrics(baseline, candidate, base, cand,
                                             float(model.confidence_level or 0.95), paired,
                                             replicated))
        out.append(dataclasses.replace(r, compared=tuple(diffs)) if diffs else r)
    return out
