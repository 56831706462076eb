"""Counts of a window → the top-k slices significantly worse than the rest.

For each candidate cell with at least ``min_support`` labelled records (``__other__``
cells excluded: no spec can name them):

- **test** the slice's error against the rest of the window, one-sided: Fisher's exact test
  for a 0/1 error (the hypergeometric tail, ``scipy.stats.hypergeom.sf``, equal to
  ``scipy.stats.fisher_exact(..., alternative="greater")``), Welch's t-test from the
  moments otherwise (``scipy.stats.ttest_ind_from_stats``);
- **correct** across every candidate examined with Benjamini-Hochberg
  (``scipy.stats.false_discovery_control``) and keep ``p_adj <= fdr``; a candidate whose
  score (below) is not positive can never be reported, so it enters the correction with
  ``p = 1`` (a valid, conservative p-value) and its exact test is skipped;
- **rank** the kept ones by the SliceLine score (Sagadeeva & Boehm, SIGMOD 2021)

  .. math:: sc(S) = \\alpha \\left(\\frac{\\bar e_S}{\\bar e} - 1\\right)
                 - (1 - \\alpha)\\left(\\frac{n}{|S|} - 1\\right)

  (``ē_S`` the slice's mean error, ``ē`` the window's, ``n`` its records), keeping
  ``score > 0`` as SliceLine does, ties broken by name.

>>> import numpy as np
>>> from monitor.discovery.coder import FeatureCoder
>>> from monitor.discovery.counts import ConjunctionCounts
>>> rng = np.random.default_rng(7)
>>> a = rng.choice(["x", "y", "z"], 3000); b = rng.choice(["u", "v"], 3000)
>>> err = (rng.random(3000) < np.where((a == "x") & (b == "u"), 0.5, 0.1)).astype(float)
>>> coder = FeatureCoder(("a", "b"), {})
>>> acc = ConjunctionCounts(coder, "misclassification")
>>> acc.add(coder.encode({"a": a.astype(object), "b": b.astype(object)}), err)
>>> top = discover(acc, Settings(top_k=2, min_support=50, fdr=0.05, alpha=0.95))
>>> [(c.slice, c.where) for c in top]
[('a=x,b=u', 'a == "x" and b == "u"'), ('a=x', 'a == "x"')]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.discovery.coder import OTHER_CODE
from monitor.discovery.counts import ConjunctionCounts

stats = lazy_module("scipy.stats")  # at the first search (a window's close), not at start


@dataclass(frozen=True)
class Settings:
    top_k: int = 5
    min_support: int = 50
    fdr: float = 0.05
    alpha: float = 0.95


@dataclass(frozen=True)
class Candidate:
    """A slice that passed: what :class:`~monitor.discovery.types.DiscoveredSlice` needs
    besides the model, version and window."""

    slice: str
    where: str
    level: int
    records: int
    error: float
    rest_error: float
    score: float
    p_value: float
    p_adjusted: float
    candidates: int


def sliceline_score(errors: np.ndarray, sizes: np.ndarray, total: float, mean_error: float,
                    alpha: float) -> np.ndarray:
    """SliceLine's score of slices with error sums ``errors`` and ``sizes`` records, in a
    frame of ``total`` records of mean error ``mean_error`` (SliceLine's ``_score``).

    >>> sliceline_score(np.array([5.0]), np.array([10.0]), 100.0, 0.1, 0.95).round(3).tolist()
    [3.35]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        score = alpha * ((errors / sizes) / mean_error - 1) - (1 - alpha) * (total / sizes - 1)
    return np.nan_to_num(score, nan=-np.inf)


def one_sided_pvalues(acc: ConjunctionCounts, cells: np.ndarray) -> np.ndarray:
    """P-values of "the slice's error is larger than the rest's", per cell."""
    n, e = acc.n[cells], acc.e[cells]
    total, errors = acc.total, acc.total_error
    if acc.binary:
        # Fisher's exact test, one-sided: P(X >= e) with X ~ Hypergeom(N, E errors, n drawn)
        k = np.rint(e).astype(np.int64)
        return stats.hypergeom.sf(k - 1, round(total), round(errors),
                                  n.astype(np.int64))
    rest_n = total - n
    # errors are capped (monitor.discovery.errors): these sums are finite; a state from
    # before the cap may hold +inf, whose NaN p-values count as 1 (never reported)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mean_s, mean_r = e / n, (errors - e) / rest_n
        var_s = np.maximum(acc.e2[cells] / n - mean_s ** 2, 0.0) * n / np.maximum(n - 1, 1)
        var_r = np.maximum((acc.total_error2 - acc.e2[cells]) / rest_n - mean_r ** 2, 0.0) \
            * rest_n / np.maximum(rest_n - 1, 1)
        p = stats.ttest_ind_from_stats(mean_s, np.sqrt(var_s), n, mean_r, np.sqrt(var_r),
                                       rest_n, equal_var=False, alternative="greater").pvalue
    return np.nan_to_num(p, nan=1.0)


def candidate_cells(acc: ConjunctionCounts, min_support: int) -> np.ndarray:
    """Cells tested: enough records, not the whole window, no ``__other__`` value."""
    lay = acc.layout
    ok = (acc.n >= min_support) & (acc.n < acc.total)
    ok &= (lay.code_a != OTHER_CODE) & (lay.code_b != OTHER_CODE)
    return np.flatnonzero(ok)


def discover(acc: ConjunctionCounts, settings: Settings) -> list[Candidate]:
    """The top ``settings.top_k`` significant slices of ``acc``, best first."""
    if acc.total <= 0 or acc.total_error <= 0:
        return []
    cells = candidate_cells(acc, settings.min_support)
    if not cells.size:
        return []
    mean_error = acc.total_error / acc.total
    score = sliceline_score(acc.e[cells], acc.n[cells], acc.total, mean_error, settings.alpha)
    # only slices with a positive score can be reported: the others count in BH's m with
    # p = 1 (a valid, conservative p-value), which spares their exact tests
    p = np.ones(cells.size)
    scored = np.flatnonzero(score > 0)
    if scored.size:
        p[scored] = one_sided_pvalues(acc, cells[scored])
    p_adj = stats.false_discovery_control(p, method="bh")
    keep = np.flatnonzero((p_adj <= settings.fdr) & (score > 0))
    if not keep.size:
        return []
    names = {int(k): _name(acc, int(cells[k])) for k in keep}
    keep = sorted(keep.tolist(), key=lambda k: (-score[k], names[k][0]))[:settings.top_k]
    out = []
    for k in keep:
        cell = int(cells[k])
        n, e = float(acc.n[cell]), float(acc.e[cell])
        label, where, level = names[k]
        out.append(Candidate(label, where, level, int(n), e / n,
                             (acc.total_error - e) / (acc.total - n), float(score[k]),
                             float(p[k]), float(p_adj[k]), int(cells.size)))
    return out


def _name(acc: ConjunctionCounts, cell: int) -> tuple[str, str, int]:
    """(slice label, where predicate, level) of a cell."""
    lay, coder = acc.layout, acc.coder
    block = lay.blocks[int(lay.block[cell])]
    codes = (int(lay.code_a[cell]), int(lay.code_b[cell]))[:len(block)]
    label = ",".join(coder.label(i, c) for i, c in zip(block, codes, strict=True))
    where = " and ".join(coder.predicate(i, c) for i, c in zip(block, codes, strict=True))
    return label, where, len(block)
