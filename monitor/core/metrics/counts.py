"""Record counts: serving outcomes (prediction side) and labelled records (label side)."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.core.grouped import count_codes
from monitor.core.metrics._common import GroupedAccumulator, ratio, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.intervals import wilson

OUTCOME_NAMES: tuple[str, ...] = ("ok", "error", "timeout", "fallback")  # codes 0..3


class OutcomeCounts(GroupedAccumulator):
    """Records per serving outcome → ``count`` and the failure rates.

    Notes
    -----
    With ``c_o`` the records of outcome ``o`` and ``n = Σ_o c_o``::

        failure_rate = (n - c_ok) / n     error_rate = c_error / n
        timeout_rate = c_timeout / n      fallback_rate = c_fallback / n

    Every rate is NaN when ``n == 0``; ``count`` is 0 then.

    Examples
    --------
    >>> import numpy as np
    >>> from monitor.core.metrics.base import ModelColumns
    >>> acc = OutcomeCounts()
    >>> z = np.zeros(4)
    >>> acc.update(ModelColumns(z, z, z, np.array([0, 0, 1, 3], np.int8)))
    >>> acc.result()["failure_rate"], acc.result()["error_rate"]
    (0.5, 0.25)
    """

    kind = "outcome_counts"
    needs_label = False

    def __init__(self) -> None:
        self.counts = np.zeros(len(OUTCOME_NAMES), np.int64)

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[OutcomeCounts, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass."""
        codes = np.asarray(cols.outcome)
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= len(OUTCOME_NAMES)):
            _check_outcomes(codes, [rows for _, rows in items])
        hist = count_codes(cols, [rows for _, rows in items], codes, len(OUTCOME_NAMES))
        for (acc, _), h in zip(items, hist, strict=True):
            acc.counts += h

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.counts += other.counts

    def to_state(self) -> dict[str, Any]:
        return {"params": {}, "counts": self.counts.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OutcomeCounts:
        acc = cls(**state_params(cls, state))
        acc.counts = np.asarray(state["counts"], np.int64).reshape(len(OUTCOME_NAMES))
        return acc

    def totals(self) -> dict[str, float]:
        out = {"count": float(self.counts.sum())}
        out.update({f"outcome_{name}": float(c)
                    for name, c in zip(OUTCOME_NAMES, self.counts, strict=True)})
        return out

    def result(self) -> dict[str, float]:
        n = int(self.counts.sum())
        ok, error, timeout, fallback = (int(c) for c in self.counts)
        return {
            "count": float(n),
            "failure_rate": ratio(n - ok, n),
            "error_rate": ratio(error, n),
            "timeout_rate": ratio(timeout, n),
            "fallback_rate": ratio(fallback, n),
        }

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Wilson intervals of the four rates."""
        n = int(self.counts.sum())
        ok, error, timeout, fallback = (int(c) for c in self.counts)
        lo, hi = wilson(np.array([n - ok, error, timeout, fallback]), n, level)
        names = ("failure_rate", "error_rate", "timeout_rate", "fallback_rate")
        return {k: (float(a), float(b)) for k, a, b in zip(names, lo, hi, strict=True)}


def _check_outcomes(codes: np.ndarray, rows_list: list[np.ndarray]) -> None:
    """MetricError naming the first out-of-range outcome code of a group (codes outside every
    group are not folded anywhere)."""
    for rows in rows_list:
        group = codes[rows]
        if group.size:
            lo, hi = int(group.min()), int(group.max())
            if lo < 0 or hi >= len(OUTCOME_NAMES):
                raise MetricError(f"outcome codes must be in the range "
                                  f"[0, {len(OUTCOME_NAMES) - 1}] ({', '.join(OUTCOME_NAMES)})."
                                  f" Got {lo if lo < 0 else hi}.")


class LabelCount(GroupedAccumulator):
    """Labelled records (label side) — the numerator of ``labelled_rate``.

    Labels may arrive after their window's predictions, so ``labelled_rate`` cannot be computed
    by one accumulator: this one counts the labelled records it is fed (inline or joined later),
    :class:`OutcomeCounts` counts every prediction, and :func:`monitor.core.metrics.registry.
    window_results` divides ``labelled / count``. ``result()`` alone is therefore empty.
    """

    kind = "label_count"
    needs_label = True

    def __init__(self) -> None:
        self.labelled = 0

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[LabelCount, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass."""
        hist = count_codes(cols, [rows for _, rows in items],
                           cols.labelled().astype(np.int64), 2)
        for (acc, _), n in zip(items, hist[:, 1].tolist(), strict=True):
            acc.labelled += n

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.labelled += other.labelled

    def to_state(self) -> dict[str, Any]:
        return {"params": {}, "labelled": self.labelled}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LabelCount:
        acc = cls(**state_params(cls, state))
        acc.labelled = int(state["labelled"])
        return acc

    def totals(self) -> dict[str, float]:
        return {"labelled": float(self.labelled)}

    def result(self) -> dict[str, float]:
        return {}
