"""Delayed labels joined to their predictions by prediction id, with bounded state.

Two waiting rooms, both bounded:

- **pending predictions**: predictions logged without a label wait while their window is open
  (a model with ``label_delay`` keeps windows open that much longer). When the label comes,
  the prediction — as first seen, same slices and version — is folded into its window's
  label-side accumulators. When the window closes, its still-unlabelled predictions expire
  (counted as ``expired``).
- **early labels**: labels that arrive before their prediction wait (at most ``max_early``;
  the oldest are evicted and counted as ``orphaned``) and are attached when the prediction
  arrives.

>>> join = LabelJoin()
>>> join.add_labels(np.array(["a"], object), np.array([1], object), np.array([5.0]))
{}
>>> len(join.early)
1
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.records import RecordBatch, batch_from_state, batch_to_state, concat


@dataclass
class _Segment:
    """Unlabelled predictions of one model from one batch (rows die as they match/expire)."""

    batch: RecordBatch
    starts: np.ndarray
    alive: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.alive is None:
            self.alive = np.ones(len(self.batch), dtype=bool)


class LabelJoin:
    def __init__(self, *, max_pending: int = 2_000_000, max_early: int = 1_000_000):
        self.max_pending = max_pending
        self.max_early = max_early
        self.segments: dict[str, list[int]] = {}  # model → segment ids
        self.index: dict[str, tuple[str, int, int]] = {}  # id → (model, segment id, row)
        self._seg_ids: dict[int, _Segment] = {}
        self._next_seg = 0
        self.early: OrderedDict[str, Any] = OrderedDict()
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
        self.counts[(str(batch.model[0]), "joined")] += len(hits)
        return dataclasses.replace(batch, label=label)

    def remember(self, model: str, batch: RecordBatch, starts: np.ndarray,
                 keep: np.ndarray) -> None:
        """Keep the unlabelled predictions among ``keep`` (on-time rows) until their label."""
        want = keep & pd.isna(batch.label) & (batch.id != "")
        rows = np.flatnonzero(want)
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
        for pid, lab in zip(ids, labels, strict=True):
            hit = self.index.pop(pid, None)
            if hit is None:
                self.early[pid] = lab
                self.early.move_to_end(pid)
                continue
            model, sid, row = hit
            found.setdefault((model, sid), []).append((row, lab))
        while len(self.early) > self.max_early:
            self.early.popitem(last=False)
            self.counts[("", "orphaned")] += 1
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
        return {"segments": segs, "early": list(self.early.items()),
                "counts": [[list(k), v] for k, v in self.counts.items()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.__init__(max_pending=self.max_pending, max_early=self.max_early)
        for seg in state["segments"]:
            batch = batch_from_state(seg["batch"])
            self.remember(seg["model"], batch, np.asarray(seg["starts"], np.float64),
                          np.ones(len(batch), bool))
        self.early = OrderedDict((k, v) for k, v in state["early"])
        self.counts = Counter({tuple(k): v for k, v in state["counts"]})
