"""slices.codes: factorize / isna by object identity against pandas on the same columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slices import codes as sc


def _column(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    shared = np.array(["US", "CA", "DE", None, np.nan, 1, 1.0, True, "1", pd.NA, 2.5, "",
                       float("nan")], dtype=object)
    out = shared[rng.integers(0, shared.shape[0], n)]
    if kind == "copies" and n > 10:  # equal values as distinct objects (not the decoder's sharing)
        for i in rng.choice(n, n // 10, replace=False):
            v = out[i]
            out[i] = "".join(list(v)) if isinstance(v, str) else (float(v) if isinstance(
                v, float) else v)
        for i in rng.choice(n, 5, replace=False):
            out[i] = float("nan")  # a NaN object of its own
    if kind == "distinct":  # record ids: pandas directly
        out = np.array([f"id-{i}" for i in rng.integers(0, 10 * n, n)], dtype=object)
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["shared", "copies", "distinct"])
@pytest.mark.parametrize("sentinel", [True, False])
def test_factorize_and_isna_equal_pandas(seed, kind, sentinel):
    rng = np.random.default_rng(seed)
    for n in (0, 5, sc.MIN_CELLS, 3000):
        col = _column(rng, n, kind)
        got_codes, got_uniques = sc.factorize(col, use_na_sentinel=sentinel)
        codes, uniques = pd.factorize(col, use_na_sentinel=sentinel)
        np.testing.assert_array_equal(got_codes, codes)
        assert got_codes.dtype == codes.dtype
        assert len(got_uniques) == len(uniques)
        for a, b in zip(got_uniques, uniques, strict=True):
            assert a is b or (a != a and b != b) or (a is pd.NA and b is pd.NA) or (
                type(a) is type(b) and a == b)
        np.testing.assert_array_equal(sc.isna(col), pd.isna(col))


def test_the_identity_path_is_taken_and_a_strided_column_is_read_right():
    rng = np.random.default_rng(9)
    col = _column(rng, 4000, "shared")
    assert sc._objects(col) is not None
    view = col[::2]  # not contiguous
    np.testing.assert_array_equal(sc.factorize(view)[0], pd.factorize(view)[0])
    assert sc._objects(_column(rng, 4000, "distinct")) is None


def test_unhashable_cells_raise_like_pandas():
    col = np.empty(1000, dtype=object)
    col[:] = "a"
    col[7] = ["x"]
    with pytest.raises(TypeError):
        pd.factorize(col)
    with pytest.raises(TypeError):
        sc.factorize(col)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32, np.uint8, bool])
@pytest.mark.parametrize("sentinel", [True, False])
def test_numbers_are_factorized_without_pandas_as_pandas_does(dtype, sentinel):
    """Bool, integer and float columns (window starts, binary labels) are coded by sorting:
    pandas' codes and uniques, bit for bit (0.0 and -0.0 one value, its first cell's; NaN one
    value or -1)."""
    rng = np.random.default_rng(3)
    pool = np.array([0.0, -0.0, np.nan, 1.0, 2.5, -3.0, 7.0])
    for n in (0, 1, 6, 500):
        for col in (pool[rng.integers(0, pool.shape[0], n)], np.full(n, -0.0),
                    np.full(n, np.nan), rng.integers(0, 4, n).astype(float)):
            x = col.astype(dtype) if np.dtype(dtype).kind == "f" else np.nan_to_num(
                col).astype(dtype)
            got_codes, got_uniques = sc.factorize(x, use_na_sentinel=sentinel)
            codes, uniques = pd.factorize(x, use_na_sentinel=sentinel)
            assert got_codes.dtype == codes.dtype and got_codes.tolist() == codes.tolist()
            assert got_uniques.dtype == uniques.dtype
            assert got_uniques.tobytes() == uniques.tobytes()
