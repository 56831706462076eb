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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from monitor.drift.errors import DriftError
from monitor.drift.summary import (
    CategoricalSummary,
    NumericSummary,
    Reservoir,
    Summary,
    as_float,
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
        numeric: list[tuple[str, Getter, NumericSummary]] = []
        categorical: list[tuple[str, Getter, CategoricalSummary]] = []
        for name in self.features:
            s = self.summaries[name]
            dtype = cols.feature_dtype(name)
            if dtype is None:
                s.update(np.full(n, None, object))
            elif isinstance(s, NumericSummary) and dtype.kind in "fiub":
                numeric.append((name, _feature(name), s))
            elif isinstance(s, NumericSummary):
                _fold(s, cols, name, _feature(name))
            else:
                categorical.append((name, _feature(name), s))
        if PREDICTION in self.summaries:
            s = self.summaries[PREDICTION]
            if self.task == "binary" and isinstance(s, NumericSummary):
                numeric.append(("__score__", _score, s))
            elif self.task == "binary":
                categorical.append(("__predicted__", _predicted, s))
            else:
                s.update(self._prediction(cols, classes))
        if numeric:
            _numeric_block(cols, numeric)
        if categorical:
            _categorical_block(cols, categorical)
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
        return FeatureSummaries(self.task, {k: v.copy() for k, v in self.summaries.items()})


Getter = Callable[[Columns], np.ndarray]


_GETTERS: dict[str, Getter] = {}


def _feature(name: str) -> Getter:
    get = _GETTERS.get(name)
    if get is None:
        get = _GETTERS[name] = lambda c: c.features[name]
    return get


def _score(c: Columns) -> np.ndarray:
    return c.score


def _predicted(c: Columns) -> np.ndarray:
    return c.predicted


def _fold(summary: Summary, cols: Columns, key: str, get: Getter) -> None:
    """``summary.update(get(cols))``, with the bucket / category codes computed once per batch
    (:meth:`Columns.derived`) and only indexed for each group of it."""
    if isinstance(summary, NumericSummary):
        codes = cols.derived(("drift_bucket", key, summary.code_key),
                             lambda c: summary.bucket_codes(as_float(get(c)), get(c)))
        summary.update_coded(as_float(get(cols)), codes)
    else:
        codes = cols.derived(("drift_category", key, summary.code_key),
                             lambda c: summary.category_codes(get(c)))
        summary.update_coded(codes)


def _offsets(widths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)


def _numeric_block(cols: Columns, block: list[tuple[str, Getter, NumericSummary]]) -> None:
    """Every numeric column of a group at once: the same counts as ``s.update(get(cols))``
    for each, moments to float rounding, and each reservoir a uniform sample of its column.

    Per batch (:meth:`Columns.derived`): the ``F × n`` float matrix of the columns and their
    bucket codes, offset per column so that one ``bincount`` gives every histogram. Per group:
    one ``bincount``, moments along axis 1, one ``F × m`` key draw and one 2-d filter."""
    names = tuple(name for name, _, _ in block)
    offsets = _offsets([s.edges.shape[0] + 5 for _, _, s in block])
    x_key = ("drift_matrix", names)

    def matrix(c: Columns) -> np.ndarray:
        return np.stack([as_float(get(c)) for _, get, _ in block])

    def codes(c: Columns) -> np.ndarray:
        x = c.derived(x_key, matrix, axis=1)
        return np.stack([s.bucket_codes(x[j]) + offsets[j] for j, (_, _, s) in enumerate(block)])

    x = cols.derived(x_key, matrix, axis=1)
    c = cols.derived(("drift_matrix_codes", names, tuple(s.code_key for _, _, s in block)),
                     codes, axis=1)
    hist = np.bincount(c.ravel(), minlength=int(offsets[-1]))
    special = [s.count_coded(hist[offsets[j]:offsets[j + 1]])
               for j, (_, _, s) in enumerate(block)]
    m = x.shape[1]
    if m == 0:
        return
    rng = block[0][2].reservoir.rng  # keys independent per column, from one generator
    clean = [j for j, sp in enumerate(special) if not sp]
    if clean:
        xc = x if len(clean) == len(block) else x[clean]
        mean = xc.mean(axis=1)
        d = xc - mean[:, None]
        m2 = np.einsum("ij,ij->i", d, d).tolist()
        lo, hi = xc.min(axis=1).tolist(), xc.max(axis=1).tolist()
        for i, (j, mu) in enumerate(zip(clean, mean.tolist(), strict=True)):
            block[j][2]._combine(m, mu, m2[i], lo[i], hi[i])
        Reservoir.update_rows([block[j][2].reservoir for j in clean], xc, rng)
    for j, sp in enumerate(special):
        if sp:
            s = block[j][2]
            finite = c[j] - offsets[j] <= s.edges.shape[0]
            xj = x[j, finite]
            if xj.shape[0]:
                mu = float(xj.mean())
                s._combine(xj.shape[0], mu, float(np.square(xj - mu).sum()),
                           float(xj.min()), float(xj.max()))
                s.reservoir.update(xj, rng.random(xj.shape[0]))


def _categorical_block(cols: Columns,
                       block: list[tuple[str, Getter, CategoricalSummary]]) -> None:
    """Every categorical column of a group with one ``bincount`` (codes offset per column,
    computed once per batch)."""
    offsets = _offsets([len(s.vocabulary) + 3 for _, _, s in block])

    def codes(c: Columns) -> np.ndarray:
        return np.stack([s.category_codes(get(c)) + offsets[j]
                         for j, (_, get, s) in enumerate(block)])

    key = ("drift_category_codes", tuple(name for name, _, _ in block),
           tuple(s.code_key for _, _, s in block))
    hist = np.bincount(cols.derived(key, codes, axis=1).ravel(), minlength=int(offsets[-1]))
    for j, (_, _, s) in enumerate(block):
        s.count_coded(hist[offsets[j]:offsets[j + 1]])
