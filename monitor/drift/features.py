"""The summaries of one model × slice × window: one per monitored feature, prediction, label.

Routing from :class:`monitor.core.metrics.base.ModelColumns` by task:

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
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from monitor.core.grouped import Layers, layers_for
from monitor.core.metrics.base import ModelColumns
from monitor.drift.errors import DriftError
from monitor.drift.summary import (
    CategoricalSummary,
    NumericSummary,
    Reservoir,
    Summary,
    as_float,
    summary_from_state,
)

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

    def update(self, cols: ModelColumns, *, label: bool = True,
               classes: Sequence[str] | None = None) -> None:
        """Fold one micro-batch in; ``label=False`` leaves the label summary to
        :meth:`update_label` (labels joined later)."""
        FeatureSummaries.update_groups(cols, [(self, np.arange(len(cols)))], classes=classes)
        if label:
            self.update_label(cols.label, classes=classes)

    @staticmethod
    def update_groups(cols: ModelColumns, parts: Sequence[tuple[FeatureSummaries, np.ndarray]], *,
                      classes: Sequence[str] | None = None) -> None:
        """``s.update(cols.take(rows), label=False)`` for every ``(s, rows)`` of one batch.

        The groups of a batch (its slices) overlap, so the columns are coded once per batch
        and every group is folded by compiled passes over layers of disjoint groups
        (:mod:`monitor.core.kernels`), with one key per record shared by every reservoir the record
        is offered to (coordinated bottom-k sampling: each reservoir is still a uniform sample
        of its column, and merges stay exact)."""
        buckets: dict[tuple, list[tuple[FeatureSummaries, np.ndarray]]] = {}
        for s, rows in parts:
            rows = _positions(rows)
            if rows.shape[0]:
                buckets.setdefault(s._layout, []).append((s, rows))
        for group in buckets.values():
            first = group[0][0]
            numeric, categorical, absent = first._plan(cols, classes)
            sums = [s.summaries for s, _ in group]
            rows_list = [rows for _, rows in group]
            layers = layers_for(cols, rows_list) if numeric or categorical else None
            if numeric:
                _numeric_groups(cols, numeric, [[d[name] for name, _, _ in numeric]
                                                for d in sums], layers)
            if categorical:
                _categorical_groups(cols, categorical, [[d[name] for name, _ in categorical]
                                                        for d in sums], layers)
            for name in absent:
                for d, rows in zip(sums, rows_list, strict=True):
                    d[name].update(np.full(rows.shape[0], None, object))

    @staticmethod
    def update_label_groups(cols: ModelColumns,
                            parts: Sequence[tuple[FeatureSummaries, np.ndarray]], *,
                            classes: Sequence[str] | None = None) -> None:
        """``s.update_label(cols.take(rows).label)`` for every ``(s, rows)`` of one batch, the
        label column coded once (``rows``: the labelled records of each group)."""
        buckets: dict[tuple, list[tuple[Summary, np.ndarray]]] = {}
        for s, rows in parts:
            rows = _positions(rows)
            if LABEL in s.summaries and rows.shape[0]:
                summary = s.summaries[LABEL]
                buckets.setdefault((s.task, summary.kind, summary.code_key), []).append(
                    (summary, rows))
        for (task, kind, _), group in buckets.items():
            sums = [[summary] for summary, _ in group]
            layers = layers_for(cols, [rows for _, rows in group])
            if kind == "numeric":
                _numeric_groups(cols, [(LABEL, _label, cols.label.dtype.kind not in "fiub")],
                                sums, layers)
            else:
                names = tuple(classes) if classes is not None else None
                get = _label_names(names) if task == "multiclass" else _label
                _categorical_groups(cols, [(LABEL, get)], sums, layers)

    @cached_property
    def _layout(self) -> tuple:
        """What decides how columns are coded: task, names, kinds and bins (kept: the
        summaries of a FeatureSummaries and their bins never change)."""
        return (self.task, *((k, s.kind, s.code_key) for k, s in self.summaries.items()
                             if k != LABEL))

    def _plan(self, cols: ModelColumns, classes: Sequence[str] | None
              ) -> tuple[list[tuple[str, Getter, bool]], list[tuple[str, Getter]], list[str]]:
        """ModelColumns to fold: numeric ``(name, getter, is_object)``, categorical
        ``(name, getter)``, and features absent from ``cols`` (all missing)."""
        numeric: list[tuple[str, Getter, bool]] = []
        categorical: list[tuple[str, Getter]] = []
        absent: list[str] = []
        for name in self.features:
            s = self.summaries[name]
            dtype = cols.feature_dtype(name)
            if dtype is None:
                absent.append(name)
            elif isinstance(s, NumericSummary):
                numeric.append((name, _feature(name), dtype.kind not in "fiub"))
            else:
                categorical.append((name, _feature(name)))
        if PREDICTION in self.summaries:
            s = self.summaries[PREDICTION]
            if self.task == "binary" and isinstance(s, NumericSummary):
                numeric.append((PREDICTION, _score, False))
            elif self.task == "binary":
                categorical.append((PREDICTION, _predicted))
            elif self.task == "multiclass":
                names = tuple(classes) if classes is not None else None
                categorical.append((PREDICTION, _class_names(names)))
            elif isinstance(s, NumericSummary):
                numeric.append((PREDICTION, _predicted, False))
            else:
                categorical.append((PREDICTION, _predicted))
        return numeric, categorical, absent

    def update_label(self, label: np.ndarray, *, classes: Sequence[str] | None = None) -> None:
        """Fold labels in (binary 0/1 float, multiclass codes, regression values)."""
        if LABEL not in self.summaries:
            return
        s = self.summaries[LABEL]
        if isinstance(s, CategoricalSummary) and self.task == "multiclass":
            label = class_names(label, classes)
        s.update(label)

    def merge(self, other: FeatureSummaries) -> None:
        if set(other.summaries) != set(self.summaries):
            raise DriftError("cannot merge feature summaries over different features: "
                             f"{sorted(set(self.summaries) ^ set(other.summaries))}")
        for name, s in self.summaries.items():
            s.merge(other.summaries[name])

    def to_state(self) -> dict[str, Any]:
        Reservoir.settle([s.reservoir for s in self.summaries.values()
                          if isinstance(s, NumericSummary) and s.reservoir._waiting])
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


Getter = Callable[[ModelColumns], np.ndarray]


_GETTERS: dict[str, Getter] = {}


def _feature(name: str) -> Getter:
    get = _GETTERS.get(name)
    if get is None:
        get = _GETTERS[name] = lambda c: c.features[name]
    return get


def _score(c: ModelColumns) -> np.ndarray:
    return c.score


def _predicted(c: ModelColumns) -> np.ndarray:
    return c.predicted


def _label(c: ModelColumns) -> np.ndarray:
    return c.label


_NAMERS: dict[tuple[str, tuple[str, ...] | None], Getter] = {}


def _names_getter(column: str, classes: tuple[str, ...] | None) -> Getter:
    """Multiclass codes of ``column`` (predicted / label) as class names; one function per
    class list, so :meth:`ModelColumns.derived` keys on it."""
    get = _NAMERS.get((column, classes))
    if get is None:
        if len(_NAMERS) > 256:
            _NAMERS.clear()
        get = _NAMERS[(column, classes)] = lambda c: class_names(getattr(c, column), classes)
    return get


def _class_names(classes: tuple[str, ...] | None) -> Getter:
    return _names_getter("predicted", classes)


def _label_names(classes: tuple[str, ...] | None) -> Getter:
    return _names_getter("label", classes)


def _positions(rows: np.ndarray) -> np.ndarray:
    """Row positions (a boolean mask becomes the positions it marks)."""
    rows = np.asarray(rows)
    return np.flatnonzero(rows) if rows.dtype == bool else rows


def _offsets(widths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)


def _numeric_groups(cols: ModelColumns, block: list[tuple[str, Getter, bool]],
                    summaries: list[list[NumericSummary]], layers: Layers) -> None:
    """Fold the numeric columns ``block`` into ``summaries[g][j]`` (group ``g``, column ``j``)
    for the records of group ``g`` in ``layers``: the same counts as
    ``s.update(column[rows])``, moments to float rounding, and each reservoir a uniform sample
    of its column.

    Per batch (:meth:`ModelColumns.derived`): the float matrix of the columns, their bucket codes
    (offset per column) and one reservoir key per record. Per call: one compiled pass
    (:func:`~monitor.core.kernels.fold_numeric`) for every group's histograms, shifted sums,
    minima and maxima, then the records whose key is below some reservoir's k-th key in
    their group are offered (once the reservoirs are full, a vanishing share)."""
    from monitor.core.kernels import bucket_codes, fold_numeric

    names = tuple(name for name, _, _ in block)
    first = summaries[0]
    offsets = _offsets([s.edges.shape[0] + 5 for s in first])
    x_key = ("drift_matrix", names)
    c_key = ("drift_matrix_codes", names, tuple(s.code_key for s in first))

    def matrix(c: ModelColumns) -> np.ndarray:
        return np.stack([as_float(get(c)) for _, get, _ in block])

    def codes(c: ModelColumns) -> np.ndarray:
        x = c.derived(x_key, matrix, axis=1)
        widths = [s._search.shape[0] for s in first]
        search = np.full((len(first), max(widths)), np.inf)
        for j, s in enumerate(first):
            search[j, :widths[j]] = s._search
        out = bucket_codes(x, search, np.array(widths, dtype=np.int64), offsets[:-1])
        for j, (_, get, obj) in enumerate(block):  # present but not a number: E + 4
            if obj:
                bad = np.isnan(x[j]) & ~pd.isna(get(c))
                out[j, bad] = offsets[j] + widths[j] + 4
        return out

    x = cols.derived(x_key, matrix, axis=1)  # F × n
    c = cols.derived(c_key, codes, axis=1)
    ends = offsets[:-1] + np.array([s.edges.shape[0] + 1 for s in first])  # past finite codes
    finite = c < ends[:, None]
    if finite.all():
        shift = x.mean(axis=1)
    else:
        shift = np.array([float(row[ok].mean()) if ok.any() else 0.0
                          for row, ok in zip(x, finite, strict=True)])
    n_groups, n_cols, width = len(summaries), len(block), int(offsets[-1])
    layer_codes, layer_groups = layers
    hist = np.zeros((n_groups, width), dtype=np.int64)
    s1, s2 = np.zeros((n_groups, n_cols)), np.zeros((n_groups, n_cols))
    lo, hi = np.full((n_groups, n_cols), np.inf), np.full((n_groups, n_cols), -np.inf)
    fold_numeric(x, c, ends, shift, layer_codes, layer_groups, hist, s1, s2, lo, hi)
    finite_n = np.stack([hist[:, offsets[j]:ends[j]].sum(axis=1) for j in range(n_cols)],
                        axis=1)
    off_l = offsets.tolist()
    cells = [s for group in summaries for s in group]
    for g, group in enumerate(summaries):
        for j, s in enumerate(group):
            s.count_coded(hist[g, off_l[j]:off_l[j + 1]])
    per = np.maximum(finite_n, 1)
    _merge_moments(cells, finite_n.ravel(), (shift[None, :] + s1 / per).ravel(),
                   (s2 - s1 * s1 / per).ravel(), lo.ravel(), hi.ravel())
    fn_l = finite_n.tolist()
    rng = first[0].reservoir.rng  # one key per record, shared by all its reservoirs
    keys = cols.derived(("drift_reservoir_keys",), lambda col: rng.random(len(col)))
    _offer(x, finite, keys, layer_codes, layer_groups, summaries, fn_l)


def _merge_moments(cells: list[NumericSummary], n_b: np.ndarray, mean_b: np.ndarray,
                   m2_b: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray) -> None:
    """Chan-merge a batch's ``(n, mean, M2, min, max)`` into every summary of ``cells`` at
    once (``NumericSummary._combine``, vectorised; cells with ``n_b = 0`` are untouched)."""
    n_a = np.array([s.n for s in cells], dtype=np.float64)
    mean_a = np.array([s.mean for s in cells])
    m2_a = np.array([s.m2 for s in cells])
    n = n_a + n_b
    safe = np.maximum(n, 1.0)
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / safe
    m2 = m2_a + np.maximum(m2_b, 0.0) + delta * delta * n_a * n_b / safe
    lo = np.minimum([s.min for s in cells], lo_b).tolist()
    hi = np.maximum([s.max for s in cells], hi_b).tolist()
    for i, (s, nb, nn, mu, v) in enumerate(zip(cells, n_b.tolist(), n.tolist(), mean.tolist(),
                                               m2.tolist(), strict=True)):
        if nb:
            s.n, s.mean, s.m2, s.min, s.max = int(nn), mu, v, lo[i], hi[i]


def _offer(x: np.ndarray, finite: np.ndarray, keys: np.ndarray, layer_codes: np.ndarray,
           layer_groups: np.ndarray, summaries: list[list[NumericSummary]],
           finite_n: list[list[int]]) -> None:
    """Offer each group's finite values to its reservoirs, keyed by the record's key: only
    records whose key is below the largest k-th key among their group's reservoirs are
    looked at."""
    from monitor.core.kernels import reservoir_candidates

    tops = np.array([[s.reservoir._top for s in group] for group in summaries])
    for group, counts in zip(summaries, finite_n, strict=True):
        for s, m in zip(group, counts, strict=True):
            s.reservoir.n += m
    groups, rows = reservoir_candidates(keys, tops.max(axis=1), layer_codes, layer_groups)
    if not rows.shape[0]:
        return
    cuts = np.searchsorted(groups, np.arange(len(summaries) + 1)).tolist()
    for g, group in enumerate(summaries):
        if cuts[g + 1] == cuts[g]:
            continue
        r = rows[cuts[g]:cuts[g + 1]]
        k = keys[r]
        enter = (k[None, :] < tops[g][:, None]) & finite[:, r]
        reservoirs = [s.reservoir for s in group]
        if enter.all() and Reservoir.coordinated(reservoirs):
            Reservoir.offer_coordinated(reservoirs, x[:, r], k)
            continue
        xv = x[:, r]
        for j, res in enumerate(reservoirs):
            sel = enter[j]
            if sel.any():
                res._wait(xv[j, sel], k[sel])


def _categorical_groups(cols: ModelColumns, block: list[tuple[str, Getter]],
                        summaries: list[list[CategoricalSummary]], layers: Layers) -> None:
    """Fold the categorical columns ``block`` into ``summaries[g][j]`` for the records of
    group ``g`` in ``layers``: codes once per batch, one compiled pass for every group and
    column."""
    from monitor.core.kernels import fold_codes

    first = summaries[0]
    offsets = _offsets([len(s.vocabulary) + 3 for s in first])

    def codes(c: ModelColumns) -> np.ndarray:
        return np.stack([s.category_codes(get(c)) + offsets[j]
                         for j, ((_, get), s) in enumerate(zip(block, first, strict=True))])

    key = ("drift_category_codes", tuple(name for name, _ in block),
           tuple(get for _, get in block), tuple(s.code_key for s in first))
    c = cols.derived(key, codes, axis=1)
    hist = np.zeros((len(summaries), int(offsets[-1])), dtype=np.int64)
    fold_codes(c, *layers, hist)
    off_l = offsets.tolist()
    for g, group in enumerate(summaries):
        for j, s in enumerate(group):
            s.count_coded(hist[g, off_l[j]:off_l[j + 1]])
