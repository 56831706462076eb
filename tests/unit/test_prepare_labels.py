"""Binary labels as logged → 1.0 / 0.0 / NaN, decided per distinct value.

``_truthy`` maps each distinct value once (``pandas.factorize``); a hash table takes ``True``,
``1`` and ``1.0`` for one value, so the result must still equal reading every value alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.prepare import _truthy, _truthy_one

LOGGED = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from([0.0, 1.0, 0.5, math.nan]),
    st.sampled_from(["1", "0", "true", "False", "yes", "no", "fraud", "FRAUD", "ok", "1.0", ""]),
    st.lists(st.integers(0, 1), max_size=2))
POSITIVE = st.sampled_from([1, True, "fraud", "1", 0, False, "yes", 2, 1.0, "true"])


@given(st.lists(LOGGED, max_size=40), POSITIVE)
def test_batch_reading_equals_reading_each_value(values, positive):
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    want = np.array([_truthy_one(v, positive) for v in values], dtype=np.float64)
    assert np.array_equal(_truthy(arr, positive), want, equal_nan=True)


@pytest.mark.parametrize(("positive", "want"), [
    (1, [1, 1, 0, np.nan, np.nan, 1, 0, np.nan]),
    ("fraud", [0, 0, 0, np.nan, 0, 0, 0, 1]),
])
def test_known_readings(positive, want):
    arr = np.array([1, "true", 0, None, "maybe", True, False, "fraud"], dtype=object)
    got = _truthy(arr, positive)
    assert np.array_equal(got, np.array(want, dtype=np.float64), equal_nan=True)
