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

from functools import lru_cache

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

    Exactly ``searchsorted``'s answer, found through a uniform grid over each column's edges
    (:class:`EdgeGrid`, built once per set of edges) rather than a binary search per value.

    >>> bucket_codes(np.array([[0.5, 1.0, np.nan, -np.inf, np.inf]]), np.array([[1.0, 2.0]]),
    ...              np.array([2]), np.array([10])).tolist()
    [[10, 11, 15, 13, 14]]
    """
    x = np.asarray(x, dtype=np.float64)
    search = np.ascontiguousarray(search, dtype=np.float64)
    n_edges = np.ascontiguousarray(n_edges, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    grid = _edge_grid(search.tobytes(), search.shape, n_edges.tobytes(), offsets.tobytes())
    return grid.codes(x)


@lru_cache(maxsize=64)
def _edge_grid(search: bytes, shape: tuple[int, ...], n_edges: bytes,
               offsets: bytes) -> EdgeGrid:
    return EdgeGrid(np.frombuffer(search).reshape(shape), np.frombuffer(n_edges, np.int64),
                    np.frombuffer(offsets, np.int64))


class EdgeGrid:
    """``searchsorted(edges_f, x, side="right") + offsets[f]`` for every column ``f`` of an
    ``F × n`` matrix, by table look-ups.

    Column ``f``'s range ``[e_0, e_last]`` is cut into ``M`` equal cells; a value's cell is
    ``clip(floor(x·a + b), 0, M - 1)``, a monotone function of ``x`` (IEEE rounding is
    monotone), applied to the edges too. So an edge in an earlier cell than ``x``'s is below
    ``x``, one in a later cell above it, and only the edges in ``x``'s own cell need comparing:
    ``code = below[cell] + Σ_j (nxt_j[cell] <= x)``, ``below[cell]`` the edges of earlier
    cells, ``nxt_j[cell]`` the ``j``-th edge from there on (+inf past the last). ``M`` is
    chosen so that a cell holds at most ``MAX_PER_CELL`` edges where the spacing allows; a
    column whose edges crowd more than that into one cell is binary-searched.
    """

    MAX_PER_CELL = 1
    MAX_CELLS = 1 << 12

    def __init__(self, search: np.ndarray, n_edges: np.ndarray, offsets: np.ndarray):
        self.n_cols = search.shape[0]
        self.n_edges = [int(e) for e in n_edges]
        self.offsets = [int(o) for o in offsets]
        self.edges = [np.array(search[f, :e]) for f, e in enumerate(self.n_edges)]
        a, b, lo, hi, below, nxt, self.searched = [], [], [], [], [], [], []
        start = 0
        for f, edges in enumerate(self.edges):
            cells, scale, shift, cell_of = _cells(edges, start, self.MAX_PER_CELL,
                                                  self.MAX_CELLS)
            if cell_of is None:  # edges crowd: binary search for this column
                self.searched.append(f)
                cells, scale, shift, cell_of = 1, 0.0, float(start), np.zeros(0, np.int64)
                edges = np.zeros(0)
            first = np.searchsorted(cell_of, np.arange(cells), side="left")
            padded = np.concatenate([edges, np.full(self.MAX_PER_CELL, np.inf)])
            a.append(scale)
            b.append(shift)
            lo.append(start)
            hi.append(start + cells - 1)
            below.append(first + self.offsets[f])
            nxt.append(np.stack([padded[first + j] for j in range(self.MAX_PER_CELL)]))
            start += cells
        self.a = np.array(a)[:, None]
        self.b = np.array(b)[:, None]
        self.lo = np.array(lo, np.float64)[:, None]
        self.hi = np.array(hi, np.float64)[:, None]
        self.below = np.concatenate(below).astype(np.int32)  # int32 codes: half the memory
        self.nxt = np.concatenate(nxt, axis=1)  # MAX_PER_CELL × cells
        # codes up to E + 4 past the last offset (E + 4: drift's "not a number" code)
        top = max((o + e for o, e in zip(self.offsets, self.n_edges, strict=True)), default=0)
        self.dtype = np.dtype(np.int16 if top + 4 < np.iinfo(np.int16).max else np.int32)

    BLOCK = 1 << 14  # records coded at a time: the look-ups' temporaries stay small

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The codes of ``x`` (``F × n`` float64), :attr:`BLOCK` records at a time (every
        code depends on its own value only: the same codes as in one pass, while the
        temporaries — five ``F × n`` arrays in one pass, ≈ 80 MiB for a 20-column, 200k-row
        reference — stay a block's). Blocked, the codes are int16 where they fit (:attr:
        `dtype`: a 200k-row, 13-column reference's codes 10.4 → 5.2 MiB)."""
        n = x.shape[1]
        if n <= self.BLOCK:
            return self._codes(x)
        out = np.empty(x.shape, dtype=self.dtype)
        for start in range(0, n, self.BLOCK):
            sl = slice(start, start + self.BLOCK)
            out[:, sl] = self._codes(x[:, sl])
        return out

    def _codes(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):  # ±inf, NaN: fixed below
            t = x * self.a
            t += self.b
        np.fmax(t, self.lo, out=t)  # fmax/fmin: NaN becomes the bound
        np.fmin(t, self.hi, out=t)
        cell = t.astype(np.int64)
        out = self.below[cell]
        for j in range(self.nxt.shape[0]):
            out += self.nxt[j][cell] <= x
        for f in self.searched:
            out[f] = np.searchsorted(self.edges[f], x[f], side="right") + self.offsets[f]
        if not np.isfinite(x).all():
            for f in range(self.n_cols):
                row, e, o = x[f], self.n_edges[f], self.offsets[f]
                out[f, row == -np.inf] = o + e + 1
                out[f, row == np.inf] = o + e + 2
                out[f, np.isnan(row)] = o + e + 3
        return out


def _cells(edges: np.ndarray, start: int, per_cell: int, max_cells: int
           ) -> tuple[int, float, float, np.ndarray | None]:
    """``(cells, scale, shift, cell of each edge)`` for sorted finite ``edges``, cells
    numbered from ``start``: the fewest cells (from 8 per edge, doubling up to ``max_cells``)
    with at most ``per_cell`` edges in any one; cell of edge None when none does. A value's
    cell is ``clip(floor(x · scale + shift), start, start + cells - 1)``, computed exactly as
    :meth:`EdgeGrid.codes` does (same operations, same constants: same rounding); the cells
    of the edges are returned local (from 0)."""
    e = edges.shape[0]
    if e == 0:
        return 1, 0.0, float(start), np.zeros(0, np.int64)
    with np.errstate(over="ignore"):  # edges near ±1.8e308: inf, then no grid (scale 0)
        width = float(edges[-1] - edges[0])
    cells = max(8 * e, 16)
    while True:
        cells = min(cells, max_cells)
        scale = cells / width if width > 0 and np.isfinite(cells / width) else 0.0
        shift = -float(edges[0]) * scale + start
        with np.errstate(over="ignore"):  # as EdgeGrid.codes: clipped
            t = edges * scale
            t += shift
        np.fmax(t, float(start), out=t)
        np.fmin(t, float(start + cells - 1), out=t)
        cell_of = t.astype(np.int64) - start
        if np.bincount(cell_of, minlength=cells).max() <= per_cell:
            return cells, scale, shift, cell_of
        if cells >= max_cells:
            return cells, scale, shift, None
        cells *= 2


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
                 s1: np.ndarray, s2: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
                 finite: np.ndarray | None = None) -> None:
    """``x``, ``codes``: ``F × n``; ``hist``: ``G × W``; ``s1``, ``s2``, ``lo``, ``hi``:
    ``G × F``, updated in place (``lo``/``hi`` may start at the groups' running extremes:
    then only the values beyond them are looked at, see :func:`_fold_extremes`).
    ``finite``: ``codes < ends`` when the caller has it already.

    Per chunk: the per-record terms (finite mask, shifted values and squares) once for every
    layer; the histograms layer by layer (``np.bincount``); the sums of every group at once,
    as the product of the sparse group × record membership matrix with the records' terms
    (each group's values added in record order from 0, as ``np.bincount`` adds them), or,
    with one layer, by ``np.bincount`` itself, a column at a time (:func:`_layer_sums`)."""
    n_cols, n = x.shape
    width = hist.shape[1]
    ends = np.asarray(ends)[:, None]
    shift = np.asarray(shift, dtype=np.float64)[:, None]
    layers = [(layer, owners) for layer in range(layer_codes.shape[0])
              if ((owners := np.asarray(layer_groups[layer], dtype=np.int64)) >= 0).any()]
    if not layers:
        return
    for start in range(0, n, CHUNK):
        sl = slice(start, min(n, start + CHUNK))
        c, v = codes[:, sl], x[:, sl]
        ok = c < ends if finite is None else finite[:, sl]
        for layer, owners in layers:
            local = layer_codes[layer, sl]
            size = owners.shape[0]
            one = int(local[0])
            if owners[one] >= 0 and (local == one).all():  # one group holds the chunk
                hist[owners[one]] += np.bincount(c.ravel(), minlength=width)
                continue
            _scatter_add(hist, owners, np.bincount((local * width + c).ravel(),
                                                   minlength=size * width).reshape(size, width))
        if len(layers) == 1:  # one layer (an overall-only spec, the profile build)
            _layer_sums(v, ok, shift, layer_codes[layers[0][0], sl], layers[0][1], s1, s2)
        else:
            terms = np.empty((v.shape[1], 2 * n_cols))  # record × (shifted value, its square)
            d = terms[:, :n_cols].T  # written in place: no F × chunk temporaries
            np.subtract(v, shift, out=d)
            d[~ok] = 0.0
            np.square(terms[:, :n_cols], out=terms[:, n_cols:])
            sums = _membership_matrix(layer_codes[:, sl], layer_groups, hist.shape[0]) @ terms
            s1 += sums[:, :n_cols]
            s2 += sums[:, n_cols:]
        _fold_extremes(v, ok, layer_codes[:, sl], layers, lo, hi)


def _layer_sums(v: np.ndarray, ok: np.ndarray, shift: np.ndarray, local: np.ndarray,
                owners: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """``s1``/``s2`` ``+=`` the sums of the shifted values of ``v`` (``F × n``, where ``ok``)
    and of their squares per group of one layer, each group's values added in record order
    from 0 — what the membership product gives, bit for bit — without ``scipy.sparse`` (≈ 20
    MiB resident).

    The shifted values are laid out record × column (one transposing copy) and each group's
    records summed by ``np.add.reduce`` along the records: numpy adds along an axis that is
    not the fastest in memory one row after the other, every column at once (pairwise
    summation is for the contiguous axis only), i.e. in record order, as ``np.bincount``
    adds its weights; ``+ 0.0`` turns the one possible difference, a sum of zeros that is
    ``-0.0``, into bincount's ``+0.0`` (test_kernels checks the bits). One column: a
    ``bincount`` per column (:func:`_column_sums`)."""
    n_cols = v.shape[0]
    if n_cols < 2:  # n × 1 is contiguous along the records: numpy would sum it pairwise
        _column_sums(v, ok, shift, local, owners, s1, s2)
        return
    d = np.ascontiguousarray(v.T)  # n × F
    np.subtract(d, shift.T, out=d)
    if not ok.all():
        np.copyto(d, 0.0, where=~ok.T)
    one = int(local[0])
    if (local == one).all():  # one group holds the chunk (or none does)
        parts = [(int(owners[one]), d)] if owners[one] >= 0 else []
    else:  # each group's records together, in record order (stable radix sort)
        size = owners.shape[0]
        order = np.argsort(local.astype(np.int16 if size < 2**15 else np.int64), kind="stable")
        cuts = np.searchsorted(local[order], np.arange(size + 1)).tolist()
        d = d[order]
        parts = [(int(g), d[cuts[k]:cuts[k + 1]]) for k, g in enumerate(owners.tolist())
                 if g >= 0 and cuts[k + 1] > cuts[k]]
    for g, part in parts:
        s1[g] += np.add.reduce(part, axis=0) + 0.0
        np.square(part, out=part)
        s2[g] += np.add.reduce(part, axis=0) + 0.0


def _column_sums(v: np.ndarray, ok: np.ndarray, shift: np.ndarray, local: np.ndarray,
                 owners: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """:func:`_layer_sums` by ``np.bincount``, a column at a time (it adds in order)."""
    size = owners.shape[0]
    has = owners >= 0
    groups = owners[has]
    local = np.asarray(local, dtype=np.intp)
    d = np.empty(v.shape[1])
    for f in range(v.shape[0]):
        np.subtract(v[f], shift[f], out=d)
        d[~ok[f]] = 0.0
        s1[groups, f] += np.bincount(local, weights=d, minlength=size)[has]
        np.square(d, out=d)
        s2[groups, f] += np.bincount(local, weights=d, minlength=size)[has]


def _membership_matrix(layer_codes: np.ndarray, layer_groups: np.ndarray, n_groups: int):
    """The sparse ``n_groups × n`` 0/1 matrix of which record is in which group (CSR, each
    row's records ascending)."""
    from scipy.sparse import csr_matrix

    groups, rows = memberships(layer_codes, layer_groups)
    order = np.argsort(groups, kind="stable")  # a group's rows stay ascending
    indptr = np.searchsorted(groups[order], np.arange(n_groups + 1))
    return csr_matrix((np.ones(order.shape[0]), rows[order], indptr),
                      shape=(n_groups, layer_codes.shape[1]))


def _fold_extremes(v: np.ndarray, ok: np.ndarray, layer_codes: np.ndarray,
                   layers: list[tuple[int, np.ndarray]], lo: np.ndarray,
                   hi: np.ndarray) -> None:
    """``lo[g] = min(lo[g], min of v over g's records where ok)``, ``hi`` likewise, for every
    group of ``layers``. Only values below their group's ``lo`` (above its ``hi``) can move
    it, so, in a layer, below the largest ``lo`` of its groups (above the smallest ``hi``):
    when ``lo``/``hi`` hold the groups' running extremes and the layer's groups spread alike
    over a column, those candidates are few and are folded with ``np.minimum.at``/
    ``np.maximum.at``. A layer with a group without finite extremes yet (``±inf``: new), or
    with many candidates (its groups cut a column: ``buckets`` of it), is reduced group by
    group (:func:`_group_extremes`)."""
    for layer, owners in layers:
        local = layer_codes[layer]
        mine = owners[owners >= 0]
        low_b, high_b = lo[mine].max(axis=0), hi[mine].min(axis=0)
        if np.isfinite(low_b).all() and np.isfinite(high_b).all() and \
                np.isfinite(lo[mine]).all() and np.isfinite(hi[mine]).all():
            low = np.flatnonzero((v < low_b[:, None]) & ok)  # flat: cheaper than 2-D
            high = np.flatnonzero((v > high_b[:, None]) & ok)
            if 16 * (low.shape[0] + high.shape[0]) <= v.size:
                for flat, out, ufunc in ((low, lo, np.minimum), (high, hi, np.maximum)):
                    f, r = np.divmod(flat, v.shape[1])
                    g = owners[local[r]]
                    has = g >= 0
                    ufunc.at(out, (g[has], f[has]), v[f[has], r[has]])
                continue
        low, high, present = _group_extremes(v, ok, local, owners.shape[0])
        g = owners[present]
        has = g >= 0
        g = g[has]
        lo[g] = np.minimum(lo[g], low[has])
        hi[g] = np.maximum(hi[g], high[has])


def _group_extremes(v: np.ndarray, ok: np.ndarray, local: np.ndarray,
                    size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per local group present in ``local``: the minimum and maximum of ``v`` (``F × n``)
    where ``ok`` (``±inf`` if none), as ``(low, high, present)`` with ``low``, ``high``:
    ``len(present) × F``. One group: a plain reduction; several: sorted by group (radix sort
    of small codes), then ``reduceat``."""
    first = int(local[0])
    if (local == first).all():  # (``where``: no F × n copies)
        low = np.min(v, axis=1, where=ok, initial=np.inf)[None, :]
        high = np.max(v, axis=1, where=ok, initial=-np.inf)[None, :]
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
        one = int(local[0])
        if owners[one] >= 0 and (local == one).all():  # one group holds the chunk
            hist[owners[one]] += np.bincount(codes[:, sl].ravel(), minlength=width)
            continue
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
    if groups.shape[0] and (groups == groups[0]).all() and (rows[1:] > rows[:-1]).all():
        return groups, rows  # one group, rows ascending: the sort's answer (no n-long copies)
    small = groups.shape[0] == 0 or int(groups.max()) < 2**15
    order = np.argsort(groups.astype(np.int16) if small else groups, kind="stable")
    g, r = groups[order], rows[order]
    # each group in one layer (layer_arrays): its rows are already ascending, and the
    # stable sort by group alone is lexsort's order; checked, else lexsort
    if not ((g[1:] != g[:-1]) | (r[1:] > r[:-1])).all():
        order = np.lexsort((rows, groups))
        g, r = groups[order], rows[order]
    return g, r


def warm_up() -> None:
    """Nothing to compile any more: kept so callers written for the compiled kernels run."""
