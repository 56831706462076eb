"""Per-record error signals of discovery (``discovery.error`` in the spec).

A regression error beyond :data:`ERROR_CAP` (``2**480`` ≈ 3e144: predictions near 1e200, or
whose difference or square overflows float64) counts as ``ERROR_CAP``: the sums of errors and
of their squares of any window stay finite, so the tests and scores are defined (no NaN, no
warning) and a slice of such records is found like any other failing slice; its reported mean
error is then a lower bound. Errors below the cap are untouched.

>>> import numpy as np
>>> from monitor.core.metrics.base import ModelColumns
>>> s = np.array([0.9, 0.2, 0.7, 0.4]); y = np.array([1.0, 1.0, 0.0, np.nan])
>>> cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(4, np.int8))
>>> errors, rows = record_errors("misclassification", cols)
>>> errors.tolist(), rows.tolist()
([0.0, 1.0, 1.0], [0, 1, 2])
"""

from __future__ import annotations

import numpy as np

from monitor.core.metrics.base import ModelColumns

#: error signals whose values are 0 or 1 (tested with Fisher's exact test; others by Welch)
BINARY_ERRORS = frozenset({"misclassification"})
EPS = 1e-15
#: the largest regression error counted (squares under 2**960: sums of 2**63 of them finite)
ERROR_CAP = 2.0 ** 480


def record_errors(error: str, cols: ModelColumns) -> tuple[np.ndarray, np.ndarray]:
    """``(errors, rows)``: the error of each record with a known label and prediction, and
    those records' positions."""
    labelled = cols.labelled()
    if cols.predicted.dtype.kind == "f":
        known = labelled & ~np.isnan(cols.predicted)
    else:
        known = labelled & (cols.predicted >= 0)
    if error in ("log_loss", "brier"):
        known &= ~np.isnan(cols.score)
    rows = np.flatnonzero(known)
    y, pred = cols.label[rows], cols.predicted[rows]
    if error == "misclassification":
        out = (pred != y).astype(np.float64)
    elif error in ("absolute_error", "squared_error"):
        with np.errstate(over="ignore"):  # beyond float64: +inf, capped below
            diff = np.abs(pred - y)
            out = np.minimum(diff if error == "absolute_error" else diff * diff, ERROR_CAP)
    elif error == "log_loss":
        p = np.clip(cols.score[rows], EPS, 1 - EPS)
        out = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    elif error == "brier":
        out = (cols.score[rows] - y) ** 2
    else:
        raise ValueError(f"error must be one of 'misclassification', 'absolute_error', "
                         f"'squared_error', 'log_loss', 'brier'; got {error!r}")
    return out.astype(np.float64), rows
