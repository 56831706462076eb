"""The summaries of one model × slice × window: one per monitored feature, prediction, label.

Routing from :class:`monitor.metrics.base.Columns` by task:

============  ==========================================  ================================
task          ``__prediction__``                          ``__label__``
============  ==========================================  ================================
binary        ``score`` (numeric); ``predicted`` (0/1,     ``label`` 0/1 (categorical)
              categorical) when the profile has no score
multiclass    ``predicted`` class (categorical)           ``label`` class (categorical)
regression    ``predicted`` value (numeric)               ``label`` value (numeric)
============  ==========================================  ================================

Multiclass codes are turned into class *names* with ``classes`` (the preparer's class list,
code ``i`` → ``classes[i]``), because codes are assigned first-come and differ between the
offline profile build and the daemon. Without ``classes`` the codes themselves are the keys.
Unlabelled records count as missing in the label summary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from monitor.drift.errors import DriftError
from monitor.drift.summary import (
    CategoricalSummary,
    NumericSummary,
    Summary,
    summary_from_state,
)
from monitor.metrics.base import Columns

PREDICTION = "__prediction__"
LABEL = "__label__"
TARGETS = (PREDICTION, LABEL)


def class_names(codes: np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
    """int64 class codes (-1 missing) → object array of names (None missing); arrays that are
    not integer codes (already names) pass through."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iuf":
        return codes
    if codes.dtype.kind == "f":
        out = np.empty(codes.shape[0], dtype=object)
        ok = ~np.isnan(codes)
        out[ok] = codes[ok].astype(np.int64)
        return out
    ok = codes >= 0
    out = np.full(codes.shape[0], None, dtype=object)
    if classes is None:
        out[ok] = codes[ok]
        return out
    names = np.asarray(list(classes), dtype=object)
    if ok.any() and codes[ok].max() >= names.shape[0]:
        raise DriftError(f"class code {int(codes[ok].max())} has no name in the "
                         f"{names.shape[0]} classes given")
    out[ok] = names[codes[ok]]
    return out


class FeatureSummaries:
    """Summaries of one model × slice × window, keyed by feature name, ``__prediction__``,
    ``__label__``. Same protocol as a single summary: update / merge / to_state / from_state."""

    def __init__(self, task: str, summaries: dict[str, Summary]):
        self.task = task
        self.summaries = dict(summaries)

    def __getitem__(self, name: str) -> Summary:
        return self.summaries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.summaries

    def __iter__(self) -> Iterator[str]:
        return iter(self.summaries)

    def items(self) -> Iterator[tuple[str, Summary]]:
        return iter(self.summaries.items())

    @property
    def features(self) -> list[str]:
        return [k for k in self.summaries if k not in TARGETS]

    def update(self, cols: Columns, *, label: bool = True,
               classes: Sequence[str] | None = None) -> None:
        """Fold one micro-batch in; ``label=False`` leaves the label summary to
        :meth:`update_label` (labels joined later)."""
        n = len(cols)
        for name in self.features:
            col = cols.features.get(name)
            self.summaries[name].update(col if col is not None else np.full(n, None, object))
        if PREDICTION in self.summaries:
            self.summaries[PREDICTION].update(self._prediction(cols, classes))
        if label:
            self.update_label(cols.label, classes=classes)

    def update_label(self, label: np.ndarray, *, classes: Sequence[str] | None = None) -> None:
        """Fold labels in (binary 0/1 float, multiclass codes, regression values)."""
        if LABEL not in self.summaries:
            return
        s = self.summaries[LABEL]
        if isinstance(s, CategoricalSummary) and self.task == "multiclass":
            label = class_names(label, classes)
        s.update(label)

    def _prediction(self, cols: Columns, classes: Sequence[str] | None) -> np.ndarray:
        s = self.summaries[PREDICTION]
        if self.task == "binary":
            return cols.score if isinstance(s, NumericSummary) else cols.predicted
        if self.task == "multiclass":
            return class_names(cols.predicted, classes)
        return cols.predicted

    def merge(self, other: FeatureSummaries) -> None:
        if set(other.summaries) != set(self.summaries):
            raise DriftError("cannot merge feature summaries over different features: "
                             f"{sorted(set(self.summaries) ^ set(other.summaries))}")
        for name, s in self.summaries.items():
            s.merge(other.summaries[name])

    def to_state(self) -> dict[str, Any]:
        return {"task": self.task,
                "summaries": {k: s.to_state() for k, s in self.summaries.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureSummaries:
        return cls(state["task"], {k: summary_from_state(v)
                                   for k, v in state["summaries"].items()})

    def empty_like(self, seed: int = 0, names: Sequence[str] | None = None) -> FeatureSummaries:
        """Fresh summaries with the same bins (for ``names``, default all)."""
        keep = list(self.summaries) if names is None else [k for k in self.summaries
                                                           if k in names or k in TARGETS]
        return FeatureSummaries(self.task, {k: self.summaries[k].empty_like([seed, i])
                                            for i, k in enumerate(keep)})

    def copy(self) -> FeatureSummaries:
        return FeatureSummaries.from_state(self.to_state())
