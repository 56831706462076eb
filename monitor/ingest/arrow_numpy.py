"""numpy views of Arrow arrays, and Arrow arrays of numpy ones, without pandas.

pyarrow's own conversions (``Array.to_numpy``, ``pa.array``, ``pa.scalar``, a Python value
given to a compute function) import pandas through pyarrow's pandas layer, even for a
zero-copy view of an integer column: ≈ 36 MiB and ≈ 0.4 s a process that otherwise never
needs it (the profile build, a Parquet replay of a plain spec; tests/unit/test_light_start.py).
These read the Arrow buffers themselves: the values buffer at the array's offset, and the
validity bitmap (bit ``offset + i``, least significant bit first) where there are nulls.

>>> import pyarrow as pa
>>> a = pa.chunked_array([[1.5, None, 3.0, 4.0]]).chunk(0).slice(1)
>>> floats(a).tolist(), valid(a).tolist(), filled(pa.array([7, None], pa.int8()), 300).tolist()
([nan, 3.0, 4.0], [False, True, True], [7, 300])
>>> from_numpy(np.array([2, 0], np.int32)).to_pylist()
[2, 0]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_DTYPES = {str(t): np.dtype(d) for t, d in (
    (pa.int8(), np.int8), (pa.int16(), np.int16), (pa.int32(), np.int32), (pa.int64(), np.int64),
    (pa.uint8(), np.uint8), (pa.uint16(), np.uint16), (pa.uint32(), np.uint32),
    (pa.uint64(), np.uint64), (pa.float32(), np.float32), (pa.float64(), np.float64))}


def numbers(arr: pa.Array) -> np.ndarray:
    """The values of an integer or float array, a read-only view of its buffer (what lies
    under a null cell is unspecified: see :func:`valid`, :func:`filled`)."""
    dtype = _DTYPES.get(str(arr.type))
    if dtype is None:
        raise TypeError(f"not a fixed-width number type: {arr.type}")
    n = len(arr)
    if not n:
        return np.empty(0, dtype)
    out = np.frombuffer(arr.buffers()[1], dtype, count=n, offset=arr.offset * dtype.itemsize)
    out.flags.writeable = False  # Arrow's memory: immutable (a mutable buffer exports as such)
    return out


def valid(arr: pa.Array) -> np.ndarray | None:
    """Per cell, whether it is not null (a bool array of the validity bitmap); None when
    no cell is null."""
    n, nulls = len(arr), arr.null_count
    if not nulls:
        return None
    if nulls == n or pa.types.is_null(arr.type):
        return np.zeros(n, bool)
    bitmap = np.frombuffer(arr.buffers()[0], np.uint8, count=(arr.offset + n + 7) // 8)
    bits = np.unpackbits(bitmap, count=arr.offset + n, bitorder="little")
    return bits[arr.offset:].view(bool)


def floats(arr: pa.Array) -> np.ndarray:
    """A number array as float64 with NaN where null (``to_numpy(zero_copy_only=False)`` of
    its float64 cast: a read-only view when nothing needed a copy)."""
    if pa.types.is_null(arr.type) or arr.null_count == len(arr):
        return np.full(len(arr), np.nan)
    if not pa.types.is_float64(arr.type):
        arr = arr.cast(pa.float64(), safe=False)
    out = numbers(arr)
    ok = valid(arr)
    if ok is None:
        return out
    out = out.copy()
    out[~ok] = np.nan
    return out


def filled(arr: pa.Array, fill: int) -> np.ndarray:
    """An integer array's values with ``fill`` where null (int64 if anything is null)."""
    values = numbers(arr)
    ok = valid(arr)
    return values if ok is None else np.where(ok, values.astype(np.int64), fill)


def from_numpy(values: np.ndarray) -> pa.Array:
    """A 1-D integer or float numpy array as an Arrow array of the same type (no nulls), on
    its buffer."""
    values = np.ascontiguousarray(values)
    if values.ndim != 1 or values.dtype not in _DTYPES.values():
        raise TypeError(f"not a 1-D array of fixed-width numbers: {values.dtype}")
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])
