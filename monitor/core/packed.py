"""The profile build's reference, held whole and compactly.

:func:`pack` is :func:`monitor.core.records.concat` of the decoded batches (the same values,
dtypes and order), written column by column into the rows of one matrix per dtype while the
parts are dropped as each column is done, so the read never holds a concatenated copy beside
its parts. :class:`Packer` does the same as the batches arrive, into matrices allocated for
a known number of rows (a Parquet reference: its metadata), so the decoded batches are never
held at all. The float64 rows come first in ``first`` order (the drift summaries' numeric
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
from typing import Any

import numpy as np

from monitor.core.records import concat
from monitor.core.types import RecordBatch
from slices.codes import coded, known

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


class Packer:
    """:func:`pack` as the batches arrive: each is copied into matrices of ``capacity`` rows
    (allocated at the first batch, laid out as :func:`pack` lays them out) and can be freed at
    once. A batch that does not fit the first one's columns and dtypes, or the capacity (or
    no capacity given), turns it back into collecting the batches for :func:`pack`.

    Text columns the decoder coded (:func:`slices.codes.coded`) are held as their codes only
    while reading, and made at the end: ``pd.factorize``'s codes over the whole column (the
    smallest signed integer type), one object per distinct value, registered with the column
    (:func:`slices.codes.known`); a column of one value (a role absent from the data, one
    model) is a read-only view of that value, not a cell each. A batch whose column is not
    coded turns the packer back into collecting."""

    def __init__(self, capacity: int | None, first: Sequence[str] = ()):
        self.capacity = capacity
        self.first = tuple(first)
        self.n = 0
        self.parts: list[RecordBatch] | None = None if capacity else []
        self.layout: dict[tuple[str, str], np.dtype] = {}
        self.rows: dict[tuple[str, str], np.ndarray] = {}
        self.tags: list[RecordBatch] = []
        self.text: dict[tuple[str, str], _Codes] = {}  # coded text columns: codes only

    def add(self, batch: RecordBatch) -> None:
        """Copy ``batch`` in (or keep it, collecting)."""
        if not len(batch):
            return
        if self.parts is None and not self.layout:
            self._allocate(batch)
        if self.parts is None and (_layout(batch) != self.layout
                                   or self.n + len(batch) > self.capacity
                                   or any(coded(_column(batch, k)) is None for k in self.text)):
            self.parts = [self._held()]  # back to collecting: what is held so far first
        if self.parts is not None:
            self.parts.append(batch)
            return
        sl = slice(self.n, self.n + len(batch))
        for key, row in self.rows.items():
            row[sl] = _column(batch, key)
        for key, text in self.text.items():
            text.add(_column(batch, key), self.n)
        self.tags.append(_tags_only(batch))
        self.n += len(batch)

    def finish(self) -> RecordBatch:
        """The reference: ``concat`` of every batch added."""
        if self.parts is not None:
            parts, self.parts = self.parts, []
            return pack(parts, self.first)
        out = self._held()
        self.text = {}  # their int32 codes: the columns hold their own now
        return out

    def _allocate(self, batch: RecordBatch) -> None:
        self.layout = _layout(batch)
        names = sorted(batch.features)
        order = [("feature", k) for k in self.first if k in batch.features]
        order += [("role", "score")]
        order += [key for key in [*(("role", r) for r in _ROLES),
                                  *(("feature", k) for k in names)] if key not in order]
        self.text = {key: _Codes(self.capacity) for key in order
                     if self.layout[key] == np.dtype(object)
                     and coded(_column(batch, key)) is not None}
        for dtype in (np.dtype(np.float64), np.dtype(object)):
            keys = [key for key in order if self.layout[key] == dtype and key not in self.text]
            matrix = np.empty((len(keys), self.capacity), dtype=dtype)
            self.rows.update((key, matrix[i]) for i, key in enumerate(keys))
        for key in order:
            if key not in self.rows and key not in self.text:
                self.rows[key] = np.empty(self.capacity, dtype=self.layout[key])

    def _held(self) -> RecordBatch:
        """What was copied in so far, as one batch (views of the matrices)."""
        if not self.n:
            return RecordBatch.empty()
        cols: dict[tuple[str, str], np.ndarray | tuple[np.ndarray, np.ndarray]] = {
            key: row[:self.n] for key, row in self.rows.items()}
        for key, text in self.text.items():
            cols[key] = text.column(self.n, made=key[0] == "role")
        tags = concat(self.tags)
        return RecordBatch(**{r: cols[("role", r)] for r in _ROLES},
                           features=CodedFeatures(
                               {k: cols[("feature", k)]
                                for k in sorted(k for kind, k in cols if kind == "feature")}),
                           tag_names=tags.tag_names, tag_rows=tags.tag_rows,
                           tag_codes=tags.tag_codes)


class _Codes:
    """A text column as codes over the batches added (``pd.factorize`` of the whole column:
    distinct values by first appearance, -1 for None), from each batch's registered codes."""

    def __init__(self, capacity: int):
        self.codes = np.empty(capacity, np.int32)
        self.seen: dict[str, int] = {}
        self.objects: list[str] = []

    def add(self, col: np.ndarray, at: int) -> None:
        """The codes of ``col`` (registered: :func:`slices.codes.coded`) from row ``at``."""
        codes, uniques = coded(col)
        mapping = np.empty(len(uniques) + 1, np.int32)
        for i, u in enumerate(uniques.tolist()):
            g = self.seen.get(u)
            if g is None:
                g = self.seen[u] = len(self.objects)
                self.objects.append(u)
            mapping[i] = g
        mapping[-1] = -1  # code -1: None
        self.codes[at:at + len(col)] = mapping[codes]

    def column(self, n: int, made: bool = True
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The first ``n`` cells, registered with their codes (one value: a view of it);
        ``made`` false: ``(codes, uniques)`` of a column of several values instead (its cells
        made at each read: :class:`CodedFeatures`)."""
        uniques = np.empty(len(self.objects), object)
        uniques[:] = self.objects
        codes = self.codes[:n]
        lo, hi = (int(codes.min()), int(codes.max())) if n else (0, 0)
        small = next(t for t in (np.int8, np.int16, np.int32) if np.iinfo(t).max >= hi)
        if lo == hi:  # one value (or None) in every cell
            value = np.empty(1, object)
            value[0] = uniques[lo] if lo >= 0 else None
            return known(np.broadcast_to(value, (n,)),
                         np.broadcast_to(np.array(lo, small), (n,)), uniques)
        if not made:
            return codes.astype(small), uniques
        return cells(codes.astype(small), uniques)


def cells(codes: np.ndarray, uniques: np.ndarray) -> np.ndarray:
    """``uniques[codes]`` (code -1: None), one object per value, registered with its codes."""
    values = np.empty(len(uniques) + 1, object)
    values[:-1] = uniques  # values[-1]: None
    return known(values[codes], codes, uniques)


class CodedFeatures(dict):
    """Feature columns of which the text ones are held as ``(codes, uniques)`` and made into
    their object cells at each read (:func:`cells`, registered with their codes): the
    reference holds a byte a cell, not a pointer (200k rows × 8 text features: 1.5 MiB, not
    12 MiB), and a consumer holds a column's cells only while it uses them. Reads, iteration
    and copies look like a plain ``{name: column}``."""

    def __init__(self, columns: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]):
        super().__init__()
        self._columns = columns

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._columns[name]
        return cells(*col) if isinstance(col, tuple) else col

    def __setitem__(self, name: str, col: np.ndarray) -> None:
        self._columns[name] = col

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._columns else default

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def keys(self):
        return self._columns.keys()

    def items(self):
        return [(name, self[name]) for name in self._columns]

    def values(self):
        return [self[name] for name in self._columns]

    def copy(self) -> dict[str, np.ndarray]:
        return dict(self.items())

    def __eq__(self, other: object) -> bool:
        return dict(self.items()) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def __reduce__(self):
        return dict, (self.items(),)


def _layout(batch: RecordBatch) -> dict[tuple[str, str], np.dtype]:
    out = {("role", r): getattr(batch, r).dtype for r in _ROLES}
    out.update((("feature", k), v.dtype) for k, v in batch.features.items())
    return out


def _column(batch: RecordBatch, key: tuple[str, str]) -> np.ndarray:
    kind, name = key
    return getattr(batch, name) if kind == "role" else batch.features[name]


def _tags_only(b: RecordBatch) -> RecordBatch:
    """``b``'s tags over an empty shell of its length (for :func:`concat`'s tag merge)."""
    z = np.zeros(len(b), np.int8)
    return RecordBatch(time=z, model=z, version=z, id=z, score=z, pred_class=z, value=z,
                       label=z, outcome=z, features={}, tag_names=b.tag_names,
                       tag_rows=b.tag_rows, tag_codes=b.tag_codes)


def rows_of_one(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The ``len(arrays) × n`` view of one matrix whose consecutive rows (or their first
    ``n`` values) are ``arrays``, as :func:`pack` and :class:`Packer` lay them out; None when
    they are not (read-only: the columns themselves)."""
    if not arrays:
        return None
    a0 = arrays[0]
    base = a0.base
    if not (isinstance(base, np.ndarray) and base.ndim == 2 and base.dtype == a0.dtype
            and a0.ndim == 1 and a0.strides == (base.strides[1],) and len(arrays) > 0):
        return None
    row, start = base.strides[0], base.__array_interface__["data"][0]
    first = a0.__array_interface__["data"][0] - start
    if row <= 0 or first % row or first // row + len(arrays) > base.shape[0] \
            or a0.shape[0] > base.shape[1]:
        return None
    for i, a in enumerate(arrays):
        if (a.base is not base or a.shape != a0.shape or a.strides != a0.strides
                or a.__array_interface__["data"][0] - start != first + i * row):
            return None
    return np.lib.stride_tricks.as_strided(a0, shape=(len(arrays), a0.shape[0]),
                                           strides=(row, a0.strides[0]), writeable=False)
