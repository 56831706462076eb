"""Two-sample drift statistics, one protocol, one registry (:data:`TESTS`).

Each test compares a reference summary ``ref`` with a window summary ``cur`` (same bins) and
returns :class:`TestResult` ``(statistic, pvalue | None, distance)``. Binned tests read the
non-missing counts (numeric: underflow, bins, overflow; categorical: vocabulary, ``__other__``)
normalised to shares ``p`` (reference) and ``q`` (window); sample tests read the reservoirs.
Missing values never enter a distribution (they are data quality, :mod:`monitor.drift.quality`).
Formulas and empty-bin conventions: ``docs/drift.md``.

>>> import numpy as np
>>> from monitor.drift.summary import CategoricalSummary
>>> r, c = CategoricalSummary(["a", "b"]), CategoricalSummary(["a", "b"])
>>> r.update(np.array(["a"] * 50 + ["b"] * 50, dtype=object))
>>> c.update(np.array(["a"] * 70 + ["b"] * 30, dtype=object))
>>> round(TESTS["linf"].compute(r, c).distance, 3)
0.2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.drift.errors import DriftError
from monitor.drift.summary import NumericSummary, Summary

# scipy loads at the first test run (a window close), not at start-up
stats = lazy_module("scipy.stats")
special = lazy_module("scipy.special")
spd = lazy_module("scipy.spatial.distance")

PSI_EPSILON = 1e-4  # share given to an empty bin in PSI (see docs/drift.md)


@dataclass(frozen=True)
class TestResult:
    """Outcome of one two-sample test: the statistic, its p-value (None for pure distances)
    and the distance used as effect size."""

    statistic: float
    pvalue: float | None
    distance: float


def _shares(ref: Summary, cur: Summary) -> tuple[np.ndarray, np.ndarray]:
    if not ref.same_bins(cur):
        raise DriftError("reference and window summaries have different bins "
                         f"({type(ref).__name__} vs {type(cur).__name__})")
    r, c = ref.binned().astype(np.float64), cur.binned().astype(np.float64)
    if r.sum() == 0 or c.sum() == 0:
        raise DriftError("cannot compare an empty distribution")
    return r / r.sum(), c / c.sum()


def _samples(ref: Summary, cur: Summary) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(ref, NumericSummary) or not isinstance(cur, NumericSummary):
        raise DriftError("sample-based tests need numeric summaries")
    if ref.sample.shape[0] == 0 or cur.sample.shape[0] == 0:
        raise DriftError("cannot compare an empty sample")
    return ref.sample, cur.sample


class DriftTest:
    """Base of the registered tests: ``name``, ``kinds`` ("pvalue" and/or "distance"),
    applicable feature ``types``, ``gate`` (the distance test used as effect size when this
    test decides) and its default ``threshold``."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    types: ClassVar[frozenset[str]] = frozenset({"numeric", "categorical"})
    gate: ClassVar[str]
    threshold: ClassVar[float]

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        raise NotImplementedError


class KS(DriftTest):
    r"""Two-sample Kolmogorov–Smirnov on the reservoir samples (``scipy.stats.ks_2samp``).

    :math:`D = \sup_x |F_r(x) - F_c(x)|`; p-value from scipy (exact for samples up to 10 000,
    i.e. always with the default reservoir of 1 000). The p-value reflects the sample sizes
    (≤ reservoir size), not the window size. Distance: ``D``.
    """

    name = "ks"
    kinds = frozenset({"pvalue", "distance"})
    types = frozenset({"numeric"})
    gate = "ks"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        a, b = _samples(ref, cur)
        res = stats.ks_2samp(a, b)
        return TestResult(float(res.statistic), float(res.pvalue), float(res.statistic))

    def compute_many(self, pairs: Sequence[tuple[Summary, Summary]]) -> list[TestResult]:
        """:meth:`compute` for every ``(ref, cur)``: pairs whose samples have the same sizes
        (full reservoirs, typically) go to ``scipy.stats.ks_2samp`` in one call along
        ``axis=1`` — the same statistics and p-values, without scipy's per-call overhead."""
        out: list[TestResult | None] = [None] * len(pairs)
        by_size: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, (ref, cur) in enumerate(pairs):
            a, b = _samples(ref, cur)
            by_size.setdefault((a.shape[0], b.shape[0]), []).append((i, a, b))
        for items in by_size.values():
            if len(items) == 1:
                i, a, b = items[0]
                out[i] = self.compute(pairs[i][0], pairs[i][1])
                continue
            res = stats.ks_2samp(np.stack([a for _, a, _ in items]),
                                 np.stack([b for _, _, b in items]), axis=1)
            for (i, _, _), d, p in zip(items, res.statistic.tolist(), res.pvalue.tolist(),
                                       strict=True):
                out[i] = TestResult(float(d), float(p), float(d))
        return out  # type: ignore[return-value]


def ks_binned_bound(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Largest bucket share of either distribution: ``D_binned <= D <= D_binned + bound``."""
    r, c = np.asarray(ref_counts, float), np.asarray(cur_counts, float)
    return float(max((r / r.sum()).max(), (c / c.sum()).max()))


class KSBinned(DriftTest):
    r"""Kolmogorov–Smirnov statistic on the binned CDFs (all records, not a sample).

    :math:`D_b = \max_j |P_j - Q_j|` with :math:`P_j, Q_j` the cumulative shares after bucket
    :math:`j`. :math:`D_b \le D \le D_b + \max_j \max(p_j, q_j)` (proof in docs/drift.md).
    P-value: ``scipy.stats.kstwo.sf(D_b, round(n m / (n + m)))`` — scipy's asymptotic
    two-sample approximation; conservative since :math:`D_b \le D`. Numeric only (categories
    have no order).
    """

    name = "ks_binned"
    kinds = frozenset({"pvalue", "distance"})
    types = frozenset({"numeric"})
    gate = "ks_binned"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        d = float(np.abs(np.cumsum(p) - np.cumsum(q)).max())
        n, m = ref.present, cur.present
        pvalue = float(stats.kstwo.sf(d, max(1, round(n * m / (n + m)))))
        return TestResult(d, pvalue, d)


class Chi2(DriftTest):
    r"""Chi-squared test of homogeneity on the 2×K table [reference counts; window counts].

    ``scipy.stats.chi2_contingency`` (Yates' correction when K = 2, scipy's default) after
    dropping all-zero columns; :math:`\chi^2 = \sum_{ij} (O_{ij} - E_{ij})^2 / E_{ij}`,
    :math:`E_{ij} = R_i C_j / N`, ``K - 1`` degrees of freedom. With fewer than 2 non-empty
    columns both rows are identical point masses: statistic 0, p-value 1. No distance of its
    own (Cramér's V would depend on the reference/window size ratio): decisions gate on
    Cohen's ``w`` against the reference shares (:class:`CohenW`).
    """

    name = "chi2"
    kinds = frozenset({"pvalue"})
    gate = "cohen_w"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        _shares(ref, cur)
        table = np.vstack([ref.binned(), cur.binned()])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return TestResult(0.0, 1.0, float("nan"))
        res = stats.chi2_contingency(table)
        return TestResult(float(res.statistic), float(res.pvalue), float("nan"))


class PSI(DriftTest):
    r"""Population stability index on the binned shares.

    :math:`\mathrm{PSI} = \sum_i (q_i - p_i) \ln(q_i / p_i)` (the symmetrised KL divergence,
    ``scipy.special.rel_entr(q, p) + rel_entr(p, q)``), with empty buckets given the share
    ``PSI_EPSILON`` = 1e-4 (no renormalisation). Usual reading: < 0.1 stable, 0.1–0.2
    moderate, > 0.2 shifted.
    """

    name = "psi"
    kinds = frozenset({"distance"})
    gate = "psi"
    threshold = 0.2

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        p, q = np.maximum(p, PSI_EPSILON), np.maximum(q, PSI_EPSILON)
        v = float(np.sum(special.rel_entr(q, p) + special.rel_entr(p, q)))
        return TestResult(v, None, v)


class JS(DriftTest):
    r"""Jensen–Shannon distance, base 2 (``scipy.spatial.distance.jensenshannon``).

    :math:`\sqrt{\tfrac12 KL(p \| m) + \tfrac12 KL(q \| m)}`, :math:`m = (p + q)/2`, logs base
    2, so it lies in [0, 1]. Empty buckets need no epsilon (:math:`0 \log 0 = 0`).
    """

    name = "js"
    kinds = frozenset({"distance"})
    gate = "js"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        v = float(spd.jensenshannon(p, q, base=2))
        return TestResult(v, None, v)


class Wasserstein(DriftTest):
    r"""First Wasserstein distance of the reservoir samples over the reference's standard
    deviation: ``scipy.stats.wasserstein_distance(ref, cur) / std_ref``.

    :math:`W_1 = \int |F_r(x) - F_c(x)| dx`; ``std_ref`` is the population standard deviation
    of *all* finite reference values (from the moments). A constant reference (std 0) gives 0
    when :math:`W_1 = 0`, else ``inf``. A mean shift of ``δσ`` gives ≈ ``δ``.
    """

    name = "wasserstein"
    kinds = frozenset({"distance"})
    types = frozenset({"numeric"})
    gate = "wasserstein"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        a, b = _samples(ref, cur)
        w = float(stats.wasserstein_distance(a, b))
        std = ref.std
        v = w / std if std > 0 else (0.0 if w == 0 else float("inf"))
        return TestResult(w, None, v)


class LInf(DriftTest):
    r"""L-infinity distance (TFDV): :math:`\max_i |p_i - q_i|` over the normalised
    frequencies (categories incl. ``__other__``; for numeric data, the buckets)."""

    name = "linf"
    kinds = frozenset({"distance"})
    gate = "linf"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        v = float(np.abs(p - q).max())
        return TestResult(v, None, v)


class CohenW(DriftTest):
    r"""Cohen's effect size ``w`` of the window's shares against the reference shares.

    :math:`w = \sqrt{\sum_i (q_i - p_i)^2 / p_i}` (Cohen 1988, ch. 7): the square root of
    the chi-squared divergence, i.e. :math:`\sqrt{\chi^2 / n}` of a goodness-of-fit test of
    the window against the reference shares. It does not grow with ``n`` and needs no
    correction for the number of categories. Conventions: 0.1 small, 0.3 medium, 0.5 large;
    default threshold 0.1 (why: docs/analysis.md). A bucket empty in the reference but not
    in the window gets the reference share of half a record, ``0.5 / n_ref`` (no
    renormalisation); buckets empty in both contribute nothing.

    >>> import numpy as np
    >>> from monitor.drift.summary import CategoricalSummary
    >>> r, c = CategoricalSummary(list("abcde")), CategoricalSummary(list("abcde"))
    >>> r.update(np.array(list("abcde") * 200, dtype=object))
    >>> c.update(np.array(["a"] * 280 + ["b"] * 120 + ["c", "d", "e"] * 200, dtype=object))
    >>> round(TESTS["cohen_w"].compute(r, c).distance, 3)  # 8 points from b to a
    0.253
    """

    name = "cohen_w"
    kinds = frozenset({"distance"})
    gate = "cohen_w"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        p = np.where((p == 0) & (q > 0), 0.5 / max(ref.present, 1), p)
        used = p > 0
        v = float(np.sqrt(np.sum((q[used] - p[used]) ** 2 / p[used])))
        return TestResult(v, None, v)


class Hellinger(DriftTest):
    r"""Hellinger distance :math:`\sqrt{1 - \sum_i \sqrt{p_i q_i}}` (in [0, 1]; equal to
    :math:`\tfrac{1}{\sqrt2}\lVert\sqrt p - \sqrt q\rVert_2`). No epsilon needed. scipy has no
    Hellinger function, so this one is written out."""

    name = "hellinger"
    kinds = frozenset({"distance"})
    gate = "hellinger"
    threshold = 0.1

    def compute(self, ref: Summary, cur: Summary) -> TestResult:
        p, q = _shares(ref, cur)
        v = float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))
        return TestResult(v, None, v)


TESTS: dict[str, DriftTest] = {t.name: t for t in (
    KS(), KSBinned(), Chi2(), PSI(), JS(), Wasserstein(), LInf(), CohenW(), Hellinger())}


def get_test(name: str) -> DriftTest:
    try:
        return TESTS[name]
    except KeyError:
        raise DriftError(f"unknown drift test {name!r}; known: {', '.join(TESTS)}") from None
