"""``pandas.factorize`` and ``pandas.isna`` of object columns, once per distinct *object*.

The decoder builds each text column from its Arrow dictionary, so equal cells of a batch are
one Python object (``monitor/ingest/decode_arrow.py``): a column of 20 000 country names holds
eight objects. Hashing every cell again (``pd.factorize``) or testing each for missing
(``pd.isna``) costs ~1 ms a column a batch; here the cells are first told apart by identity —
``pd.factorize`` of the cells' object addresses, a uint64 hash table — and the real work runs
once per distinct object, then is spread back by code. The answers are exactly pandas' on the
whole column (same codes, same uniques in the same order of first appearance): two cells that
are the same object are equal, and equal objects that are distinct are merged by the second,
per-object ``pd.factorize``. A column with too many distinct objects (record ids) goes to
pandas directly.

A column the decoder made from Arrow's dictionary codes is *known* (:func:`known`): its codes
and distinct values were registered with it, so :func:`factorize` and :func:`isna` of that
very array read them without looking at a cell. Any other array (a slice of it, a copy, a
column of the per-record decoder) takes the identity path above.

The addresses are read from the array's own buffer while the array is held, so no object
can be freed or moved meanwhile; nothing is written.

>>> v = np.array(["a", None, "b", "a"] * 100, dtype=object)
>>> codes, uniques = factorize(v)
>>> codes[:4].tolist(), uniques.tolist()
([0, -1, 1, 0], ['a', 'b'])
>>> isna(v)[:4].tolist()
[False, True, False, False]
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np

from slices.lazy import lazy_module

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

MIN_CELLS = 256
"""Columns shorter than this go to pandas directly (nothing to gain)."""
MAX_SHARE = 0.25
"""Distinct objects above this share of the cells: pandas on the column."""


_KNOWN: dict[int, tuple[weakref.ref, np.ndarray, np.ndarray, bool]] = {}


def known(values: np.ndarray, codes: np.ndarray, uniques: np.ndarray) -> np.ndarray:
    """Register that the 1-D object array ``values`` is ``uniques[codes]`` (code -1: ``None``),
    ``uniques`` distinct strings in order of first appearance: what ``pd.factorize`` would
    answer. ``values`` is made read-only (a write would make the codes wrong) and returned;
    the entry goes when the array does."""
    values.flags.writeable = False
    key = id(values)
    ref = weakref.ref(values, lambda _r, key=key: _KNOWN.pop(key, None))
    codes = np.asarray(codes)
    if codes.dtype not in (np.int8, np.int16, np.int32):  # small codes stay small
        codes = codes.astype(np.int32)
    _KNOWN[key] = (ref, codes, uniques, bool((codes < 0).any()))
    return values


def _known(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool] | None:
    entry = _KNOWN.get(id(values))
    if entry is None or entry[0]() is not values:
        return None
    return entry[1], entry[2], entry[3]


def coded(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, uniques)`` registered with ``values`` by :func:`known` (int8, int16 or int32
    codes, -1: ``None``; do not write to them), or None."""
    found = _known(values)
    return None if found is None else (found[0], found[1])


def _objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(values, codes, firsts)``: per cell the code of its object (first-appearance order)
    and the position of each object's first cell; None when the column is not worth it."""
    if values.dtype != object or values.ndim != 1 or values.shape[0] < MIN_CELLS:
        return None
    values = np.ascontiguousarray(values)
    n = values.shape[0]
    addresses = np.ctypeslib.as_array(
        ctypes.cast(values.ctypes.data, ctypes.POINTER(ctypes.c_size_t)), shape=(n,))
    codes, uniques = pd.factorize(addresses)
    if len(uniques) > MAX_SHARE * n:
        return None
    # codes come in order of first appearance: code k first appears where the running
    # maximum reaches k
    firsts = np.concatenate(([0], np.flatnonzero(np.diff(np.maximum.accumulate(codes))) + 1))
    return values, codes, firsts


def factorize(values: np.ndarray, use_na_sentinel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, use_na_sentinel=...)``: codes (``intp``) and uniques."""
    coded = _known(values)
    if coded is not None and (use_na_sentinel or not coded[2]):
        return coded[0].astype(np.intp), coded[1].copy()
    if values.ndim == 1 and values.dtype.kind in "biuf":
        return _numbers(values, use_na_sentinel)
    found = _objects(values)
    if found is None:
        return pd.factorize(values, use_na_sentinel=use_na_sentinel)
    values, codes, firsts = found
    value_codes, uniques = pd.factorize(values[firsts], use_na_sentinel=use_na_sentinel)
    return value_codes[codes], uniques


def _numbers(values: np.ndarray, use_na_sentinel: bool) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of a bool, integer or float array, by sorting (no pandas): distinct
    values by first appearance (0.0 and -0.0 one value, its first cell's; NaN one value, or
    code -1 with ``use_na_sentinel``); uniques of the same dtype."""
    codes = np.full(values.shape[0], -1, dtype=np.intp)
    keep = ~np.isnan(values) if use_na_sentinel and values.dtype.kind == "f" else None
    x = values if keep is None else values[keep]
    if not x.shape[0]:
        return codes, values[:0].copy()
    if x.min() == x.max():  # one value (a batch in one window): no sort
        codes[...] = 0 if keep is None else np.where(keep, 0, -1)
        return codes, x[:1].copy()
    key = x + 0.0 if x.dtype.kind == "f" else x  # -0.0 + 0.0 is 0.0: one value, as pandas
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.shape[0], dtype=np.intp)
    rank[order] = np.arange(order.shape[0], dtype=np.intp)
    if keep is None:
        codes = rank[inverse.reshape(-1)]
    else:
        codes[keep] = rank[inverse.reshape(-1)]
    return codes, x[first[order]]


def isna(values: np.ndarray) -> np.ndarray:
    """``pd.isna(values)`` of a 1-D array."""
    coded = _known(values)
    if coded is not None:
        return coded[0] < 0
    found = _objects(values)
    if found is None:
        return np.asarray(pd.isna(values))
    values, codes, firsts = found
    return np.asarray(pd.isna(values[firsts]))[codes]
