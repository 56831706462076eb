"""Label-free performance estimate of binary classifiers: CBPE (NannyML's Confidence-Based
Performance Estimation).

Calibrate on the reference (scores and labels): isotonic regression of the label on the
score (``scipy.optimize.isotonic_regression``, pool-adjacent-violators; kept as breakpoints,
applied with ``numpy.interp``). In a window, each record's calibrated probability ``c`` and
its prediction ``ŷ = score >= threshold`` give the *expected* confusion matrix:
``TP = Σ c·ŷ``, ``FP = Σ (1−c)·ŷ``, ``FN = Σ c·(1−ŷ)``, ``TN = Σ (1−c)·(1−ŷ)``, hence
accuracy, precision, recall and F1. ROC AUC: the expected TPR/FPR curve over the score,
``TPR(t) = Σ_{s≥t} c / Σ c``, ``FPR(t) = Σ_{s≥t} (1−c) / Σ (1−c)``, integrated by trapezoids
over :data:`AUC_BINS` score bins (ties within a bin count as ties). All state is sums:
mergeable exactly. Intervals (accuracy, precision): given the scores and calibrated
probabilities, the realised count of correct records is a sum of independent Bernoulli
variables, so ``est ± z · sqrt(Σ q(1−q)) / n`` (q: the probability that the record is right)
is a normal prediction interval for the realised metric. Details: docs/analysis.md.

>>> import numpy as np
>>> cal = Calibration.fit(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0., 0., 1., 1.]))
>>> acc = PerformanceEstimate(cal, 0.5)
>>> acc.update_scores(np.array([0.2, 0.8]))
>>> acc.estimates()["accuracy"]
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.registry import register
from monitor.drift.errors import ProfileError

optimize = lazy_module("scipy.optimize")  # at the first fit or estimate, not at start
stats = lazy_module("scipy.stats")

AUC_BINS = 200
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")


@dataclass(frozen=True)
class Calibration:
    """Isotonic calibration map: non-decreasing ``y`` at sorted scores ``x``."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> Calibration:
        ok = np.isfinite(scores) & np.isfinite(labels)
        s, lab = scores[ok], labels[ok]
        if s.shape[0] < 2 or np.unique(lab).shape[0] < 2:
            raise ProfileError("calibration needs scores with both labels")
        order = np.argsort(s, kind="stable")
        xs, inv, counts = np.unique(s[order], return_inverse=True, return_counts=True)
        means = np.bincount(inv, weights=lab[order]) / counts
        fitted = optimize.isotonic_regression(means, weights=counts).x
        return cls(xs.astype(np.float64), np.clip(fitted, 0.0, 1.0))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, *self._knots)

    @cached_property
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` without the points inside a run of equal ``y`` (an isotonic fit is a
        few steps over every distinct reference score): the same ``np.interp`` results,
        bit for bit (between two points of equal ``y`` the slope is 0 either way; the points
        around every change are kept), over a few hundred points instead of ~10⁵."""
        y = self.y
        if y.shape[0] < 3:
            return self.x, y
        keep = np.ones(y.shape[0], dtype=bool)
        keep[1:-1] = (y[1:-1] != y[:-2]) | (y[1:-1] != y[2:])
        return self.x[keep], y[keep]

    def to_state(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Calibration:
        try:
            x, y = np.asarray(s["x"], np.float64), np.asarray(s["y"], np.float64)
        except (KeyError, TypeError, ValueError):
            raise ProfileError("invalid calibration in profile") from None
        if x.ndim != 1 or x.shape != y.shape or x.shape[0] < 1:
            raise ProfileError("invalid calibration in profile: x and y differ")
        return cls(x, y)


@register
class PerformanceEstimate:
    """Sums of one group's calibrated probabilities (expected confusion matrix, variance
    terms, per-score-bin sums for ROC AUC)."""

    kind = "cbpe"
    needs_label = False

    def __init__(self, calibration: Calibration | None = None, threshold: float = 0.5):
        self.calibration = calibration
        self.threshold = threshold
        self.sums = np.zeros(6)  # TP, FP, FN, TN, Σq(1−q), Σ_{ŷ=1} c(1−c)
        self.pos = np.zeros(AUC_BINS)  # Σ c per score bin
        self.neg = np.zeros(AUC_BINS)  # Σ (1−c) per score bin

    def update(self, cols: ModelColumns) -> None:
        self.update_scores(cols.score)

    def update_scores(self, score: np.ndarray) -> None:
        if self.calibration is None:
            return
        s = score[np.isfinite(score)]
        if not s.shape[0]:
            return
        c = self.calibration(s)
        yhat = s >= self.threshold
        q = np.where(yhat, c, 1 - c)
        self.sums += [c[yhat].sum(), (1 - c[yhat]).sum(), c[~yhat].sum(), (1 - c[~yhat]).sum(),
                      (q * (1 - q)).sum(), (c[yhat] * (1 - c[yhat])).sum()]
        b = np.clip((s * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        self.pos += np.bincount(b, weights=c, minlength=AUC_BINS)
        self.neg += np.bincount(b, weights=1 - c, minlength=AUC_BINS)

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[PerformanceEstimate, np.ndarray]]
                    ) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)``, vectorised: the batch's
        calibrated probabilities and per-record terms once, then every group's sums by layers
        of disjoint groups (:func:`monitor.core.grouped.batch_layers`; the records of a group
        added in order, as one ``bincount`` over its rows adds them; records without a finite
        score add nothing)."""
        from monitor.core.grouped import batch_layers

        items = [(a, r) for a, r in items if a.calibration is not None and r.shape[0]]
        if not items:
            return
        first = items[0][0]
        c = cols.derived(("cbpe", id(first.calibration)),
                         lambda cc: first.calibration(cc.score))
        s = cols.score
        ok = np.isfinite(s)
        c = np.where(ok, c, 0.0)
        yhat = (s >= first.threshold) & ok
        q = np.where(yhat, c, 1 - c)
        terms = np.stack([c * yhat, (1 - c) * yhat, c * (ok & ~yhat), (1 - c) * (ok & ~yhat),
                          np.where(ok, q * (1 - q), 0.0), c * (1 - c) * yhat])
        g, k = len(items), terms.shape[0]
        sums, pos, neg = np.zeros((g, k)), np.zeros((g, AUC_BINS)), np.zeros((g, AUC_BINS))
        b = np.clip((np.where(ok, s, 0.0) * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        c_neg = np.where(ok, 1 - c, 0.0)
        rows_k = np.arange(k)[:, None]
        layer_codes, layer_groups = batch_layers(cols, [r for _, r in items])
        for local, owners in zip(layer_codes, layer_groups, strict=True):
            has = owners >= 0
            if not has.any():
                continue
            size, mine = owners.shape[0], owners[has]
            part = np.bincount((local * k + rows_k).ravel(), weights=terms.ravel(),
                               minlength=size * k)
            sums[mine] += part.reshape(size, k)[has]
            cell = local * AUC_BINS + b
            for out, w in ((pos, c), (neg, c_neg)):
                part = np.bincount(cell, weights=w, minlength=size * AUC_BINS)
                out[mine] += part.reshape(size, AUC_BINS)[has]
        for i, (acc, _) in enumerate(items):
            acc.sums += sums[i]
            acc.pos += pos[i]
            acc.neg += neg[i]

    def merge(self, other: PerformanceEstimate) -> None:
        self.sums += other.sums
        self.pos += other.pos
        self.neg += other.neg

    def to_state(self) -> dict[str, Any]:
        return {"sums": self.sums.tolist(), "pos": self.pos.tolist(), "neg": self.neg.tolist(),
                "threshold": self.threshold}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PerformanceEstimate:
        acc = cls(None, float(state["threshold"]))
        acc.sums = np.asarray(state["sums"], np.float64)
        acc.pos = np.asarray(state["pos"], np.float64)
        acc.neg = np.asarray(state["neg"], np.float64)
        return acc

    def result(self) -> dict[str, float]:
        return {}

    def estimates(self) -> dict[str, float]:
        """Estimated metrics (NaN when undefined)."""
        tp, fp, fn, tn = self.sums[:4]
        n = tp + fp + fn + tn
        return {"accuracy": _div(tp + tn, n), "precision": _div(tp, tp + fp),
                "recall": _div(tp, tp + fn), "f1": _div(2 * tp, 2 * tp + fp + fn),
                "roc_auc": self.roc_auc()}

    def roc_auc(self) -> float:
        p, q = self.pos.sum(), self.neg.sum()
        if p <= 0 or q <= 0:
            return math.nan
        tpr = np.concatenate([[0.0], np.cumsum(self.pos[::-1]) / p])
        fpr = np.concatenate([[0.0], np.cumsum(self.neg[::-1]) / q])
        return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))

    def intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Normal prediction intervals of the realised accuracy and precision."""
        z = float(stats.norm.ppf(0.5 + level / 2))
        tp, fp, fn, tn, var_acc, var_prec = self.sums
        n, npos = tp + fp + fn + tn, tp + fp
        est = self.estimates()
        out = {}
        if n > 0:
            h = z * math.sqrt(var_acc) / n
            out["accuracy"] = (est["accuracy"] - h, est["accuracy"] + h)
        if npos > 0:
            h = z * math.sqrt(var_prec) / npos
            out["precision"] = (est["precision"] - h, est["precision"] + h)
        return out


def _div(a: float, b: float) -> float:
    return float(a / b) if b > 0 else math.nan
