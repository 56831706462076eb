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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from monitor.core.grouped import Layers, batch_layers
from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import ModelColumns
from monitor.core.packed import rows_of_one
from monitor.drift.errors import DriftError
from monitor.drift.summary import (
    CategoricalSummary,
    NumericSummary,
    Summary,
    as_float,
    code_dtype,
    feature_codes,
    fold_numeric_groups,
    numeric_offsets,
    settle,
    summary_from_state,
)

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

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
        """Fold one micro-batch in (:meth:`update_groups` with one group); ``label=False``
        leaves the label summary alone (labels joined later: :meth:`update_label_groups`).
        Unlabelled records count as missing in the label summary."""
        everything = [(self, np.arange(len(cols)))]
        FeatureSummaries.update_groups(cols, everything, classes=classes)
        if label:
            FeatureSummaries.update_label_groups(cols, everything, classes=classes)

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
            layers = batch_layers(cols, rows_list) if numeric or categorical else None
            if numeric:
                _numeric_groups(cols, numeric, [[d[name] for name, _, _ in numeric]
                                                for d in sums], layers)
            if categorical:
                _categorical_groups(cols, categorical, [[d[name] for name, _ in categorical]
                                                        for d in sums], layers)
            for name in absent:
                for d, rows in zip(sums, rows_list, strict=True):
                    d[name].count_missing(rows.shape[0])

    @staticmethod
    def update_label_groups(cols: ModelColumns,
                            parts: Sequence[tuple[FeatureSummaries, np.ndarray]], *,
                            classes: Sequence[str] | None = None) -> None:
        """Fold the labels of ``rows`` into the label summary of ``s``, for every ``(s, rows)``
        of one batch, the label column coded once (in the daemon ``rows`` are the labelled
        records of each group; unlabelled ones count as missing)."""
        buckets: dict[tuple, list[tuple[Summary, np.ndarray]]] = {}
        for s, rows in parts:
            rows = _positions(rows)
            if LABEL in s.summaries and rows.shape[0]:
                summary = s.summaries[LABEL]
                buckets.setdefault((s.task, summary.kind, summary.code_key), []).append(
                    (summary, rows))
        for (task, kind, _), group in buckets.items():
            sums = [[summary] for summary, _ in group]
            layers = batch_layers(cols, [rows for _, rows in group])
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
                numeric.append((name, _Feature(name), dtype.kind not in "fiub"))
            else:
                categorical.append((name, _Feature(name)))
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

    def merge(self, other: FeatureSummaries) -> None:
        if set(other.summaries) != set(self.summaries):
            raise DriftError("cannot merge feature summaries over different features: "
                             f"{sorted(set(self.summaries) ^ set(other.summaries))}")
        for name, s in self.summaries.items():
            s.merge(other.summaries[name])

    def to_state(self) -> dict[str, Any]:
        settle([s.reservoir for s in self.summaries.values()
                if isinstance(s, NumericSummary) and s.reservoir.waiting])
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


@dataclass(frozen=True)
class _Feature:
    """Feature column ``name`` (equal by value, so it can key :meth:`ModelColumns.derived`)."""

    name: str

    def __call__(self, c: ModelColumns) -> np.ndarray:
        return c.features[self.name]


def _score(c: ModelColumns) -> np.ndarray:
    return c.score


def _predicted(c: ModelColumns) -> np.ndarray:
    return c.predicted


def _label(c: ModelColumns) -> np.ndarray:
    return c.label


@dataclass(frozen=True)
class _ClassNames:
    """Multiclass codes of ``column`` (predicted / label) as class names; equal by value, so
    :meth:`ModelColumns.derived` keys on it."""

    column: str
    classes: tuple[str, ...] | None

    def __call__(self, c: ModelColumns) -> np.ndarray:
        return class_names(getattr(c, self.column), self.classes)


def _class_names(classes: tuple[str, ...] | None) -> Getter:
    return _ClassNames("predicted", classes)


def _label_names(classes: tuple[str, ...] | None) -> Getter:
    return _ClassNames("label", classes)


def _positions(rows: np.ndarray) -> np.ndarray:
    """Row positions (a boolean mask becomes the positions it marks)."""
    rows = np.asarray(rows)
    return np.flatnonzero(rows) if rows.dtype == bool else rows


def _offsets(widths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)


def _numeric_groups(cols: ModelColumns, block: list[tuple[str, Getter, bool]],
                    summaries: list[list[NumericSummary]], layers: Layers) -> None:
    """Fold the numeric columns ``block`` into ``summaries[g][j]`` (group ``g``, column ``j``)
    for the records of group ``g`` in ``layers`` (:func:`~monitor.drift.summary.
    fold_numeric_groups`). Per batch (:meth:`ModelColumns.derived`): the float matrix of the
    columns, their bucket codes (offset per column) and one reservoir key per record."""
    from monitor.core.kernels import bucket_codes

    names = tuple(name for name, _, _ in block)
    first = summaries[0]
    offsets = numeric_offsets(first)
    x_key = ("drift_matrix", names)
    c_key = ("drift_matrix_codes", names, tuple(s.code_key for s in first))

    def matrix(c: ModelColumns) -> np.ndarray:
        rows = [as_float(get(c)) for _, get, _ in block]
        held = rows_of_one(rows)  # the profile build's reference (monitor/core/packed.py)
        return np.stack(rows) if held is None else held

    def codes(c: ModelColumns) -> np.ndarray:
        x = c.derived(x_key, matrix, axis=1)
        widths = [s.search_edges.shape[0] for s in first]
        search = np.full((len(first), max(widths)), np.inf)
        for j, s in enumerate(first):
            search[j, :widths[j]] = s.search_edges
        out = bucket_codes(x, search, np.array(widths, dtype=np.int64), offsets[:-1])
        for j, (_, get, obj) in enumerate(block):  # present but not a number: E + 4
            if obj:
                bad = np.isnan(x[j]) & ~pd.isna(get(c))
                out[j, bad] = offsets[j] + widths[j] + 4
        return out

    x = cols.derived(x_key, matrix, axis=1)  # F × n
    c = cols.derived(c_key, codes, axis=1)
    rng = first[0].reservoir.rng  # one key per record, shared by all its reservoirs
    keys = cols.derived(("drift_reservoir_keys",), lambda col: rng.random(len(col)))
    fold_numeric_groups(x, c, keys, layers, summaries)


def _categorical_groups(cols: ModelColumns, block: list[tuple[str, Getter]],
                        summaries: list[list[CategoricalSummary]], layers: Layers) -> None:
    """Fold the categorical columns ``block`` into ``summaries[g][j]`` for the records of
    group ``g`` in ``layers``: codes once per batch, one compiled pass for every group and
    column."""
    from monitor.core.kernels import fold_codes

    first = summaries[0]
    offsets = _offsets([len(s.vocabulary) + 3 for s in first])

    def codes(c: ModelColumns) -> np.ndarray:
        out = np.empty((len(block), len(c)), code_dtype(int(offsets[-1])))
        for j, ((_, get), s) in enumerate(zip(block, first, strict=True)):
            out[j] = (feature_codes(c, get.name, s) if isinstance(get, _Feature)
                      else s.category_codes(get(c)))  # int8 codes, widened here
            out[j] += int(offsets[j])
        return out

    key = ("drift_category_codes", tuple(name for name, _ in block),
           tuple(get for _, get in block), tuple(s.code_key for s in first))
    c = cols.derived(key, codes, axis=1)
    hist = np.zeros((len(summaries), int(offsets[-1])), dtype=np.int64)
    fold_codes(c, *layers, hist)
    off_l = offsets.tolist()
    for g, group in enumerate(summaries):
        for j, s in enumerate(group):
            s.count_coded(hist[g, off_l[j]:off_l[j + 1]])
