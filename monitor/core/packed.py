"""The profile build's reference, held whole and compactly.

:func:`pack` is :func:`monitor.core.records.concat` of the decoded batches (the same values,
dtypes and order), written column by column into the rows of one matrix per dtype while the
parts are dropped as each column is done, so the read never holds a concatenated copy beside
its parts. The float64 rows come first in ``first`` order (the drift summaries' numeric
columns, then the score): :func:`monitor.drift.features._numeric_groups` then reads them as
rows of that matrix (:func:`rows_of_one`) instead of stacking an ``F × n`` copy.

>>> from monitor.core.types import RecordBatch
>>> def b(x, c):
...     o = np.array(c, object)
...     return RecordBatch(time=np.array(x), model=o, version=o, id=o, score=np.array(x),
...                        pred_class=o, value=np.array(x), label=o,
...                        outcome=np.zeros(len(x), np.int8), features={"x": np.array(x)})
>>> p = pack([b([1.0, 2.0], ["a", "b"]), b([3.0], ["c"])], first=("x",))
>>> p.features["x"].tolist(), p.model.tolist(), rows_of_one([p.features["x"], p.score]).shape
([1.0, 2.0, 3.0], ['a', 'b', 'c'], (2, 3))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitor.core.records import concat
from monitor.core.types import RecordBatch

_ROLES = ("time", "model", "version", "id", "score", "pred_class", "value", "label", "outcome")


def pack(batches: list[RecordBatch], first: Sequence[str] = ()) -> RecordBatch:
    """``concat(batches)``, its float64 and object columns rows of one matrix each (float64
    rows: the features ``first`` names, in that order, then ``score``, then the rest).
    ``batches`` is emptied (its parts are freed as they are copied)."""
    parts = [b for b in batches if len(b)]
    batches.clear()
    if not parts:
        return RecordBatch.empty()
    n = sum(len(b) for b in parts)
    tags = concat([_tags_only(b) for b in parts])
    names = sorted({k for b in parts for k in b.features})
    columns: dict[tuple[str, str], list[np.ndarray]] = {
        ("role", r): [getattr(b, r) for b in parts] for r in _ROLES}
    for k in names:
        numeric = any(b.features.get(k) is not None and b.features[k].dtype.kind == "f"
                      for b in parts)
        columns[("feature", k)] = [
            b.features[k] if k in b.features
            else (np.full(len(b), np.nan) if numeric else np.full(len(b), None, object))
            for b in parts]
    del parts
    kinds = {key: np.result_type(*(p.dtype for p in ps)) for key, ps in columns.items()}
    order = [("feature", k) for k in first if ("feature", k) in columns] + [("role", "score")]
    order += [key for key in columns if key not in order]
    out: dict[tuple[str, str], np.ndarray] = {}
    for dtype in (np.dtype(np.float64), np.dtype(object)):
        keys = [key for key in order if kinds[key] == dtype]
        matrix = np.empty((len(keys), n), dtype=dtype)
        for i, key in enumerate(keys):
            np.concatenate(columns.pop(key), out=matrix[i])
            out[key] = matrix[i]
    for key, ps in columns.items():  # any other dtype (outcome: int8)
        out[key] = np.concatenate(ps)
    return RecordBatch(**{r: out[("role", r)] for r in _ROLES},
                       features={k: out[("feature", k)] for k in names},
                       tag_names=tags.tag_names, tag_rows=tags.tag_rows,
                       tag_codes=tags.tag_codes)


def _tags_only(b: RecordBatch) -> RecordBatch:
    """``b``'s tags over an empty shell of its length (for :func:`concat`'s tag merge)."""
    z = np.zeros(len(b), np.int8)
    return RecordBatch(time=z, model=z, version=z, id=z, score=z, pred_class=z, value=z,
                       label=z, outcome=z, features={}, tag_names=b.tag_names,
                       tag_rows=b.tag_rows, tag_codes=b.tag_codes)


def rows_of_one(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The ``len(arrays) × n`` view of one C-contiguous matrix whose consecutive rows are
    ``arrays`` (as :func:`pack` lays them out), or None when they are not."""
    if not arrays:
        return None
    base = arrays[0].base
    if not (isinstance(base, np.ndarray) and base.ndim == 2 and base.flags.c_contiguous
            and base.dtype == arrays[0].dtype and base.shape[1] == arrays[0].shape[0]):
        return None
    start = base.__array_interface__["data"][0]
    row = base.strides[0]
    first = arrays[0].__array_interface__["data"][0] - start
    if first % row:
        return None
    r0 = first // row
    for i, a in enumerate(arrays):
        if (a.base is not base or a.ndim != 1 or a.strides != (base.strides[1],)
                or a.__array_interface__["data"][0] - start != (r0 + i) * row):
            return None
    return base[r0:r0 + len(arrays)]
