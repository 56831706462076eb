"""Delayed labels joined to their predictions by prediction id, with bounded state.

Two waiting rooms, both bounded:

- **pending predictions**: predictions logged without a label wait while their window is open
  (a model with ``label_delay`` keeps windows open that much longer). When the label comes,
  the prediction — as first seen, same slices and version — is folded into its window's
  label-side accumulators. When the window closes, its still-unlabelled predictions expire
  (counted as ``expired``).
- **early labels**: labels that arrive before their prediction wait and are attached when
  the prediction arrives. A label whose prediction can no longer come on time (every model
  it may belong to has closed the window of the label's time: :meth:`LabelJoin.expire_early`)
  is forgotten and counted as ``orphaned``; so are the oldest when more than ``max_early``
  wait. Label records carry no model: orphans are counted under the spec's model when it has
  one, else under ``__unknown__``.

>>> join = LabelJoin(models=("m",))
>>> join.add_labels(np.array(["a"], object), np.array([1], object), np.array([5.0]))
{}
>>> len(join.early)
1
>>> join.expire_early({"m": 60.0}), join.counts[("m", "orphaned")]
(1, 1)
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.records import RecordBatch, batch_from_state, batch_to_state, concat
from slices.codes import isna

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)


@dataclass
class _Segment:
    """Unlabelled predictions of one model from one batch (rows die as they match/expire)."""

    batch: RecordBatch
    starts: np.ndarray
    alive: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.alive is None:
            self.alive = np.ones(len(self.batch), dtype=bool)


UNKNOWN_MODEL = "__unknown__"


class LabelJoin:
    def __init__(self, *, max_pending: int = 2_000_000, max_early: int = 1_000_000,
                 models: Sequence[str] = ()):
        """``models``: the spec's models (orphaned labels are counted under the model when
        there is exactly one)."""
        self.max_pending = max_pending
        self.max_early = max_early
        self.models = tuple(models)
        self.orphan_model = self.models[0] if len(self.models) == 1 else UNKNOWN_MODEL
        self.segments: dict[str, list[int]] = {}  # model → segment ids
        self.index: dict[str, tuple[str, int, int]] = {}  # id → (model, segment id, row)
        self._seg_ids: dict[int, _Segment] = {}
        self._next_seg = 0
        self.early: OrderedDict[str, Any] = OrderedDict()  # id → label, oldest first
        self.early_time: dict[str, float] = {}  # id → label time (NaN: unknown)
        self._by_time: list[tuple[float, str]] = []  # heap of (label time, id), lazily pruned
        self.counts: Counter = Counter()  # (model, outcome) → n

    # ---- predictions -------------------------------------------------------------------
    def attach_early(self, batch: RecordBatch) -> RecordBatch:
        """Fill in labels that arrived before these predictions."""
        if not self.early or not len(batch):
            return batch
        hits = [i for i, pid in enumerate(batch.id) if pid in self.early]
        if not hits:
            return batch
        label = batch.label.copy()
        for i in hits:
            if label[i] is None:
                label[i] = self.early.pop(batch.id[i])
                self.early_time.pop(batch.id[i], None)
        self.counts[(str(batch.model[0]), "joined")] += len(hits)
        return dataclasses.replace(batch, label=label)

    def remember(self, model: str, batch: RecordBatch, starts: np.ndarray,
                 keep: np.ndarray) -> None:
        """Keep the unlabelled predictions among ``keep`` (on-time rows) until their label."""
        rows = np.flatnonzero(keep & isna(batch.label))
        rows = rows[batch.id[rows] != ""]  # ids compared for the unlabelled rows only
        if not rows.size:
            return
        if len(self.index) + rows.size > self.max_pending:
            self.counts[(model, "dropped_full")] += int(rows.size)
            return
        seg = _Segment(batch.take(rows), starts[rows])
        sid = self._next_seg
        self._next_seg += 1
        self._seg_ids[sid] = seg
        self.segments.setdefault(model, []).append(sid)
        for r, pid in enumerate(seg.batch.id):
            old = self.index.get(pid)
            if old is not None:  # a repeated id: the newer prediction wins
                self._seg_ids[old[1]].alive[old[2]] = False
            self.index[pid] = (model, sid, r)

    def expire(self, model: str, closed_keys: set[float]) -> int:
        """Forget unlabelled predictions of windows that closed; returns how many."""
        if not closed_keys:
            return 0
        expired = 0
        keep_ids = []
        for sid in self.segments.get(model, []):
            seg = self._seg_ids[sid]
            dead = seg.alive & np.isin(seg.starts, list(closed_keys))
            for r in np.flatnonzero(dead):
                self.index.pop(seg.batch.id[r], None)
            seg.alive &= ~dead
            expired += int(dead.sum())
            if seg.alive.any():
                keep_ids.append(sid)
            else:
                del self._seg_ids[sid]
        self.segments[model] = keep_ids
        self.counts[(model, "expired")] += expired
        return expired

    # ---- labels --------------------------------------------------------------------------
    def add_labels(self, ids: np.ndarray, labels: np.ndarray,
                   times: np.ndarray) -> dict[str, tuple[RecordBatch, np.ndarray]]:
        """Match labels to pending predictions → ``{model: (labelled predictions, starts)}``;
        unmatched labels wait in ``early``."""
        found: dict[tuple[str, int], list[tuple[int, Any]]] = {}
        for pid, lab, t in zip(ids, labels, times, strict=True):
            hit = self.index.pop(pid, None)
            if hit is None:
                self._wait(pid, lab, float(t))
                continue
            model, sid, row = hit
            found.setdefault((model, sid), []).append((row, lab))
        while len(self.early) > self.max_early:
            pid, _ = self.early.popitem(last=False)
            self.early_time.pop(pid, None)
            self.counts[(self.orphan_model, "orphaned")] += 1
        out: dict[str, list[tuple[RecordBatch, np.ndarray]]] = {}
        for (model, sid), hits in found.items():
            seg = self._seg_ids[sid]
            rows = np.array([r for r, _ in hits], dtype=np.int64)
            part = seg.batch.take(rows)
            label = np.empty(rows.size, dtype=object)
            label[:] = [lab for _, lab in hits]
            out.setdefault(model, []).append((dataclasses.replace(part, label=label),
                                              seg.starts[rows]))
            seg.alive[rows] = False
            self.counts[(model, "joined")] += int(rows.size)
        return {m: (concat([b for b, _ in parts]), np.concatenate([s for _, s in parts]))
                for m, parts in out.items()}

    def _wait(self, pid: str, label: Any, t: float) -> None:
        self.early[pid] = label
        self.early.move_to_end(pid)
        self.early_time[pid] = t
        if not math.isnan(t):
            heapq.heappush(self._by_time, (t, pid))
        if len(self._by_time) > 2 * len(self.early) + 1024:  # drop entries of matched labels
            self._by_time = [(t, p) for p, t in self.early_time.items() if not math.isnan(t)]
            heapq.heapify(self._by_time)

    def expire_early(self, horizons: Mapping[str, float]) -> int:
        """Forget waiting labels whose prediction can no longer arrive on time: those with a
        label time before every model's horizon (``model → time before which a prediction
        is late``; a model missing here never expires labels). Counted as ``orphaned``;
        returns how many."""
        if not self.early or any(m not in horizons for m in self.models):
            return 0
        horizon = min((horizons[m] for m in self.models), default=-math.inf)
        n = 0
        while self._by_time and self._by_time[0][0] < horizon:
            t, pid = heapq.heappop(self._by_time)
            if self.early_time.get(pid) == t:  # still waiting (not matched meanwhile)
                del self.early[pid], self.early_time[pid]
                n += 1
        self.counts[(self.orphan_model, "orphaned")] += n
        return n

    # ---- checkpoints ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        segs = []
        for model, sids in self.segments.items():
            for sid in sids:
                seg = self._seg_ids[sid]
                rows = np.flatnonzero(seg.alive)
                if rows.size:
                    segs.append({"model": model, "starts": seg.starts[rows].tolist(),
                                 "batch": batch_to_state(seg.batch.take(rows))})
        return {"segments": segs,
                "early": [[k, v, _plain(self.early_time.get(k, math.nan))]
                          for k, v in self.early.items()],
                "counts": [[list(k), v] for k, v in self.counts.items()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.__init__(max_pending=self.max_pending, max_early=self.max_early,
                      models=self.models)
        for seg in state["segments"]:
            batch = batch_from_state(seg["batch"])
            self.remember(seg["model"], batch, np.asarray(seg["starts"], np.float64),
                          np.ones(len(batch), bool))
        for k, v, *t in state["early"]:  # [id, label, time]; states before it had no time
            self._wait(k, v, float(t[0]) if t and t[0] is not None else math.nan)
        self.counts = Counter({tuple(k): v for k, v in state["counts"]})


def _plain(t: float) -> float | None:
    return None if math.isnan(t) else t


def late_horizon(windows: Any) -> float:
    """The event time before which a prediction is late now in ``windows``
    (:class:`monitor.core.windows.EventWindows`); -inf for count windows (never late).

    >>> from monitor.core.windows import EventWindows
    >>> from slices.spec import WindowSpec
    >>> w = EventWindows(WindowSpec("time", 60.0, 0.0))
    >>> _ = w.assign(np.array([125.0]))
    >>> late_horizon(w)
    120.0
    """
    spec = windows.spec
    if spec.kind != "time" or not math.isfinite(windows.watermark):
        return max(-math.inf, windows.closed_before) if spec.kind == "time" else -math.inf
    return max(math.floor(windows.watermark / spec.size) * spec.size, windows.closed_before)
