"""Vectorised folds of one batch into the state of every slice group at once (numpy only).

The groups of a batch overlap (a record is in one group per slice rule), so they are given
as *layers*: ``layer_codes[l, i]`` is the layer-local group of record ``i`` in layer ``l``
and ``layer_groups[l, local]`` the global group (``-1``: the record is in no group of that
layer). Each fold first lists the *memberships* (group, record) of every layer, then updates,
for every group ``g`` a record is in:

- ``hist[g, code]`` for each of its (column-offset) codes (``np.bincount``);
- for numeric columns, over finite values only (``code < ends[f]``): sums of the value minus
  a per-column ``shift`` and of its square (so the variance keeps its precision), minimum
  and maximum (``np.bincount`` with weights, ``np.minimum.at``/``np.maximum.at``).

The callers turn these into counts and Chan-merged moments
(:func:`monitor.drift.features._numeric_groups`, the ``update_many`` of the metric
accumulators); layers come from :func:`monitor.core.grouped.layer_arrays`. Nothing compiles at
start-up (these replaced Numba kernels; ``bench/kernels.py`` measures both).

>>> import numpy as np
>>> codes = np.array([[0, 1, 1, 0]])
>>> layer_codes, layer_groups = np.array([[0, 0, 1, 1]]), np.array([[0, 1, -1]])
>>> hist = np.zeros((2, 2), dtype=np.int64)
>>> fold_codes(codes, layer_codes, layer_groups, hist)
>>> hist.tolist()  # group 0 holds records 0, 1; group 1 records 2, 3
[[1, 1], [1, 1]]
"""

from __future__ import annotations

import numpy as np


def memberships(layer_codes: np.ndarray,
                layer_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(groups, rows)``: one pair per record and group it is in, layer after layer (rows
    ascending within a layer).

    >>> g, r = memberships(np.array([[0, 1, 0], [1, 0, 0]]), np.array([[0, -1], [1, -1]]))
    >>> g.tolist(), r.tolist()
    ([0, 0, 1, 1], [0, 2, 1, 2])
    """
    layer_codes = np.asarray(layer_codes, dtype=np.int64)
    if layer_codes.shape[0] == 1:
        g = np.asarray(layer_groups[0], dtype=np.int64)[layer_codes[0]]
        rows = np.flatnonzero(g >= 0)
        return g[rows], rows
    g = np.take_along_axis(np.asarray(layer_groups, dtype=np.int64), layer_codes, axis=1)
    keep = g >= 0
    rows = np.nonzero(keep)[1]
    return g[keep], rows


def bucket_codes(x: np.ndarray, search: np.ndarray, n_edges: np.ndarray,
                 offsets: np.ndarray) -> np.ndarray:
    """Per value of ``x`` (``F × n``), its bucket code over column ``f``'s ``E = n_edges[f]``
    search edges ``search[f, :E]`` — ``searchsorted(side="right")``, i.e. ``0..E`` — or
    ``E + 1`` for -inf, ``E + 2`` for +inf, ``E + 3`` for NaN; plus ``offsets[f]``.

    >>> bucket_codes(np.array([[0.5, 1.0, np.nan, -np.inf, np.inf]]), np.array([[1.0, 2.0]]),
    ...              np.array([2]), np.array([10])).tolist()
    [[10, 11, 15, 13, 14]]
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.int64)
    for f in range(x.shape[0]):
        e = int(n_edges[f])
        row = x[f]
        k = np.searchsorted(search[f, :e], row, side="right")
        k[row == -np.inf] = e + 1
        k[row == np.inf] = e + 2
        k[np.isnan(row)] = e + 3
        out[f] = k + int(offsets[f])
    return out


CHUNK = 1 << 16
"""Records folded per step: the temporaries of a fold stay ``O(columns × CHUNK)``."""


def _layer_steps(layer_codes: np.ndarray, layer_groups: np.ndarray, n: int):
    """Per layer and chunk of records: ``(sl, local, owners, size)`` — the record slice, the
    records' local groups, the global group of each local group (``-1``: none) and the number
    of local groups (the last one, ``size - 1``, may be "none")."""
    for layer in range(layer_codes.shape[0]):
        owners = np.asarray(layer_groups[layer], dtype=np.int64)
        if not (owners >= 0).any():
            continue
        for start in range(0, n, CHUNK):
            sl = slice(start, min(n, start + CHUNK))
            yield sl, layer_codes[layer, sl], owners, owners.shape[0]


def _scatter_add(out: np.ndarray, owners: np.ndarray, local: np.ndarray) -> None:
    """``out[owners[l]] += local[l]`` for the local groups that have an owner."""
    has = owners >= 0
    out[owners[has]] += local[has]


def fold_numeric(x: np.ndarray, codes: np.ndarray, ends: np.ndarray, shift: np.ndarray,
                 layer_codes: np.ndarray, layer_groups: np.ndarray, hist: np.ndarray,
                 s1: np.ndarray, s2: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """``x``, ``codes``: ``F × n``; ``hist``: ``G × W``; ``s1``, ``s2``, ``lo``, ``hi``:
    ``G × F``, updated in place."""
    n_cols, n = x.shape
    width = hist.shape[1]
    cols = np.arange(n_cols)[:, None]
    ends = np.asarray(ends)[:, None]
    shift = np.asarray(shift, dtype=np.float64)[:, None]
    for sl, local, owners, size in _layer_steps(layer_codes, layer_groups, n):
        c, v = codes[:, sl], x[:, sl]
        ok = c < ends
        _scatter_add(hist, owners, np.bincount((local * width + c).ravel(),
                                               minlength=size * width).reshape(size, width))
        d = np.where(ok, v - shift, 0.0)
        cell = (local * n_cols + cols).ravel()
        _scatter_add(s1, owners, np.bincount(cell, weights=d.ravel(),
                                             minlength=size * n_cols).reshape(size, n_cols))
        _scatter_add(s2, owners, np.bincount(cell, weights=(d * d).ravel(),
                                             minlength=size * n_cols).reshape(size, n_cols))
        low, high, present = _group_extremes(v, ok, local, size)
        mine = owners[present]
        has = mine >= 0
        g = mine[has]
        lo[g] = np.minimum(lo[g], low[has])
        hi[g] = np.maximum(hi[g], high[has])


def _group_extremes(v: np.ndarray, ok: np.ndarray, local: np.ndarray,
                    size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per local group present in ``local``: the minimum and maximum of ``v`` (``F × n``)
    where ``ok`` (``±inf`` if none), as ``(low, high, present)`` with ``low``, ``high``:
    ``len(present) × F``. One group: a plain reduction; several: sorted by group (radix sort
    of small codes), then ``reduceat``."""
    first = int(local[0])
    if (local == first).all():
        low = np.where(ok, v, np.inf).min(axis=1)[None, :]
        high = np.where(ok, v, -np.inf).max(axis=1)[None, :]
        return low, high, np.array([first])
    order = np.argsort(local.astype(np.int16 if size < 2**15 else np.int64), kind="stable")
    sorted_local = local[order]
    starts = np.flatnonzero(np.r_[True, sorted_local[1:] != sorted_local[:-1]])
    vs, oks = v[:, order], ok[:, order]
    low = np.minimum.reduceat(np.where(oks, vs, np.inf), starts, axis=1).T
    high = np.maximum.reduceat(np.where(oks, vs, -np.inf), starts, axis=1).T
    return low, high, sorted_local[starts]


def fold_codes(codes: np.ndarray, layer_codes: np.ndarray, layer_groups: np.ndarray,
               hist: np.ndarray) -> None:
    """``hist[g, codes[j, i]] += 1`` for every column ``j`` of every record ``i`` in group
    ``g`` (``codes``: ``K × n``)."""
    width = hist.shape[1]
    for sl, local, owners, size in _layer_steps(layer_codes, layer_groups, codes.shape[1]):
        counts = np.bincount((local * width + codes[:, sl]).ravel(), minlength=size * width)
        _scatter_add(hist, owners, counts.reshape(size, width))


def fold_sums(values: np.ndarray, layer_codes: np.ndarray, layer_groups: np.ndarray,
              out: np.ndarray) -> None:
    """``out[g, j] += values[j, i]`` for every row ``j`` of every record ``i`` in group ``g``
    (``values``: ``K × n``)."""
    k_rows, n = values.shape
    rows = np.arange(k_rows)[:, None]
    for sl, local, owners, size in _layer_steps(layer_codes, layer_groups, n):
        sums = np.bincount((local * k_rows + rows).ravel(), weights=values[:, sl].ravel(),
                           minlength=size * k_rows)
        _scatter_add(out, owners, sums.reshape(size, k_rows))


def reservoir_candidates(keys: np.ndarray, bar: np.ndarray, layer_codes: np.ndarray,
                         layer_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(groups, rows)`` of the records whose key is below their group's ``bar`` (the
    largest k-th key among the group's reservoirs), sorted by group then row."""
    groups, rows = memberships(layer_codes, layer_groups)
    below = keys[rows] < bar[groups]
    groups, rows = groups[below], rows[below]
    order = np.lexsort((rows, groups))
    return groups[order], rows[order]


def warm_up() -> None:
    """Nothing to compile any more: kept so callers written for the compiled kernels run."""
