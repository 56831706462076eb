"""ROC AUC and PR AUC from per-label score histograms (label side, binary)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from monitor.core.grouped import count_codes
from monitor.core.metrics._common import GroupedAccumulator, check_int, positive, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.intervals import average_precision_logit, delong_binned

DEFAULT_BINS = 1024
MAX_BINS = 1 << 20


@lru_cache(maxsize=16)
def bin_edges(bins: int) -> np.ndarray:
    """``[0, 1/B, 2/B, …, 1]`` (read-only, shared). Bin ``k`` is ``[k/B, (k+1)/B)``."""
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    edges.flags.writeable = False
    return edges


def score_bins(score: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each score; scores below 0 / at or above 1 go to the first / last bin.

    A score equal to a left edge ``k/B`` (as computed by ``k / B`` in float64) lands in bin
    ``k`` exactly, which is what makes the histogram AUCs exact on quantised scores. That is
    ``searchsorted(bin_edges(bins), score, side="right") - 1``, clipped, found by table
    look-ups (:class:`monitor.core.kernels.EdgeGrid`: exactly ``searchsorted``'s answer for
    finite scores; ``-inf`` sorts first, ``+inf`` and NaN last, as ``searchsorted`` puts them).
    """
    score = np.asarray(score, np.float64)
    n_edges = bins + 1
    idx = _edge_grid(bins).codes(score.reshape(1, -1))[0].astype(np.int64)
    if idx.shape[0] and idx.max() > n_edges:  # EdgeGrid's codes of -inf, +inf, NaN
        idx[idx == n_edges + 1] = 0
        idx[idx > n_edges] = n_edges
    idx -= 1
    return np.clip(idx, 0, bins - 1, out=idx)


@lru_cache(maxsize=16)
def _edge_grid(bins: int):
    from monitor.core.kernels import EdgeGrid

    return EdgeGrid(bin_edges(bins)[None, :], np.array([bins + 1]), np.array([0]))


class ScoreHistogram(GroupedAccumulator):
    """Counts of negatives and positives per uniform score bin → ``roc_auc``, ``pr_auc``.

    Notes
    -----
    ``neg[b]``, ``pos[b]`` count labelled records whose score falls in bin ``b`` of ``bins``
    uniform bins of ``[0, 1]``. With ``P = Σ pos``, ``N = Σ neg`` and ``N_<b`` the negatives
    in lower bins::

        roc_auc = Σ_b pos[b]·(N_<b + neg[b]/2) / (P·N)

    (pairs in one bin get half credit, as tied scores do in scikit-learn). Walking the bins
    from the top, with ``TP_b``/``A_b`` the positives/records in bins ``≥ b``::

        pr_auc = Σ_b (pos[b]/P) · TP_b / A_b        (average precision, scikit-learn's steps)

    Both are **exact** (to float rounding) when every score is a left edge ``k/B``: then a bin
    holds only tied scores. For raw scores the binning error is bounded by quantities of the
    state itself (:meth:`roc_auc_error_bound`, :meth:`pr_auc_error_bound`). Both are NaN when
    ``P == 0`` or (ROC only) ``N == 0``. Scores are clipped to ``[0, 1]``; NaN scores skipped.

    Examples
    --------
    >>> import numpy as np
    >>> from monitor.core.metrics.base import ModelColumns
    >>> acc = ScoreHistogram(bins=4)
    >>> s = np.array([0.0, 0.25, 0.5, 0.75]); y = np.array([0.0, 1.0, 0.0, 1.0])
    >>> acc.update(ModelColumns(s, s, y, np.zeros(4, np.int8)))
    >>> acc.result()["roc_auc"], round(acc.result()["pr_auc"], 6)
    (0.75, 0.833333)
    """

    kind = "score_histogram"
    needs_label = True
    _param_names = ("bins",)

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        self.bins = check_int("ScoreHistogram", "bins", bins, 2, MAX_BINS)
        self.counts = np.zeros((2, self.bins), np.int64)  # row 0: negatives, row 1: positives

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[ScoreHistogram, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass
        per bin count."""
        by_bins: dict[int, list[tuple[ScoreHistogram, np.ndarray]]] = {}
        for acc, rows in items:
            by_bins.setdefault(acc.bins, []).append((acc, rows))
        y = np.asarray(cols.label, np.float64)
        s = np.asarray(cols.score, np.float64)
        keep = ~(np.isnan(y) | np.isnan(s))
        for bins, group in by_bins.items():
            every = cols.derived(("score_bins", bins),
                                 lambda c, b=bins: score_bins(np.asarray(c.score, np.float64), b))
            code = np.where(keep, every + bins * positive(np.where(keep, y, 0.0)), 2 * bins)
            hist = count_codes(cols, [rows for _, rows in group], code, 2 * bins + 1)
            for (acc, _), h in zip(group, hist, strict=True):
                acc.counts += h[:2 * bins].reshape(2, bins)

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.counts += other.counts

    def to_state(self) -> dict[str, Any]:
        """Sparse: only the bins holding records (``index``, ``neg``, ``pos``)."""
        used = np.flatnonzero(self.counts.sum(axis=0))
        return {"params": self.params(), "index": used.tolist(),
                "neg": self.counts[0, used].tolist(), "pos": self.counts[1, used].tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreHistogram:
        acc = cls(**state_params(cls, state))
        index = np.asarray(state["index"], np.int64)
        if index.size and (index.min() < 0 or index.max() >= acc.bins):
            raise MetricError(f"ScoreHistogram state: bin index out of range [0, {acc.bins})")
        acc.counts[0, index] = state["neg"]
        acc.counts[1, index] = state["pos"]
        return acc

    # --- results -------------------------------------------------------------------------
    def _curve(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        neg, pos = self.counts
        return neg, pos, int(pos.sum()), int(neg.sum())

    def roc_auc(self) -> float:
        neg, pos, p, n = self._curve()
        if p == 0 or n == 0:
            return float("nan")
        neg_below = np.cumsum(neg) - neg
        twice = 2 * int(np.dot(pos, neg_below)) + int(np.dot(pos, neg))  # exact integers
        return twice / (2 * p * n)

    def pr_auc(self) -> float:
        neg, pos, p, _ = self._curve()
        if p == 0:
            return float("nan")
        tp = np.cumsum(pos[::-1])[::-1]          # positives in bins ≥ b
        seen = np.cumsum((pos + neg)[::-1])[::-1]  # records in bins ≥ b
        hit = pos > 0
        return float(np.sum(pos[hit] * (tp[hit] / seen[hit])) / p)

    def roc_auc_error_bound(self) -> float:
        """``Σ_b pos[b]·neg[b] / (2·P·N)``: max |binned − raw-score| ROC AUC.

        A pair in one bin counts 1/2 here and 0, 1/2 or 1 on raw scores; pairs in different bins
        are ordered identically by both. NaN when ROC AUC is undefined.
        """
        neg, pos, p, n = self._curve()
        if p == 0 or n == 0:
            return float("nan")
        return int(np.dot(pos, neg)) / (2 * p * n)

    def pr_auc_error_bound(self) -> float:
        """Max |binned − raw-score| average precision, from the state alone.

        Each positive adds ``precision/P`` at its threshold. In bin ``b`` with ``a`` positives,
        ``c`` negatives, and ``T`` positives among ``A`` records in higher bins, the binned
        precision is ``(T+a)/(A+a+c)``; on raw scores a positive's precision ``(T+i)/(A+j)``
        (``1 ≤ i ≤ a``, ``i ≤ j ≤ i+c``) lies in ``[(T+1)/(A+c+1), (T+a)/(A+a)]``. The bound is
        ``Σ_b (a/P)·max(hi − binned, binned − lo)``.
        """
        neg, pos, p, _ = self._curve()
        if p == 0:
            return float("nan")
        tp_incl = np.cumsum(pos[::-1])[::-1]
        seen_incl = np.cumsum((pos + neg)[::-1])[::-1]
        hit = pos > 0
        a, c = pos[hit].astype(np.float64), neg[hit].astype(np.float64)
        t_above = tp_incl[hit] - a
        a_above = seen_incl[hit] - a - c
        binned = (t_above + a) / (a_above + a + c)
        lo = (t_above + 1) / (a_above + c + 1)
        hi = (t_above + a) / (a_above + a)
        return float(np.sum(a * np.maximum(hi - binned, binned - lo)) / p)

    def result(self) -> dict[str, float]:
        return {"roc_auc": self.roc_auc(), "pr_auc": self.pr_auc()}

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """DeLong interval of ``roc_auc`` (:func:`delong_binned`), logit interval of ``pr_auc``
        (:func:`average_precision_logit`)."""
        _, lo, hi = delong_binned(self.counts[0], self.counts[1], level)
        _, plo, phi = average_precision_logit(self.counts[0], self.counts[1], level)
        return {"roc_auc": (float(lo), float(hi)), "pr_auc": (float(plo), float(phi))}
