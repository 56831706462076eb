"""Streaming, mergeable Poisson bootstrap for the metrics with no standard analytic interval.

Each record gets ``R`` Poisson(1) weights, a pure function of its key (a hash of the
prediction id) and the replicate number, so a record weighs the same whether it arrives
inline or with a late label, in one batch or another, before or after a restart: merging
two states equals one pass (Hanna, Oza & Russell's online bootstrap; Chamandy et al. 2012,
"Estimating uncertainty for massive data streams"). A replicate is the metric computed from
the weighted sums of its weights; the interval is the percentile interval of the ``R``
replicates. Column 0 of every sum has unit weights: the metric on the bootstrap's own grid,
used to centre grids coarser than the metric's (``pr_auc``).

Used for paired version comparisons (``compare: {paired: true}``): every binary label metric,
``pr_auc`` on a :data:`PR_BINS`-bin grid. Single-slice intervals no longer bootstrap: ``f1``
and ``score_std``/``prediction_std`` have analytic intervals (Wilson of the Jaccard index; the
delta method on the fourth moment), ``pr_auc`` and ``ece`` intervals are computed at window
close from their histograms (:mod:`monitor.core.metrics.intervals`); the accumulators still
replicate them when asked (states written before, tests).

>>> keys = np.array([1, 2, 3], np.uint64)
>>> w = poisson_weights(keys, 4)
>>> w.shape, w[:, 0].tolist(), bool((poisson_weights(keys[1:], 4) == w[1:]).all())
((3, 5), [1, 1, 1], True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from monitor.core.metrics._common import AccumulatorBase, check_int, positive, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.calibration import calibration_bin
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.ranking import score_bins

DEFAULT_REPLICATES = 200
MAX_REPLICATES = 2000
PR_BINS = 32
# Poisson(1) CDF as 32-bit thresholds: weight = #thresholds ≤ u for u uniform in [0, 2³²)
# (the CDF summed exactly here: equal to scipy.stats.poisson.cdf, tests/unit/test_light_start.py,
# without importing scipy at start)
_THRESHOLDS = np.round(np.array([math.fsum(math.exp(-1) / math.factorial(i) for i in range(k + 1))
                                 for k in range(20)]) * 2.0 ** 32).astype(np.uint64)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# the same inversion by a table on the top 16 bits; buckets holding a threshold are marked
# 255 and resolved with ``searchsorted`` (≤ 20 of 65 536 buckets)
_LOW = np.searchsorted(_THRESHOLDS, np.arange(2 ** 16, dtype=np.uint64) << np.uint64(16),
                       side="right")
_HIGH = np.searchsorted(_THRESHOLDS, (np.arange(2 ** 16, dtype=np.uint64) << np.uint64(16))
                        + np.uint64(2 ** 16 - 1), side="right")
_TABLE = np.where(_LOW == _HIGH, _LOW, 255).astype(np.uint8)

# what each accumulator can replicate (states written before f1 and the std got analytic
# intervals still restore) …
LABEL_METRICS = {"binary": ("f1", "pr_auc", "ece", "accuracy", "precision", "recall",
                            "roc_auc", "brier", "log_loss")}
PREDICTION_METRICS = {"binary": ("score_std",), "multiclass": ("score_std",),
                      "regression": ("prediction_std",)}
# … and what the registry bootstraps: only the metrics with no analytic interval (none since
# pr_auc and ece got theirs from their histograms at window close, monitor/core/metrics/
# intervals.py: no per-record cost)
BOOTSTRAPPED_LABEL: dict[str, tuple[str, ...]] = {}
BOOTSTRAPPED_PREDICTION: dict[str, tuple[str, ...]] = {}
# … and, for a model comparing versions with ``paired: true``, every label metric it can:
# the replicate differences of two versions are then a paired bootstrap (monitor/core/compare)
PAIRED_LABEL = LABEL_METRICS
_CONFUSION = ("f1", "accuracy", "precision", "recall")


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def poisson_weights(keys: np.ndarray, replicates: int) -> np.ndarray:
    """``(n, replicates + 1)`` uint8 weights: column 0 is 1, column ``r`` is a Poisson(1)
    draw that depends on ``(key, r)`` only."""
    r = np.arange(1, replicates + 1, dtype=np.uint64) * _GOLDEN
    with np.errstate(over="ignore"):
        u = _mix(np.asarray(keys, np.uint64)[:, None] ^ r[None, :]) >> np.uint64(32)
    w = np.empty((u.shape[0], replicates + 1), np.uint8)
    w[:, 0] = 1
    body = _TABLE[(u >> np.uint64(16)).astype(np.intp)]
    odd = np.flatnonzero(body.ravel() == 255)
    if odd.size:
        body.ravel()[odd] = np.searchsorted(_THRESHOLDS, u.ravel()[odd], side="right")
    w[:, 1:] = body
    return w


def cell_sums(weights: np.ndarray, codes: np.ndarray, values: np.ndarray | None,
              cells: int) -> np.ndarray:
    """``out[c, r]``: Σ weights[i, r]·values[i] over the records ``i`` with ``codes[i] == c``
    (``values`` None: 1); records with a negative code are left out."""
    keep = np.flatnonzero(codes >= 0)
    out = np.zeros((cells, weights.shape[1]))
    if not keep.size:
        return out
    c = codes[keep]
    order = np.argsort(c, kind="stable")
    c, rows = c[order], keep[order]
    w = weights[rows]
    if values is not None:
        w = w * values[rows][:, None]
    present, starts = np.unique(c, return_index=True)
    out[present] = np.add.reduceat(w, starts, axis=0, dtype=np.float64)
    return out


def _joint_codes(codes: list[np.ndarray], cells: list[int]
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """One code per record for the tuple of its ``codes`` (each in ``[-1, cells)``): the
    index among the tuples present (−1 when every code is −1), and per channel the
    ``(cells, tuples)`` 0/1 matrix from joint cells to the channel's cells."""
    if not codes:
        return np.zeros(0, np.int64), []
    key = np.zeros(codes[0].shape[0], np.int64)
    for c, k in zip(codes, cells, strict=True):
        key = key * (k + 1) + (np.asarray(c, np.int64) + 1)
    uniq, joint = np.unique(key, return_inverse=True)
    joint = np.where(key == 0, -1, joint.reshape(-1))
    split, rest = [], uniq.copy()
    for k in reversed(cells):
        code = rest % (k + 1) - 1
        rest //= k + 1
        onehot = np.zeros((k, uniq.shape[0]))
        has = code >= 0
        onehot[code[has], np.flatnonzero(has)] = 1.0
        split.append(onehot)
    split.reverse()
    return joint, split


# float32 sums of integer weights are exact below 2²⁴; a record's weight is at most
# len(_THRESHOLDS) (the table's largest value), so a row of the count product (one slice's
# records in one joint cell) stays exact while the slice has fewer than this many records
F32_EXACT_RECORDS = 2 ** 24 // len(_THRESHOLDS)


def _sparse_sums(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int,
                 weights: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``out[r] = Σ values[i]·weights[cols[i]]`` over the entries ``i`` with ``rows[i] == r``
    (a CSR matrix times the weights, in ``dtype``: float32 only for integer values whose row
    sums stay below 2²⁴, where it is exact and moves half the bytes)."""
    from scipy.sparse import csr_matrix

    s = csr_matrix((values.astype(dtype, copy=False), (rows, cols)),
                   shape=(n_rows, weights.shape[0]))
    return np.asarray(s @ weights.astype(dtype))


def _weights(cols: ModelColumns, replicates: int) -> np.ndarray:
    return cols.derived(("poisson_weights", replicates),
                        lambda c: poisson_weights(record_keys_of(c), replicates))


def record_keys_of(cols: ModelColumns) -> np.ndarray:
    """The columns' record keys: ``key``, else the batch's ``key_source`` (computed once per
    batch); columns built without either (tests, frames) get a hash of their score and
    prediction."""
    if cols.key is not None:
        return np.asarray(cols.key, np.uint64)
    return cols.derived("record_keys", _lazy_keys)


def _lazy_keys(cols: ModelColumns) -> np.ndarray:
    if cols.key_source is not None:
        return np.asarray(cols.key_source(), np.uint64)
    score = np.nan_to_num(np.asarray(cols.score, np.float64)).view(np.uint64)
    pred = np.asarray(cols.predicted)
    pred = np.nan_to_num(pred.astype(np.float64)).view(np.uint64)
    with np.errstate(over="ignore"):
        return _mix(_mix(score) * _GOLDEN ^ pred)


class _Bootstrap(AccumulatorBase):
    """Weighted sums per channel (``name → (cells, R + 1)``) and replicates of metrics."""

    _param_names = ("task", "metrics", "replicates", "bins")
    supported: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, task: str = "binary", metrics: tuple[str, ...] | list[str] = (),
                 replicates: int = DEFAULT_REPLICATES, bins: int = 10) -> None:
        self.task = task
        allowed = self.supported.get(task, ())
        bad = [m for m in metrics if m not in allowed]
        if bad:
            raise MetricError(f"The 'metrics' parameter of {type(self).__name__} must name "
                              f"metrics among {', '.join(allowed) or 'none'} for task "
                              f"{task!r}. Got {', '.join(bad)}.")
        self.metrics = tuple(metrics)
        self.replicates = check_int(type(self).__name__, "replicates", replicates, 10,
                                    MAX_REPLICATES)
        self.bins = check_int(type(self).__name__, "bins", bins, 1, 10_000)
        self.sums = {name: np.zeros((cells, self.replicates + 1))
                     for name, cells in self._layout().items()}

    def params(self) -> dict[str, Any]:
        return {"task": self.task, "metrics": list(self.metrics),
                "replicates": self.replicates, "bins": self.bins}

    def _layout(self) -> dict[str, int]:
        raise NotImplementedError

    def _channels(self, cols: ModelColumns
                  ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        raise NotImplementedError

    def update(self, cols: ModelColumns) -> None:
        self.update_many(cols, [(self, np.arange(len(cols)))])

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[_Bootstrap, np.ndarray]]) -> None:
        """Every ``(acc, rows)`` of one batch: the weights and codes once per batch, and all
        accumulators' channels in one sparse product: ``S @ W`` with ``S[(acc, channel,
        cell), record]`` the record's value (1 for counts) and ``W`` the batch's Poisson
        weights — no per-slice gather, sort or weighted copy of the weights."""
        by_params: dict[str, list[tuple[_Bootstrap, np.ndarray]]] = {}
        for acc, rows in items:
            if rows.shape[0]:
                by_params.setdefault(repr(acc.params()), []).append((acc, rows))
        for group in by_params.values():
            first = group[0][0]
            channels = first._channels(cols)
            if not channels:
                continue
            cells = first._layout()
            # the count channels of a record as one joint cell: one product entry per record
            # and slice for all of them, the channels' sums read off the joint ones after
            counted = [n for n, (_, v) in channels.items() if v is None]
            joint, split = _joint_codes([channels[n][0] for n in counted],
                                        [cells[n] for n in counted])
            product = {**({"__joint__": (joint, None)} if counted else {}),
                       **{n: ch for n, ch in channels.items() if n not in counted}}
            sizes = {"__joint__": split[0].shape[1] if split else 0,
                     **{n: cells[n] for n in product if n != "__joint__"}}
            offsets, total = {}, 0  # value channels: offsets into the float64 product
            for name in product:
                if name != "__joint__":
                    offsets[name], total = total, total + sizes[name]
            joint_n = sizes["__joint__"]
            jr, jc, vr, vc, vv = [], [], [], [], []
            for g, (_acc, rows) in enumerate(group):
                for name, (codes, values) in product.items():
                    c = codes[rows]
                    keep = c >= 0
                    kept = rows[keep]
                    if name == "__joint__":
                        jr.append(g * joint_n + c[keep])
                        jc.append(kept)
                    else:
                        vr.append(g * total + offsets[name] + c[keep])
                        vc.append(kept)
                        vv.append(np.ones(kept.shape[0]) if values is None else values[kept])
            weights = _weights(cols, first.replicates)
            width = weights.shape[1]
            if jr:
                # integer sums: float32 while exact (every slice below F32_EXACT_RECORDS
                # records), else float64; accumulated across batches in float64
                biggest = max(rows.shape[0] for _, rows in group)
                dtype = np.float32 if biggest < F32_EXACT_RECORDS else np.float64
                jrows = np.concatenate(jr)
                joint_out = _sparse_sums(jrows, np.concatenate(jc),
                                         np.ones(jrows.shape[0], dtype), len(group) * joint_n,
                                         weights, dtype).reshape(len(group), joint_n, width)
            if vr:
                value_out = _sparse_sums(np.concatenate(vr), np.concatenate(vc),
                                         np.concatenate(vv), len(group) * total,
                                         weights).reshape(len(group), total, width)
            for g, (acc, _) in enumerate(group):
                if jr:
                    joint = joint_out[g].astype(np.float64)
                    for name, onehot in zip(counted, split, strict=True):
                        acc.sums[name] += onehot @ joint  # integer sums: exact
                for name in offsets:
                    acc.sums[name] += value_out[g, offsets[name]:offsets[name] + sizes[name]]

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        for name, arr in other.sums.items():
            self.sums[name] += arr

    def to_state(self) -> dict[str, Any]:
        return {"params": self.params(), "sums": {k: v.tolist() for k, v in self.sums.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Bootstrap:
        params = state_params(cls, state)
        params["metrics"] = tuple(params.get("metrics", ()))
        acc = cls(**params)
        for name, arr in acc.sums.items():
            got = np.asarray(state["sums"][name], np.float64)
            if got.shape != arr.shape:
                raise MetricError(f"{cls.__name__} state: sums[{name!r}] has shape "
                                  f"{got.shape}, expected {arr.shape}")
            acc.sums[name] = got
        return acc

    def result(self) -> dict[str, float]:
        return {}


class BootstrapLabel(_Bootstrap):
    """Replicates of label-side binary metrics: ``pr_auc`` and ``ece`` (no analytic
    interval), and, for paired version comparisons, ``accuracy``, ``precision``, ``recall``,
    ``f1``, ``roc_auc`` (on the :data:`PR_BINS` grid), ``brier``, ``log_loss``. ``bins``: the
    model's calibration bins."""

    kind = "bootstrap_label"
    needs_label = True
    supported = LABEL_METRICS

    def _layout(self) -> dict[str, int]:
        out = {}
        if any(m in self.metrics for m in _CONFUSION):
            out["confusion"] = 4
        if "pr_auc" in self.metrics or "roc_auc" in self.metrics:
            out["ranking"] = 2 * PR_BINS
        if "brier" in self.metrics or "log_loss" in self.metrics:
            out["loss_n"] = 1
        for name in ("brier", "log_loss"):
            if name in self.metrics:
                out[name] = 1
        if "ece" in self.metrics:
            out |= {"cal_n": self.bins, "cal_y": self.bins, "cal_s": self.bins}
        return out

    def _channels(self, cols: ModelColumns) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        y = np.asarray(cols.label, np.float64)
        s = np.asarray(cols.score, np.float64)
        p = np.asarray(cols.predicted, np.float64)
        labelled = ~np.isnan(y)
        pos = positive(np.where(labelled, y, 0.0))
        scored = labelled & ~np.isnan(s)
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        if any(m in self.metrics for m in _CONFUSION):
            with np.errstate(invalid="ignore"):
                code = np.where(labelled & ~np.isnan(p), 2 * positive(p) + pos, -1)
            out["confusion"] = (code.astype(np.int64), None)
        if "pr_auc" in self.metrics or "roc_auc" in self.metrics:
            code = np.where(scored, 2 * score_bins(np.where(scored, s, 0.0), PR_BINS) + pos, -1)
            out["ranking"] = (code.astype(np.int64), None)
        if "brier" in self.metrics or "log_loss" in self.metrics:
            code = np.where(scored, 0, -1).astype(np.int64)
            q = np.clip(np.where(scored, s, 0.5), 0.0, 1.0)
            out["loss_n"] = (code, None)
            if "brier" in self.metrics:
                out["brier"] = (code, np.square(q - pos))
            if "log_loss" in self.metrics:
                eps = float(np.finfo(np.float64).eps)
                qc = np.clip(q, eps, 1 - eps)
                out["log_loss"] = (code, -np.where(pos, np.log(qc), np.log1p(-qc)))
        if "ece" in self.metrics:
            sc = np.clip(np.where(scored, s, 0.0), 0.0, 1.0)
            code = np.where(scored, calibration_bin(sc, self.bins), -1).astype(np.int64)
            # cal_y: Σ w over the positives, a count channel (joins the joint count code)
            out |= {"cal_n": (code, None), "cal_y": (np.where(pos, code, -1), None),
                    "cal_s": (code, sc)}
        return out

    def replicates_of(self) -> dict[str, np.ndarray]:
        """Metric → its ``R + 1`` values (index 0: unit weights on the bootstrap's grid)."""
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            if "confusion" in self.sums:
                tn, fn, fp, tp = self.sums["confusion"]
                every = {"f1": 2 * tp / (2 * tp + fp + fn), "accuracy": (tp + tn) / (
                    tp + tn + fp + fn), "precision": tp / (tp + fp), "recall": tp / (tp + fn)}
                out |= {m: v for m, v in every.items() if m in self.metrics}
            if "pr_auc" in self.metrics:
                h = self.sums["ranking"]
                out["pr_auc"] = average_precision(h[0::2].T, h[1::2].T)
            if "roc_auc" in self.metrics:
                h = self.sums["ranking"]
                neg, pos = h[0::2], h[1::2]  # (bins, R + 1)
                below = np.cumsum(neg, axis=0) - neg / 2
                out["roc_auc"] = (pos * below).sum(axis=0) / (pos.sum(axis=0) * neg.sum(axis=0))
            for name in ("brier", "log_loss"):
                if name in self.metrics:
                    out[name] = self.sums[name][0] / self.sums["loss_n"][0]
            if "ece" in self.metrics:
                n = self.sums["cal_n"].sum(axis=0)
                gap = np.abs(self.sums["cal_y"] - self.sums["cal_s"]).sum(axis=0)
                out["ece"] = gap / n
        return out


class BootstrapPrediction(_Bootstrap):
    """Replicates of the prediction-side standard deviation (``score_std`` /
    ``prediction_std``)."""

    kind = "bootstrap_prediction"
    needs_label = False
    supported = PREDICTION_METRICS

    def _layout(self) -> dict[str, int]:
        return {"n": 1, "x": 1, "x2": 1} if self.metrics else {}

    def _channels(self, cols: ModelColumns) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        if not self.metrics:
            return {}
        x = np.asarray(cols.predicted if self.task == "regression" else cols.score, np.float64)
        finite = np.isfinite(x)
        code = np.where(finite, 0, -1).astype(np.int64)
        x = np.where(finite, x, 0.0)
        return {"n": (code, None), "x": (code, x), "x2": (code, x * x)}

    def replicates_of(self) -> dict[str, np.ndarray]:
        if not self.metrics:
            return {}
        n, x, x2 = self.sums["n"][0], self.sums["x"][0], self.sums["x2"][0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = x / n
            std = np.sqrt(np.maximum(x2 / n - mean * mean, 0.0))
        return {self.metrics[0]: std}


def average_precision(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Average precision from histograms ``(..., bins)`` of negatives and positives in
    increasing score order (bins hold tied scores), as :class:`ScoreHistogram` computes it."""
    p = pos.sum(axis=-1)
    tp = np.flip(np.cumsum(np.flip(pos, -1), -1), -1)
    seen = np.flip(np.cumsum(np.flip(pos + neg, -1), -1), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(pos > 0, tp / np.where(seen > 0, seen, 1.0), 0.0)
        return (pos * prec).sum(axis=-1) / p


def bootstrap_interval(replicates: np.ndarray, estimate: float, level: float
                       ) -> tuple[float, float]:
    """Percentile interval of ``replicates[1:]``, moved by ``estimate − replicates[0]`` (the
    metric's own value minus its value on the bootstrap's grid: 0 unless the grid is
    coarser)."""
    from monitor.core.metrics.intervals import percentile

    lo, hi = percentile(replicates[1:], level)
    shift = estimate - float(replicates[0]) if math.isfinite(replicates[0]) else 0.0
    return lo + shift, hi + shift
