"""numpy views of Arrow arrays without pandas (monitor/ingest/arrow_numpy.py) give what
pyarrow's own ``to_numpy`` gives: nulls, offsets (slices), chunks of a chunked array."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from monitor.ingest.arrow_numpy import filled, floats, from_numpy, numbers, valid

TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
         pa.uint64(), pa.float32(), pa.float64()]


def _cases(kind: pa.DataType):
    """Arrays of ``kind``: with and without nulls, sliced at odd offsets, chunks of a
    chunked array, empty and all null."""
    rng = np.random.default_rng(len(str(kind)))
    values = rng.integers(0, 100, 70).tolist()
    holes = [None if i % 7 == 3 else v for i, v in enumerate(values)]
    for data in (values, holes):
        arr = pa.array(data, kind)
        yield arr
        yield arr.slice(5)
        yield arr.slice(13, 29)
        yield from pa.chunked_array([data[:9], data[9:40], data[40:]], kind).slice(3).chunks
    yield pa.array([], kind)
    yield pa.array([None, None, None], kind).slice(1)


@pytest.mark.parametrize("kind", TYPES, ids=str)
def test_views_equal_pyarrows_own_conversion(kind):
    for arr in _cases(kind):
        want = arr.to_numpy(zero_copy_only=False)
        ok = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
        got_ok = valid(arr)
        assert (np.ones(len(arr), bool) if got_ok is None else got_ok).tolist() == ok.tolist()
        assert (got_ok is None) == (arr.null_count == 0)
        if arr.null_count < len(arr):
            assert numbers(arr)[ok].tolist() == want[ok].tolist()
        want_f = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        got_f = floats(arr)
        assert got_f.dtype == np.float64 and got_f.tobytes() == want_f.tobytes()
        if pa.types.is_integer(kind):
            assert filled(arr, 1000).tolist() == [1000 if v is None else v
                                                   for v in arr.to_pylist()]
        back = from_numpy(numbers(arr).copy())
        assert back.type == kind and len(back) == len(arr)


def test_a_view_is_read_only_and_shares_the_buffer():
    arr = pa.array(np.arange(10.0)).slice(2)
    got = floats(arr)
    assert not got.flags.writeable and got.tolist() == list(np.arange(2.0, 10.0))
    assert np.shares_memory(got, np.frombuffer(arr.buffers()[1], np.float64))


def test_other_types_are_refused():
    with pytest.raises(TypeError):
        numbers(pa.array(["a"]))
    with pytest.raises(TypeError):
        from_numpy(np.array(["a"], object))
