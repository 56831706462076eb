"""Expected calibration error over equal-width score bins (label side, binary)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from monitor.core.metrics._common import AccumulatorBase, check_int, positive, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.intervals import ece_interval

MAX_CALIBRATION_BINS = 10_000


@lru_cache(maxsize=16)
def _inner_edges(bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges.flags.writeable = False
    return edges


def calibration_bin(score: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each score in ``[0, 1]``, exactly as ``sklearn.calibration.calibration_curve``
    (``strategy='uniform'``): bins are ``[0, 1/B], (1/B, 2/B], …`` (right-closed)."""
    return np.searchsorted(_inner_edges(bins), score, side="left")


class Calibration(AccumulatorBase):
    """Per-bin count, score sum and label sum → expected calibration error (``ece``).

    Notes
    -----
    With ``n_b`` labelled, scored records in bin ``b`` of ``bins`` equal-width bins of
    ``[0, 1]``, ``N = Σ n_b``, ``s_b`` their score sum and ``y_b`` their positive count::

        ece = Σ_b (n_b / N) · | y_b / n_b − s_b / n_b |

    Empty bins contribute nothing; ``ece`` is NaN when ``N == 0``. The sums are exact
    under merge up to float rounding of ``s_b``. Scores are clipped to ``[0, 1]``.
    """

    kind = "calibration"
    needs_label = True
    _param_names = ("bins",)

    def __init__(self, bins: int = 10) -> None:
        self.bins = check_int("Calibration", "bins", bins, 1, MAX_CALIBRATION_BINS)
        self.count = np.zeros(self.bins, np.int64)
        self.label_sum = np.zeros(self.bins, np.int64)
        self.score_sum = np.zeros(self.bins, np.float64)

    def update(self, cols: ModelColumns) -> None:
        y = np.asarray(cols.label, np.float64)
        s = np.asarray(cols.score, np.float64)
        keep = ~(np.isnan(y) | np.isnan(s))
        if not keep.any():
            return
        s = np.clip(s[keep], 0.0, 1.0)
        b = calibration_bin(s, self.bins)
        self.count += np.bincount(b, minlength=self.bins)
        self.label_sum += np.bincount(b[positive(y[keep])], minlength=self.bins)
        self.score_sum += np.bincount(b, weights=s, minlength=self.bins)

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.count += other.count
        self.label_sum += other.label_sum
        self.score_sum += other.score_sum

    def to_state(self) -> dict[str, Any]:
        return {"params": self.params(), "count": self.count.tolist(),
                "label_sum": self.label_sum.tolist(), "score_sum": self.score_sum.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Calibration:
        acc = cls(**state_params(cls, state))
        acc.count = np.asarray(state["count"], np.int64).reshape(acc.bins)
        acc.label_sum = np.asarray(state["label_sum"], np.int64).reshape(acc.bins)
        acc.score_sum = np.asarray(state["score_sum"], np.float64).reshape(acc.bins)
        return acc

    def result(self) -> dict[str, float]:
        total = int(self.count.sum())
        if total == 0:
            return {"ece": float("nan")}
        gap = np.abs(self.label_sum - self.score_sum)  # n_b·|mean label − mean score|
        return {"ece": float(gap.sum() / total)}

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Interval of ``ece`` (:func:`~monitor.core.metrics.intervals.ece_interval`)."""
        lo, hi = ece_interval(self.count, self.label_sum, self.score_sum, level)
        return {"ece": (float(lo), float(hi))}
