"""The Numba kernels as they were before the numpy port (commit 04d5e3e), kept for
``bench/kernels.py`` only: nothing in slicewatch imports this file, and Numba is no dependency.

Compiled loops (Numba) that fold one batch into the state of every slice group at once.

The groups of a batch overlap (a record is in one group per slice rule), so they are given
as *layers*: ``layer_codes[l, i]`` is the layer-local group of record ``i`` in layer ``l``
and ``layer_groups[l, local]`` the global group (``-1``: the record is in no group of that
layer). One pass over the records updates, for every group ``g`` a record is in:

- ``hist[g, code]`` for each of its (column-offset) codes;
- for numeric columns, over finite values only (``code < ends[f]``): sums of the value minus
  a per-column ``shift`` and of its square (so the variance keeps its precision), minimum
  and maximum.

The callers turn these into counts and Chan-merged moments
(:func:`monitor.drift.features._numeric_groups`, the ``update_many`` of the metric
accumulators); layers come from :func:`monitor.core.grouped.layers_for`. Kernels compile on first
use and are cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bucket_codes(x: np.ndarray, search: np.ndarray, n_edges: np.ndarray,
                 offsets: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Per value of ``x`` (``F × n``), its bucket code over column ``f``'s ``E = n_edges[f]``
    search edges ``search[f, :E]`` — ``searchsorted(side="right")``, i.e. ``0..E`` — or
    ``E + 1`` for -inf, ``E + 2`` for +inf, ``E + 3`` for NaN; plus ``offsets[f]``."""
    f_cols, n = x.shape
    out = np.empty((f_cols, n), dtype=np.int64)
    for f in range(f_cols):
        e = n_edges[f]
        base = offsets[f]
        for i in range(n):
            v = x[f, i]
            if v != v:
                out[f, i] = base + e + 3
            elif v == np.inf:
                out[f, i] = base + e + 2
            elif v == -np.inf:
                out[f, i] = base + e + 1
            else:
                k = 0
                for j in range(e):  # edges at or below v (branch-free; bins are few)
                    k += search[f, j] <= v
                out[f, i] = base + k
    return out


@njit(cache=True, nogil=True)
def fold_numeric(x: np.ndarray, codes: np.ndarray, ends: np.ndarray, shift: np.ndarray,
                 layer_codes: np.ndarray, layer_groups: np.ndarray, hist: np.ndarray,
                 s1: np.ndarray, s2: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> None:  # pragma: no cover - compiled
    """``x``, ``codes``: ``F × n``; ``hist``: ``G × W``; ``s1``, ``s2``, ``lo``, ``hi``:
    ``G × F``, updated in place."""
    f_cols, n = x.shape
    n_layers = layer_codes.shape[0]
    for i in range(n):
        for layer in range(n_layers):
            g = layer_groups[layer, layer_codes[layer, i]]
            if g < 0:
                continue
            for f in range(f_cols):
                c = codes[f, i]
                hist[g, c] += 1
                if c < ends[f]:
                    v = x[f, i]
                    d = v - shift[f]
                    s1[g, f] += d
                    s2[g, f] += d * d
                    if v < lo[g, f]:
                        lo[g, f] = v
                    if v > hi[g, f]:
                        hi[g, f] = v


@njit(cache=True, nogil=True)
def fold_codes(codes: np.ndarray, layer_codes: np.ndarray, layer_groups: np.ndarray,
               hist: np.ndarray) -> None:  # pragma: no cover - compiled
    """``hist[g, codes[j, i]] += 1`` for every column ``j`` of every record ``i`` in group
    ``g`` (``codes``: ``K × n``)."""
    k_cols, n = codes.shape
    n_layers = layer_codes.shape[0]
    for i in range(n):
        for layer in range(n_layers):
            g = layer_groups[layer, layer_codes[layer, i]]
            if g < 0:
                continue
            for j in range(k_cols):
                hist[g, codes[j, i]] += 1


@njit(cache=True, nogil=True)
def fold_sums(values: np.ndarray, layer_codes: np.ndarray, layer_groups: np.ndarray,
              out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[g, j] += values[j, i]`` for every row ``j`` of every record ``i`` in group ``g``
    (``values``: ``K × n``)."""
    k_rows, n = values.shape
    n_layers = layer_codes.shape[0]
    for i in range(n):
        for layer in range(n_layers):
            g = layer_groups[layer, layer_codes[layer, i]]
            if g < 0:
                continue
            for j in range(k_rows):
                out[g, j] += values[j, i]


@njit(cache=True, nogil=True)
def reservoir_candidates(keys: np.ndarray, bar: np.ndarray, layer_codes: np.ndarray,
                         layer_groups: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``(groups, rows)`` of the records whose key is below their group's ``bar`` (the
    largest k-th key among the group's reservoirs), sorted by group then row."""
    n = keys.shape[0]
    n_layers = layer_codes.shape[0]
    count = 0
    for i in range(n):
        for layer in range(n_layers):
            g = layer_groups[layer, layer_codes[layer, i]]
            if g >= 0 and keys[i] < bar[g]:
                count += 1
    groups = np.empty(count, dtype=np.int64)
    rows = np.empty(count, dtype=np.int64)
    j = 0
    for i in range(n):
        for layer in range(n_layers):
            g = layer_groups[layer, layer_codes[layer, i]]
            if g >= 0 and keys[i] < bar[g]:
                groups[j] = g
                rows[j] = i
                j += 1
    order = np.argsort(groups, kind="mergesort")
    return groups[order], rows[order]


def warm_up() -> None:
    """Load (or compile, the first time) every kernel, so a daemon pays it at start-up and
    not on its first batch."""
    x = np.zeros((1, 1))
    codes = np.zeros((1, 1), dtype=np.int64)
    bucket_codes(x, np.ones((1, 1)), np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    layer_codes = np.zeros((1, 1), dtype=np.int64)
    layer_groups = np.zeros((1, 2), dtype=np.int64)
    hist = np.zeros((1, 2), dtype=np.int64)
    sums = [np.zeros((1, 1)) for _ in range(4)]
    fold_numeric(x, codes, np.ones(1, dtype=np.int64), np.zeros(1), layer_codes, layer_groups,
                 hist, *sums)
    fold_codes(codes, layer_codes, layer_groups, hist)
    fold_sums(x, layer_codes, layer_groups, sums[0])
    reservoir_candidates(np.zeros(1), np.ones(1), layer_codes, layer_groups)
