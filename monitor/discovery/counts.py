"""Mergeable errors and records per candidate conjunction: the window state of discovery.

One flat array per statistic over *cells*: the level-1 slices of each feature (``capacity``
codes each) and, with ``max_level=2``, the level-2 slices of each pair of features. A batch
is one ``np.bincount`` per statistic over ``(blocks × records)`` cell indices. The state is
bounded by the coder's capacities, never by the records: 10 features of 22 codes hold
220 + 45 × 484 = 22 000 cells.

>>> import numpy as np
>>> from monitor.discovery.coder import FeatureCoder
>>> coder = FeatureCoder(("a", "b"), {})
>>> acc = ConjunctionCounts(coder, "misclassification", max_level=2)
>>> cols = {"a": np.array(["x", "x", "y"], object), "b": np.array(["u", "v", "u"], object)}
>>> acc.add(coder.encode(cols), np.array([1.0, 0.0, 1.0]))
>>> acc.total, acc.total_error
(3.0, 2.0)
>>> layout = acc.layout
>>> cell = layout.offsets[2] + 2 * coder.capacity[1] + 2   # a=x, b=u
>>> float(acc.n[cell]), float(acc.e[cell])
(1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations
from typing import Any, ClassVar

import numpy as np

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.registry import register
from monitor.discovery.coder import FeatureCoder
from monitor.discovery.errors import BINARY_ERRORS, record_errors


@dataclass(frozen=True)
class Layout:
    """Where each cell lives. ``blocks[b]`` is ``(i,)`` or ``(i, j)``; per cell: its block,
    and the code of each of its features (``-1`` for a level-1 cell's second)."""

    capacity: tuple[int, ...]
    blocks: tuple[tuple[int, ...], ...]
    offsets: np.ndarray  # first cell of each block (and the total at the end)
    block: np.ndarray
    code_a: np.ndarray
    code_b: np.ndarray

    @property
    def size(self) -> int:
        return int(self.offsets[-1])


@cache
def layout_for(capacity: tuple[int, ...], max_level: int) -> Layout:
    blocks = [(i,) for i in range(len(capacity))]
    if max_level >= 2:
        blocks += list(combinations(range(len(capacity)), 2))
    sizes = [capacity[b[0]] * (capacity[b[1]] if len(b) == 2 else 1) for b in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    block = np.repeat(np.arange(len(blocks)), sizes)
    code_a = np.empty(int(offsets[-1]), np.int64)
    code_b = np.full(int(offsets[-1]), -1, np.int64)
    for k, b in enumerate(blocks):
        local = np.arange(sizes[k])
        part = slice(offsets[k], offsets[k + 1])
        if len(b) == 1:
            code_a[part] = local
        else:
            code_a[part], code_b[part] = divmod(local, capacity[b[1]])
    for arr in (offsets, block, code_a, code_b):
        arr.flags.writeable = False
    return Layout(capacity, tuple(blocks), offsets, block, code_a, code_b)


@register
class ConjunctionCounts:
    """Records, error sum (and error sum of squares for a non-0/1 error) per cell.

    ``update`` sees labelled records only (``needs_label``), each once: at arrival when the
    label came with the prediction, or when its label joins later. ``merge`` adds cells by
    their feature values, so states of other processes (other coders) merge exactly while the
    union of values fits ``max_values``.
    """

    kind: ClassVar[str] = "discovery_counts"
    needs_label: ClassVar[bool] = True

    def __init__(self, coder: FeatureCoder, error: str, max_level: int = 2):
        self.coder = coder
        self.error = error
        self.max_level = max_level
        self.layout = layout_for(coder.capacity, max_level)
        size = self.layout.size
        self.n = np.zeros(size)
        self.e = np.zeros(size)
        self.e2 = None if error in BINARY_ERRORS else np.zeros(size)
        self.total = self.total_error = self.total_error2 = 0.0

    @property
    def binary(self) -> bool:
        return self.e2 is None

    def add(self, codes: np.ndarray, errors: np.ndarray) -> None:
        """Fold records: ``codes`` (features × records, from the coder) and their errors."""
        n = errors.shape[0]
        if not n:
            return
        self.total += n
        self.total_error += float(errors.sum())
        size = self.layout.size
        if self.e2 is None:  # 0/1 errors: one count per (cell, erred) pair
            both = np.bincount(self._index(codes, errors != 0).ravel(), minlength=2 * size)
            erred = both[1::2]
            self.n += both[0::2] + erred
            self.e += erred
            return
        index = self._index(codes).ravel()
        blocks = len(self.layout.blocks)
        self.n += np.bincount(index, minlength=size)
        self.e += np.bincount(index, weights=np.tile(errors, blocks), minlength=size)
        sq = errors * errors
        self.e2 += np.bincount(index, weights=np.tile(sq, blocks), minlength=size)
        self.total_error2 += float(sq.sum())

    def _index(self, codes: np.ndarray, bit: np.ndarray | None = None) -> np.ndarray:
        """Cell of each record in each block (blocks × records); with ``bit``, ``2 × cell +
        bit`` (the pair codes of cell and bit, for one ``bincount`` of both)."""
        lay = self.layout
        cap, scale = lay.capacity, 1 if bit is None else 2
        low = codes if bit is None else codes * 2 + bit  # the lower feature of a pair / level 1
        index = np.empty((len(lay.blocks), codes.shape[1]), dtype=np.intp)
        for k, b in enumerate(lay.blocks):
            row = index[k]
            if len(b) == 2:
                np.multiply(codes[b[0]], scale * cap[b[1]], out=row)
                row += low[b[1]]
            else:
                row[:] = low[b[0]]
            row += scale * lay.offsets[k]
        return index

    # ---- the accumulator protocol --------------------------------------------------------
    def update(self, cols: ModelColumns) -> None:
        errors, rows = record_errors(self.error, cols)
        if rows.shape[0]:
            part = {f: cols.features[f][rows] for f in self.coder.features
                    if f in cols.features}
            self.add(self.coder.encode(_complete(part, rows.shape[0])), errors)

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[ConjunctionCounts, np.ndarray]]
                    ) -> None:
        """The batch's codes and errors once, then each group's rows."""
        for acc, rows in items:
            key = ("discovery", id(acc.coder), acc.error)
            codes, errors, known = cols.derived(key, lambda c, a=acc: _batch(a, c))
            sel = rows[known[rows]]
            if sel.shape[0] == codes.shape[1]:
                acc.add(codes, errors)  # the whole batch: no copy
            elif sel.shape[0]:
                acc.add(codes[:, sel], errors[sel])

    def merge(self, other: ConjunctionCounts) -> None:
        if other.coder is self.coder or _same_codes(self.coder, other.coder):
            self.n += other.n
            self.e += other.e
            if self.e2 is not None:
                self.e2 += other.e2
        else:
            self._merge_remapped(other)
        self.total += other.total
        self.total_error += other.total_error
        self.total_error2 += other.total_error2

    def _merge_remapped(self, other: ConjunctionCounts) -> None:
        if (other.coder.features, other.coder.buckets, other.max_level, other.error) != (
                self.coder.features, self.coder.buckets, self.max_level, self.error):
            raise ValueError("discovery counts of different features, buckets, level or "
                             "error signal cannot merge")
        maps = [self.coder.remap(i, other.coder.tokens(i))
                for i in range(len(self.coder.features))]
        lay, olay = self.layout, other.layout
        cells = np.flatnonzero(other.n)
        out = np.empty(cells.shape[0], np.int64)
        for k, b in enumerate(olay.blocks):
            mine = np.flatnonzero(olay.block[cells] == k)
            ca = maps[b[0]][_clip(olay.code_a[cells[mine]], maps[b[0]])]
            local = ca
            if len(b) == 2:
                cb = maps[b[1]][_clip(olay.code_b[cells[mine]], maps[b[1]])]
                local = ca * lay.capacity[b[1]] + cb
            out[mine] = lay.offsets[k] + local
        np.add.at(self.n, out, other.n[cells])
        np.add.at(self.e, out, other.e[cells])
        if self.e2 is not None:
            np.add.at(self.e2, out, other.e2[cells])

    def to_state(self) -> dict[str, Any]:
        """Plain data: the coder's parameters and tokens, and the non-empty cells."""
        c = self.coder
        cells = np.flatnonzero(self.n)
        return {"features": list(c.features),
                "buckets": {f: list(e) for f, e in c.buckets.items()},
                "max_values": c.max_values, "coder": c.to_state(), "error": self.error,
                "max_level": self.max_level, "cells": cells.tolist(),
                "n": self.n[cells].tolist(), "e": self.e[cells].tolist(),
                "e2": None if self.e2 is None else self.e2[cells].tolist(),
                "totals": [self.total, self.total_error, self.total_error2]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConjunctionCounts:
        """Rebuild with a coder of its own; :meth:`attach` moves it onto a live coder."""
        coder = FeatureCoder(tuple(state["features"]),
                             {f: tuple(e) for f, e in state["buckets"].items()},
                             int(state["max_values"]))
        coder.load_state(state["coder"])
        acc = cls(coder, str(state["error"]), int(state["max_level"]))
        cells = np.asarray(state["cells"], np.int64)
        if cells.size and (cells.min() < 0 or cells.max() >= acc.layout.size):
            raise ValueError("discovery counts: cell index out of range")
        acc.n[cells] = state["n"]
        acc.e[cells] = state["e"]
        if acc.e2 is not None and state["e2"] is not None:
            acc.e2[cells] = state["e2"]
        acc.total, acc.total_error, acc.total_error2 = map(float, state["totals"])
        return acc

    def attach(self, coder: FeatureCoder) -> ConjunctionCounts:
        """These counts in the codes of ``coder`` (the stage's live one)."""
        if coder is self.coder:
            return self
        fresh = ConjunctionCounts(coder, self.error, self.max_level)
        fresh.merge(self)
        return fresh

    def result(self) -> dict[str, float]:
        return {}  # discovered slices are the stage's output, not per-slice metrics


def _batch(acc: ConjunctionCounts, cols: ModelColumns) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Codes (features × records), errors and known-mask over a whole batch; the ``derived``
    cache indexes it for taken columns along the last axis. Only the records with a known
    error are coded (the others, e.g. waiting for their label, are never counted: code 0)."""
    errors, rows = record_errors(acc.error, cols)
    n = len(cols)
    present = [f for f in acc.coder.features if f in cols.features]
    if rows.shape[0] == n:
        codes = acc.coder.encode(_complete({f: cols.features[f] for f in present}, n))
    else:
        codes = np.zeros((len(acc.coder.features), n), dtype=np.int64)
        if rows.shape[0]:
            codes[:, rows] = acc.coder.encode(_complete(
                {f: cols.features[f][rows] for f in present}, rows.shape[0]))
    full = np.zeros(n)
    full[rows] = errors
    known = np.zeros(n, bool)
    known[rows] = True
    return _Stack(codes, full, known)


class _Stack(tuple):
    """(codes, errors, known) indexable along the record axis as one array, for
    ``ModelColumns.derived``."""

    def __new__(cls, codes, errors, known):
        return super().__new__(cls, (codes, errors, known))

    def __getitem__(self, index):
        if isinstance(index, int):
            return tuple.__getitem__(self, index)
        codes, errors, known = tuple.__iter__(self)
        return _Stack(codes[:, index], errors[index], known[index])


def _complete(columns: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return columns if columns else {"": np.zeros(n)}


def _clip(codes: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    return np.minimum(codes, mapping.shape[0] - 1)


def _same_codes(a: FeatureCoder, b: FeatureCoder) -> bool:
    return (a.features == b.features and a.buckets == b.buckets
            and a.max_values == b.max_values and a.values == b.values)
