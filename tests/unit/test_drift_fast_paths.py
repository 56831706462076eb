"""The fast paths behind the drift tests give scipy's numbers exactly (same floats)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.stats import contingency

from monitor.drift.tests import chi2_homogeneity, ks_2samp


@pytest.mark.parametrize("seed", range(6))
def test_ks_2samp_is_scipys_result_exactly(seed):
    rng = np.random.default_rng(seed)
    for i in range(60):
        n, m = (1000, 1000) if i % 3 else tuple(int(v) for v in rng.integers(1, 1500, 2))
        a, b = rng.normal(0, 1, n), rng.normal(rng.normal(0, 0.2), 1, m)
        if i % 4 == 0:  # ties
            a, b = np.round(a, 1), np.round(b, 1)
        want = stats.ks_2samp(a, b)
        assert ks_2samp(a, b) == (float(want.statistic), float(want.pvalue))


def test_ks_2samp_above_the_exact_regime_is_scipys_asymptotic_result():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=12_000), rng.normal(0.05, 1, 3000)
    want = stats.ks_2samp(a, b)
    assert ks_2samp(a, b) == (float(want.statistic), float(want.pvalue))


@pytest.mark.parametrize("seed", range(4))
def test_chi2_homogeneity_is_scipys_chi2_contingency_exactly(seed):
    rng = np.random.default_rng(seed)
    for i in range(200):
        k = int(rng.integers(2, 8))
        t = rng.integers(0, 40 if i % 2 else 5000, (2, k))
        t[:, 0] += 1
        t = t[:, t.sum(axis=0) > 0]
        want = stats.chi2_contingency(t)
        stat, p, plain = chi2_homogeneity(t)
        assert (stat, p) == (float(want.statistic), float(want.pvalue))
        assert np.sqrt(plain / t.sum()) == contingency.association(t, method="cramer")
