"""The groups of one batch, arranged for one-pass updates of every group at once.

A batch is cut into groups (model × version × slice × window). Groups of one slice rule are
disjoint, groups of different rules overlap (a record is in one group per rule). *Layers*
are runs of pairwise disjoint groups: per layer, each record has at most one group, so a
compiled loop (:mod:`monitor.core.kernels`) visits every record once per layer.

>>> import numpy as np
>>> codes, groups = layer_arrays([np.array([0, 1]), np.array([2]), np.array([1, 2])], 3)
>>> codes.tolist(), groups.tolist()
([[0, 0, 1], [1, 0, 0]], [[0, 1, -1], [2, -1, -1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from monitor.core.metrics.base import ModelColumns

Layers = tuple[np.ndarray, np.ndarray]  # (layer_codes, layer_groups) of layer_arrays


class _Layer:
    """Pairwise disjoint groups: ``code[i]`` is the local group of record ``i`` (``size``:
    none of them) and ``groups[l]`` the caller's index of local group ``l``."""

    def __init__(self, n: int):
        self.code = np.empty(n, dtype=np.int64)
        self.free = np.ones(n, dtype=bool)  # records in no group of the layer (yet)
        self.groups: list[int] = []

    def add(self, g: int, rows: np.ndarray) -> None:
        self.free[rows] = False
        self.code[rows] = len(self.groups)
        self.groups.append(g)

    def finish(self) -> None:
        self.code[self.free] = len(self.groups)


def layer_arrays(rows_list: Sequence[np.ndarray], n: int) -> Layers:
    """``(layer_codes, layer_groups)``: per layer, each record's local group (``L × n``), and
    each local group's index in ``rows_list`` (``L × (max size + 1)``, -1 past the end — the
    local group of records in none). Groups go into the current layer until one shares a
    record with it, which starts the next."""
    layers: list[_Layer] = []
    for g, rows in enumerate(rows_list):
        if not layers or not layers[-1].free[rows].all():
            layers.append(_Layer(n))
        layers[-1].add(g, rows)
    if not layers:
        return np.zeros((0, n), dtype=np.int64), np.full((0, 1), -1, dtype=np.int64)
    for layer in layers:
        layer.finish()
    codes = np.stack([layer.code for layer in layers])
    groups = np.full((len(layers), max(len(layer.groups) for layer in layers) + 1), -1,
                     dtype=np.int64)
    for i, layer in enumerate(layers):
        groups[i, :len(layer.groups)] = layer.groups
    return codes, groups


def batch_layers(cols: ModelColumns, rows_list: Sequence[np.ndarray]) -> Layers:
    """:func:`layer_arrays` of ``rows_list`` over the records of ``cols``, computed once per
    batch: every accumulator kind folding the same groups (the same row arrays) shares them.
    Kept on ``cols`` with the row arrays themselves (so their ids cannot be reused while
    kept), and a hit must be those very arrays."""
    key = ("layers", tuple(id(rows) for rows in rows_list))
    hit = cols._derived.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], rows_list, strict=True)):
        return hit[1]
    layers = layer_arrays(rows_list, len(cols))
    cols._derived[key] = (tuple(rows_list), layers)
    return layers


def count_codes(cols: ModelColumns, rows_list: Sequence[np.ndarray], codes: np.ndarray,
                width: int) -> np.ndarray:
    """``hist[g, c]``: records of group ``g`` with code ``c`` (``codes``: ``n`` or ``K × n``
    int64 in ``[0, width)``)."""
    from monitor.core.kernels import fold_codes

    hist = np.zeros((len(rows_list), width), dtype=np.int64)
    codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
    fold_codes(codes, *batch_layers(cols, rows_list), hist)
    return hist


def sum_values(cols: ModelColumns, rows_list: Sequence[np.ndarray],
               values: np.ndarray) -> np.ndarray:
    """``out[g, j]``: sum of ``values[j]`` over the records of group ``g`` (``values``:
    ``K × n`` float64)."""
    from monitor.core.kernels import fold_sums

    values = np.ascontiguousarray(np.atleast_2d(values), dtype=np.float64)
    out = np.zeros((len(rows_list), values.shape[0]))
    fold_sums(values, *batch_layers(cols, rows_list), out)
    return out
