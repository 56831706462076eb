"""Multiclass confusion matrix over class codes (label side)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.core.metrics._common import AccumulatorBase, check_int, ratio, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.intervals import wilson

DEFAULT_MAX_CLASSES = 1024


class MulticlassConfusion(AccumulatorBase):
    """``counts[y, p + 1]``: labelled records with true code ``y`` and predicted code ``p``.

    Column 0 holds unknown predictions (code −1): they count as wrong (in ``accuracy`` and in
    the recall of their true class) but are not a class. The matrix grows when higher codes
    arrive, up to ``max_classes``; merging pads the smaller matrix.

    Notes
    -----
    For each class ``c`` present among labels or (known) predictions, ``tp_c = counts[c,c+1]``,
    ``fp_c`` = predicted ``c`` but not ``c``, ``fn_c`` = labelled ``c`` but not predicted ``c``::

        accuracy        = Σ_c tp_c / #labelled
        macro_precision = mean_c tp_c / (tp_c + fp_c)      (0 when nothing predicted c)
        macro_recall    = mean_c tp_c / (tp_c + fn_c)      (0 when no label c)
        macro_f1        = mean_c 2·tp_c / (2·tp_c + fp_c + fn_c)

    This is scikit-learn's ``average='macro'`` with ``zero_division=0`` and
    ``labels`` = the present classes. All four are NaN when no labelled record was seen.
    """

    kind = "multiclass_confusion"
    needs_label = True
    _param_names = ("max_classes",)

    def __init__(self, max_classes: int = DEFAULT_MAX_CLASSES) -> None:
        self.max_classes = check_int("MulticlassConfusion", "max_classes", max_classes, 1, 1 << 16)
        self.counts = np.zeros((0, 1), np.int64)

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    def _grow(self, k: int) -> None:
        if k > self.max_classes:
            raise MetricError(f"class code {k - 1} is out of range [0, {self.max_classes - 1}] "
                              "of MulticlassConfusion (max_classes)")
        if k > self.n_classes:
            grown = np.zeros((k, k + 1), np.int64)
            grown[: self.n_classes, : self.n_classes + 1] = self.counts
            self.counts = grown

    def update(self, cols: ModelColumns) -> None:
        y = np.asarray(cols.label, np.int64)
        keep = y >= 0
        if not keep.any():
            return
        y = y[keep]
        p = np.maximum(np.asarray(cols.predicted, np.int64)[keep], -1)
        self._grow(int(max(y.max(), p.max())) + 1)
        k = self.n_classes
        idx = y * (k + 1) + (p + 1)
        self.counts += np.bincount(idx, minlength=k * (k + 1)).reshape(k, k + 1)

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self._grow(other.n_classes)
        k = other.n_classes
        self.counts[:k, : k + 1] += other.counts

    def to_state(self) -> dict[str, Any]:
        return {"params": self.params(), "counts": self.counts.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MulticlassConfusion:
        acc = cls(**state_params(cls, state))
        counts = np.asarray(state["counts"], np.int64)
        k = len(state["counts"])
        acc._grow(k)
        acc.counts = counts.reshape(k, k + 1)
        return acc

    def result(self) -> dict[str, float]:
        total = int(self.counts.sum())
        if total == 0:
            nan = float("nan")
            return {"accuracy": nan, "macro_precision": nan, "macro_recall": nan,
                    "macro_f1": nan}
        known = self.counts[:, 1:]             # k × k, predicted code known
        tp = np.diag(known)
        predicted = known.sum(axis=0)          # per class: predicted as c
        labelled = self.counts.sum(axis=1)     # per class: labelled c (unknown preds too)
        present = (predicted > 0) | (labelled > 0)
        tp, predicted, labelled = tp[present], predicted[present], labelled[present]
        fp, fn = predicted - tp, labelled - tp
        prec = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        rec = np.where(labelled > 0, tp / np.maximum(labelled, 1), 0.0)
        f1 = 2 * tp / (2 * tp + fp + fn)  # denominator > 0 for every present class
        return {
            "accuracy": ratio(int(tp.sum()), total),
            "macro_precision": float(prec.mean()),
            "macro_recall": float(rec.mean()),
            "macro_f1": float(f1.mean()),
        }

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Wilson interval of ``accuracy``; the ``macro_*`` ones by :func:`macro_intervals`."""
        known = self.counts[:, 1:]
        lo, hi = wilson(int(np.trace(known)), int(self.counts.sum()), level)
        out = {"accuracy": (float(lo), float(hi))}
        if int(self.counts.sum()) >= 2:
            out |= macro_intervals(self.counts, level)
        return out


def macro_intervals(counts: np.ndarray, level: float) -> dict[str, tuple[float, float]]:
    """Wald intervals of ``macro_precision``, ``macro_recall``, ``macro_f1`` from the
    confusion counts ``counts[y, p + 1]`` (column 0: unknown prediction), by the delta method
    on the multinomial cells: each metric θ is a function of the counts, homogeneous of
    degree 0, so ``Var θ̂ ≈ Σ_ij n_ij (∂θ/∂n_ij)²``. With ``T_c`` the diagonal, ``R_c`` the
    row (labelled c), ``C_c`` the known-prediction column and ``S_c = R_c + C_c``, the
    per-class terms are ``r = T/R`` (∂ = (R−T)/R² on the diagonal, −T/R² elsewhere in the row),
    ``p = T/C`` (the same along the column) and ``f1 = 2T/S`` (diagonal 2(S−2T)/S², −2T/S²
    elsewhere in row or column); for recall and precision the sum is the familiar
    ``Σ_c r_c(1−r_c)/R_c / K²``. Classes as in :meth:`MulticlassConfusion.result` (present
    ones, zero_division = 0 contributing no variance)."""
    from monitor.core.metrics.intervals import z_value

    n = np.asarray(counts, np.float64)
    known = n[:, 1:]
    tp = np.diag(known)
    col = known.sum(axis=0)
    row = n.sum(axis=1)
    present = (col > 0) | (row > 0)
    k = int(present.sum())
    if k == 0:
        return {}
    diag = (np.arange(len(tp)), np.arange(len(tp)) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = row + col
        rec = np.where(row > 0, tp / row, 0.0)
        prec = np.where(col > 0, tp / col, 0.0)
        f1 = np.where(s > 0, 2 * tp / s, 0.0)
        # ∂(Σ_c term_c)/∂n_ij on the (classes, classes + 1) grid of cells
        g_rec = np.repeat(np.where(row > 0, -tp / row ** 2, 0.0)[:, None], n.shape[1], axis=1)
        g_rec[diag] = np.where(row > 0, (row - tp) / row ** 2, 0.0)
        g_prec = np.zeros_like(n)
        g_prec[:, 1:] = np.where(col > 0, -tp / col ** 2, 0.0)[None, :]
        g_prec[diag] = np.where(col > 0, (col - tp) / col ** 2, 0.0)
        off = np.where(s > 0, -2 * tp / s ** 2, 0.0)
        g_f1 = np.repeat(off[:, None], n.shape[1], axis=1)  # F1 of the cell's row class …
        g_f1[:, 1:] += off[None, :]  # … and of its (known) predicted class
        g_f1[diag] = np.where(s > 0, 2 * (s - 2 * tp) / s ** 2, 0.0)
    z = z_value(level)
    out = {}
    for name, value, grad in (("macro_recall", rec, g_rec), ("macro_precision", prec, g_prec),
                              ("macro_f1", f1, g_f1)):
        theta = float(value[present].mean())
        half = z * math.sqrt(max(float((n * np.square(grad)).sum()), 0.0)) / k
        out[name] = (theta - half, theta + half)
    return out
