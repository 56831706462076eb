"""One model's :class:`RecordBatch` → the :class:`ModelColumns` its accumulators read.

Binary: ``predicted = score >= threshold`` (or the logged class equals the positive label when
there is no score); labels equal to the positive label are 1, others 0. Multiclass: classes
become stable integer codes (the spec's ``classes`` or first-come, at most ``MAX_CLASSES``,
the rest folded into ``__other__``). Regression: the predicted value and numeric labels.

>>> import numpy as np
>>> _truthy(np.array([1, "true", 0, None, "maybe"], dtype=object), 1)
array([ 1.,  1.,  0., nan, nan])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import ModelColumns
from monitor.core.types import RecordBatch
from slices.codes import coded, factorize
from slices.spec import OTHER, ModelSpec

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

MAX_CLASSES = 200
_TRUE = {"1", "true", "yes", "y", "t", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "0.0"}


def record_keys(batch: RecordBatch) -> np.ndarray:
    """A uint64 key per record: a hash of its prediction id, or, for a record without id, of
    its event time and prediction. The same record gets the same key in any batch, after a
    restart and under any model version (so shadow traffic pairs by id).

    >>> o = np.array(["a", "a", ""], object); f = np.array([1.0, 2.0, 1.0])
    >>> b = RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f,
    ...                 label=o, outcome=np.zeros(3, np.int8))
    >>> k = record_keys(b)
    >>> k.dtype.name, bool(k[0] == k[1]), bool(k[0] == k[2])
    ('uint64', True, False)
    """
    if not len(batch):
        return np.zeros(0, np.uint64)
    codes, uniques = factorize(batch.id)  # each distinct id hashed once; -1: missing
    distinct = np.empty(len(uniques) + 1, dtype=object)
    distinct[:-1] = uniques
    distinct[-1] = ""
    blank = distinct == ""
    no_id = blank[codes]
    key = pd.util.hash_array(distinct)[codes]
    if no_id.any():
        rows = np.flatnonzero(no_id)
        parts = [pd.util.hash_array(np.asarray(col)[rows]) for col in
                 (batch.time, batch.score, batch.value)]
        parts.append(_text_hashes(batch.pred_class[rows]))
        combined = np.zeros(rows.shape[0], np.uint64)
        with np.errstate(over="ignore"):
            for part in parts:
                combined = (combined * np.uint64(1099511628211)) ^ part
        key[rows] = combined
    return key


def _text_hashes(values: np.ndarray) -> np.ndarray:
    """``pd.util.hash_array`` of ``values`` as text (pandas' ``astype(str)``). A column of
    None only (the predicted class of a model that logs scores) is one value: hashed once."""
    if values.shape[0] > 1 and all(v is None for v in values):
        return np.full(values.shape[0], _text_hashes(values[:1])[0], dtype=np.uint64)
    return pd.util.hash_array(pd.Series(values, dtype=object).astype(str).to_numpy(object))


class Preparer:
    """Stateful only for multiclass: it owns the class vocabulary (codes never change)."""

    def __init__(self, model: ModelSpec):
        self.model = model
        self.classes: list[str] = [str(c) for c in model.classes]
        self._fixed = bool(model.classes)
        if self._fixed:
            self.classes.append(OTHER)
        self._index = {c: i for i, c in enumerate(self.classes)}

    def columns(self, batch: RecordBatch) -> ModelColumns:
        m = self.model
        if m.task == "binary":
            predicted = np.where(np.isnan(batch.score), np.nan,
                                 (batch.score >= m.threshold).astype(np.float64))
            no_score = np.isnan(batch.score)
            if no_score.any():
                by_class = _truthy(batch.pred_class[no_score], m.positive_label)
                predicted[no_score] = by_class
            label = _truthy(batch.label, m.positive_label)
        elif m.task == "multiclass":
            predicted = self.codes(batch.pred_class)
            label = self.codes(batch.label)
        else:
            predicted = batch.value.copy()
            no_value = np.isnan(predicted)
            predicted[no_value] = batch.score[no_value]
            label = _floats(batch.label)
        return ModelColumns(score=batch.score, predicted=predicted, label=label,
                       outcome=batch.outcome, features=batch.features,
                       key_source=lambda: record_keys(batch))

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Class values → int64 codes (-1 for missing)."""
        text = coded(values)
        if text is not None:  # the decoder's text: per distinct value, in the same order
            codes, uniques = text
            names = uniques.tolist()
            mapped = np.full(len(names) + 1, -1, dtype=np.int64)
            for i in sorted(range(len(names)), key=names.__getitem__):
                mapped[i] = self._code(names[i])
            return mapped[codes]
        out = np.full(values.shape[0], -1, dtype=np.int64)
        present = np.fromiter((v is not None for v in values), bool, count=values.shape[0])
        if not present.any():
            return out
        uniques, inverse = np.unique(np.array([str(v) for v in values[present]], dtype=object),
                                     return_inverse=True)
        mapped = np.array([self._code(u) for u in uniques], dtype=np.int64)
        out[present] = mapped[inverse]
        return out

    def _code(self, value: str) -> int:
        code = self._index.get(value)
        if code is not None:
            return code
        if self._fixed or len(self.classes) >= MAX_CLASSES:
            if OTHER not in self._index:
                self._index[OTHER] = len(self.classes)
                self.classes.append(OTHER)
            return self._index[OTHER]
        self._index[value] = len(self.classes)
        self.classes.append(value)
        return self._index[value]

    def to_state(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.classes[:] = state["classes"]  # in place: stages hold the list (class names)
        self._index = {c: i for i, c in enumerate(self.classes)}


def _truthy(values: np.ndarray, positive: Any) -> np.ndarray:
    """Binary labels → 1.0 / 0.0, NaN for missing or unreadable.

    The positive label (as logged or as text) is 1; with a numeric or boolean positive label,
    0/false/no are 0 and anything else is unreadable (NaN); with a text positive label
    (``positive_label: fraud``) every other value is 0. Decided once per distinct value
    (``pandas.factorize``), unless this positive label reads ``True``/``1``/``1.0`` (or
    ``False``/``0``/``0.0``) differently — values a hash table takes for one.
    """
    n = values.shape[0]
    if n == 0:
        return np.full(0, np.nan)
    if _equal_keys_differ(positive):
        return np.array([_truthy_one(v, positive) for v in values], dtype=np.float64)
    try:
        codes, uniques = factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): none of them reads as a label
        return np.array([_truthy_one(v, positive) for v in values], dtype=np.float64)
    mapped = np.array([_truthy_one(u, positive) for u in uniques] + [np.nan], dtype=np.float64)
    return mapped[codes]  # code -1 (missing) picks the NaN at the end


def _truthy_one(v: Any, positive: Any) -> float:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return np.nan
    pos_text = str(positive).lower()
    text_positive = isinstance(positive, str) and pos_text not in _TRUE
    t = ("true" if v else "false") if isinstance(v, bool | np.bool_) else str(v).lower()
    if t == pos_text or (not text_positive and t in _TRUE):
        return 1.0
    if text_positive or t in _FALSE:
        return 0.0
    return np.nan


def _equal_keys_differ(positive: Any) -> bool:
    """Whether ``True``, ``1`` and ``1.0`` (or ``False``, ``0``, ``0.0``), which hash alike,
    read as different labels for this positive label."""
    def same(*vs: Any) -> bool:
        out = [_truthy_one(v, positive) for v in vs]
        return all(o == out[0] or (np.isnan(o) and np.isnan(out[0])) for o in out)

    return not (same(True, 1, 1.0) and same(False, 0, 0.0))


def _floats(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    for i, v in enumerate(values):
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = v
        elif isinstance(v, str):
            try:
                out[i] = float(v)
            except ValueError:
                continue
    return out
