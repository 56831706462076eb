"""Data-quality numbers read off window summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.drift.features import FeatureSummaries
from monitor.drift.quality import data_quality, feature_quality
from monitor.drift.summary import CategoricalSummary, NumericSummary


def test_numeric_quality():
    s = NumericSummary([0.0, 5.0, 10.0])
    x = np.array([-1.0, 0.0, 3.0, 10.0, 11.0, np.inf, np.nan, np.nan, 7.0, 2.0], dtype=object)
    x = np.concatenate([x, np.array(["oops"], dtype=object)])
    s.update(x)
    q = feature_quality("amount", s)
    assert q.count == 11 and q.missing_rate == pytest.approx(3 / 11)
    assert q.nonfinite == 1 and q.type_mismatches == 1
    # outside [0, 10]: -1, 11, inf out of 8 present values
    assert q.out_of_range_share == pytest.approx(3 / 8)
    assert math.isnan(q.unseen_share)


def test_categorical_quality_and_container():
    c = CategoricalSummary(["de", "fr"])
    c.update(np.array(["de", "fr", "us", "es", None, 3.5, "de", "de"], dtype=object))
    fs = FeatureSummaries("binary", {"country": c, "empty": NumericSummary([0.0, 1.0])})
    got = {q.feature: q for q in data_quality(fs)}
    q = got["country"]
    assert q.count == 8 and q.missing_rate == pytest.approx(1 / 8)
    assert q.unseen_share == pytest.approx(3 / 7) and q.type_mismatches == 1
    assert math.isnan(q.out_of_range_share)
    e = got["empty"]
    assert e.count == 0 and math.isnan(e.missing_rate) and math.isnan(e.out_of_range_share)
