"""Binary label metrics at the decision threshold and probabilistic losses (label side)."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core.grouped import count_codes, sum_values
from monitor.core.metrics._common import GroupedAccumulator, positive, ratio, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.intervals import normal_mean, wilson

EPS = float(np.finfo(np.float64).eps)  # scikit-learn ≥ 1.5 clips log-loss probabilities by it


class Confusion(GroupedAccumulator):
    """Confusion counts at the model threshold (``ModelColumns.predicted`` is already 0/1).

    Notes
    -----
    ``counts[p, y]`` counts labelled records with prediction ``p`` (0, 1, or 2 = unknown, i.e.
    ``predicted`` NaN) and label ``y`` (0/1; a label is positive iff ``label ≥ 0.5``). With
    ``tp = counts[1,1]``, ``fp = counts[1,0]``, ``tn = counts[0,0]``, ``fn = counts[0,1]``::

        accuracy  = (tp + tn) / (tp + tn + fp + fn)
        precision = tp / (tp + fp)          recall = tp / (tp + fn)
        f1        = 2·tp / (2·tp + fp + fn)
        label_positive_rate = #(label = 1) / #labelled   (unknown predictions included)

    Records without a prediction are left out of the first four (their quality shows in
    ``failure_rate``). Every 0/0 is NaN — scikit-learn returns ``zero_division`` (0) instead.
    """

    kind = "confusion"
    needs_label = True

    def __init__(self) -> None:
        self.counts = np.zeros((3, 2), np.int64)

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[Confusion, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass."""
        y = np.asarray(cols.label, np.float64)
        p = np.asarray(cols.predicted, np.float64)
        with np.errstate(invalid="ignore"):
            row = np.where(np.isnan(p), 2, positive(p))
            code = np.where(np.isnan(y), 6, row * 2 + positive(y))
        hist = count_codes(cols, [rows for _, rows in items], code, 7)
        for (acc, _), h in zip(items, hist, strict=True):
            acc.counts += h[:6].reshape(3, 2)

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.counts += other.counts

    def to_state(self) -> dict[str, Any]:
        return {"params": {}, "counts": self.counts.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Confusion:
        acc = cls(**state_params(cls, state))
        acc.counts = np.asarray(state["counts"], np.int64).reshape(3, 2)
        return acc

    def totals(self) -> dict[str, float]:
        (tn, fn), (fp, tp), _ = self.counts.tolist()
        return {"tp": float(tp), "fp": float(fp), "tn": float(tn), "fn": float(fn)}

    def result(self) -> dict[str, float]:
        (tn, fn), (fp, tp), _ = self.counts.tolist()
        labelled = int(self.counts.sum())
        return {
            "accuracy": ratio(tp + tn, tp + tn + fp + fn),
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "label_positive_rate": ratio(int(self.counts[:, 1].sum()), labelled),
        }

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Wilson intervals of accuracy, precision, recall (each a rate over its own
        denominator) and the label positive rate; f1 from the Wilson interval of the Jaccard
        index :func:`f1_interval`."""
        (tn, fn), (fp, tp), _ = self.counts.tolist()
        k = np.array([tp + tn, tp, tp, int(self.counts[:, 1].sum())])
        n = np.array([tp + tn + fp + fn, tp + fp, tp + fn, int(self.counts.sum())])
        lo, hi = wilson(k, n, level)
        names = ("accuracy", "precision", "recall", "label_positive_rate")
        out = {k: (float(a), float(b)) for k, a, b in zip(names, lo, hi, strict=True)}
        f_lo, f_hi = f1_interval(tp, fp + fn, level)
        out["f1"] = (float(f_lo), float(f_hi))
        return out


def f1_interval(tp, errors, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``f1 = 2·tp / (2·tp + errors)`` (``errors = fp + fn``).

    Among the ``m = tp + fp + fn`` records that are positive by label or by prediction, ``tp``
    is Binomial(m, J) given m (J: the Jaccard index), and ``f1 = 2J / (1 + J)`` is increasing
    in J: the Wilson interval of ``tp / m`` mapped through it (exact conditional coverage as
    Wilson's, so unconditional too). NaN where ``m == 0``.
    """
    tp = np.asarray(tp, np.float64)
    lo, hi = wilson(tp, tp + np.asarray(errors, np.float64), level)
    return 2 * lo / (1 + lo), 2 * hi / (1 + hi)


class ProbabilisticLoss(GroupedAccumulator):
    """Sums of the log loss and the Brier score over labelled, scored records.

    Notes
    -----
    With ``p`` the score clipped to ``[0, 1]`` and ``ε`` the float64 machine epsilon
    (scikit-learn's ``log_loss`` clips by the dtype's eps since 1.5)::

        log_loss = −(1/n) Σ [y·log clip(p, ε, 1−ε) + (1−y)·log clip(1−p, ε, 1−ε)]
        brier    = (1/n) Σ (p − y)²

    Records with a NaN score are skipped; both are NaN when ``n == 0``.
    """

    kind = "probabilistic_loss"
    needs_label = True

    def __init__(self) -> None:
        self.n = 0
        self.log_loss_sum = 0.0
        self.brier_sum = 0.0
        self.log_loss_sq = 0.0  # Σ loss², for the intervals (NaN: restored from an old state)
        self.brier_sq = 0.0

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[ProbabilisticLoss, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass."""
        y = np.asarray(cols.label, np.float64)
        p = np.asarray(cols.score, np.float64)
        keep = ~(np.isnan(y) | np.isnan(p))
        pos = positive(np.where(keep, y, 0.0))
        pc = np.clip(np.where(keep, p, 0.5), 0.0, 1.0)
        q = np.where(pos, pc, 1.0 - pc)
        loss = np.where(keep, -np.log(np.clip(q, EPS, 1.0 - EPS)), 0.0)
        brier = np.where(keep, np.square(pc - pos), 0.0)
        rows_list = [rows for _, rows in items]
        sums = sum_values(cols, rows_list, np.stack([loss, brier, loss * loss,
                                                     brier * brier])).tolist()
        counts = count_codes(cols, rows_list, keep.astype(np.int64), 2)[:, 1].tolist()
        for (acc, _), (ll, br, ll2, br2), n in zip(items, sums, counts, strict=True):
            if n:
                acc.n += n
                acc.log_loss_sum += ll
                acc.brier_sum += br
                acc.log_loss_sq += ll2
                acc.brier_sq += br2

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.n += other.n
        self.log_loss_sum += other.log_loss_sum
        self.brier_sum += other.brier_sum
        self.log_loss_sq += other.log_loss_sq
        self.brier_sq += other.brier_sq

    def to_state(self) -> dict[str, Any]:
        return {"params": {}, "n": self.n, "log_loss_sum": self.log_loss_sum,
                "brier_sum": self.brier_sum, "log_loss_sq": _plain(self.log_loss_sq),
                "brier_sq": _plain(self.brier_sq)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProbabilisticLoss:
        acc = cls(**state_params(cls, state))
        acc.n = int(state["n"])
        acc.log_loss_sum, acc.brier_sum = float(state["log_loss_sum"]), float(state["brier_sum"])
        acc.log_loss_sq = _unplain(state.get("log_loss_sq"))
        acc.brier_sq = _unplain(state.get("brier_sq"))
        return acc

    def result(self) -> dict[str, float]:
        return {"log_loss": ratio(self.log_loss_sum, self.n),
                "brier": ratio(self.brier_sum, self.n)}

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Normal-approximation intervals of the two means."""
        lo, hi = normal_mean(np.array([self.log_loss_sum, self.brier_sum]),
                             np.array([self.log_loss_sq, self.brier_sq]), self.n, level)
        return {"log_loss": (max(float(lo[0]), 0.0), float(hi[0])),
                "brier": (max(float(lo[1]), 0.0), min(float(hi[1]), 1.0))}


def _plain(x: float) -> float | None:
    """A float for JSON state (None for NaN, which JSON cannot hold)."""
    return None if x != x else x


def _unplain(x: float | None) -> float:
    """A sum of squares from a state: NaN when absent (a state written before intervals:
    the window then has no interval, never a wrong one)."""
    return float("nan") if x is None else float(x)
