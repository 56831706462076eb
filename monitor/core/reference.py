"""The reference data's own slice metrics: what ``baseline: reference`` alert rules compare a
window with (stored in the profile by ``slicewatch baseline build``)."""

from __future__ import annotations

import math

import numpy as np

from monitor.core.metrics.registry import accumulators_for, metrics_for, window_results
from monitor.core.prepare import Preparer
from monitor.core.types import RecordBatch
from monitor.core.windows import Group, update_groups
from slices.assign import SliceAssigner
from slices.spec import ModelSpec


def reference_metrics(model: ModelSpec, batch: RecordBatch,
                      preparer: Preparer | None = None) -> dict[str, dict[str, float]]:
    """Slice label → metric → value of ``model``'s records in ``batch``, sliced and computed
    exactly as the daemon computes a window (same accumulators); undefined values (no labels
    in the reference, one class only) are left out.

    >>> from slices.load import load_spec_text
    >>> spec = load_spec_text("models: [{name: m, task: binary, metrics: [accuracy]}]")
    >>> f, o = np.zeros(4), np.array(["m"] * 4, object)
    >>> b = RecordBatch(time=f, model=o, version=o, id=o, score=np.array([.9, .2, .8, .4]),
    ...                 pred_class=o, value=f, label=np.array([1, 0, 0, 0], object),
    ...                 outcome=np.zeros(4, np.int8))
    >>> reference_metrics(spec.models[0], b)
    {'overall': {'accuracy': 0.75}}
    """
    ours = batch.model == model.name
    mine = batch if ours.all() else batch.take(np.flatnonzero(ours))  # one model: no copy
    if not len(mine):
        return {}
    cols = (preparer or Preparer(model)).columns(mine)
    groups: dict[str, Group] = {}
    parts = []
    for sc in SliceAssigner(model).assign(mine):
        for label, rows in sc.groups():
            group = groups.setdefault(label, Group(accumulators_for(model)))
            parts.append((group, np.asarray(rows)))
    update_groups(cols, parts)
    names = metrics_for(model)
    out = {}
    for label, group in groups.items():
        values = {k: float(v) for k, v in window_results(group.accumulators, names).items()
                  if k != "count" and math.isfinite(float(v))}
        if values:
            out[label] = values
    return out
