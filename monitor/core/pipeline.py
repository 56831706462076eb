"""One model's path through the core: prepare → assign slices → window → accumulate.

:class:`ModelPipeline` owns the open windows of one model; :meth:`~ModelPipeline.process`
takes that model's records and returns what became of them (:class:`Folded`: each record's
window, the late ones, the windows that closed). The stages it was built with (the drift
stage) are called in order at fixed points of every fold (:mod:`monitor.core.stage`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.core.metrics.base import Accumulator
from monitor.core.metrics.registry import accumulators_for, optional_expected
from monitor.core.prepare import Preparer
from monitor.core.stage import GroupRows, Stage
from monitor.core.types import ClosedWindow, RecordBatch
from monitor.core.windows import (
    EventWindows,
    Group,
    GroupKey,
    PartitionView,
    Window,
    conform_window,
    group_rows,
    string_codes,
    update_groups,
)
from slices.assign import SliceAssigner
from slices.codes import factorize
from slices.spec import ModelSpec


@dataclass(frozen=True)
class Folded:
    """What :meth:`ModelPipeline.process` did with a batch: the window of each record
    (``starts``: its key), which records were late (not folded), the windows that closed."""

    starts: np.ndarray
    late: np.ndarray
    closed: list[ClosedWindow]


class ModelPipeline:
    def __init__(self, model: ModelSpec, *, preparer: Preparer | None = None,
                 stages: Sequence[Stage] = (), view: PartitionView | None = None):
        """``preparer``: the model's (a stage may share its class list); ``stages``: called
        in order on every fold (:mod:`monitor.core.stage`); ``view``: the source's
        partitions."""
        self.model = model
        self.preparer = preparer if preparer is not None else Preparer(model)
        self.stages = tuple(stages)
        self.assigner = SliceAssigner(model)
        self.windows = EventWindows(model.window, view)
        self.open: dict[float, Window] = {}
        # the optional (bootstrap) accumulators the groups hold; state restored from another
        # version is conformed to it (docs/scaling.md "Upgrades"), counted in ``upgrade``
        self.optional = optional_expected(model)
        self.upgrade: Counter = Counter()

    def accumulators(self, slice_name: str) -> list[Accumulator]:
        """A new group's accumulators: the model's metrics, then each stage's."""
        return accumulators_for(self.model) + [a for stage in self.stages
                                               for a in stage.accumulators(slice_name)]

    def process(self, batch: RecordBatch, partition: str | None = "") -> Folded:
        """Fold ``batch`` (records of this model only, from source ``partition``) into the
        open windows."""
        starts, late = self.windows.assign(batch.time, partition)
        on_time = np.flatnonzero(~late)
        if on_time.size:
            part = batch if on_time.size == len(batch) else batch.take(on_time)
            self._accumulate(part, starts[on_time])
        return Folded(starts, late, self.close_due())

    def close_due(self) -> list[ClosedWindow]:
        """Close the windows the watermark has passed (plus the label delay, if any)."""
        return self._close(self.windows.closable(list(self.open), self.model.label_delay))

    def process_labels(self, batch: RecordBatch, starts: np.ndarray) -> np.ndarray:
        """Fold late-arriving labels into the windows of their predictions.

        ``batch`` holds the predictions (as first seen) with their labels filled in, and
        ``starts`` their windows. Only label-side accumulators are updated (the prediction
        was counted when it arrived). Returns the mask of records applied; the others
        belong to windows already closed.
        """
        applied = np.array([float(s) in self.open for s in starts], dtype=bool)
        rows = np.flatnonzero(applied)
        if rows.size:
            part = batch if rows.size == len(batch) else batch.take(rows)
            self._accumulate(part, starts[rows], labels_only=True)
        return applied

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of a replay, shutdown)."""
        return self._close(sorted(self.open))

    def _accumulate(self, batch: RecordBatch, starts: np.ndarray, *,
                    labels_only: bool = False) -> None:
        cols = self.preparer.columns(batch)
        if not labels_only:
            for stage in self.stages:
                stage.before(cols)
        w_codes, w_uniques = factorize(starts)  # numbers: no pandas
        v_codes, v_uniques = string_codes(batch.version)
        n_w, n_v = len(w_uniques), max(len(v_uniques), 1)
        windows = [self.open.setdefault(float(s), Window(float(s))) for s in w_uniques]
        if not labels_only:
            first = np.full(n_w, np.inf)
            last = np.full(n_w, -np.inf)
            np.minimum.at(first, w_codes, batch.time)
            np.maximum.at(last, w_codes, batch.time)
            counts = np.bincount(w_codes, minlength=n_w)
            for w, window in enumerate(windows):
                window.first_time = min(window.first_time, float(first[w]))
                window.last_time = max(window.last_time, float(last[w]))
                window.records += int(counts[w])
        parts: list[tuple[GroupKey, Group, np.ndarray, float]] = []
        for sc in self.assigner.assign(batch):
            rows = np.flatnonzero(sc.codes >= 0)
            if not rows.size:
                continue
            n_l = max(len(sc.labels), 1)
            key = (w_codes[rows] * n_v + v_codes[rows]) * n_l + sc.codes[rows]
            for k, part in group_rows(key.astype(np.int64)):
                label, rest = k % n_l, k // n_l
                window = windows[rest // n_v]
                gkey = (str(v_uniques[rest % n_v]), sc.spec.name, sc.labels[label])
                group = window.groups.get(gkey)
                if group is None:
                    group = window.groups[gkey] = Group(self.accumulators(sc.spec.name))
                parts.append((gkey, group, rows[part], window.start))
        update_groups(cols, [(group, rows) for _, group, rows, _ in parts],
                      labels_only=labels_only)
        if self.stages:
            done = [GroupRows(key, gkey[0], gkey[2], rows) for gkey, _, rows, key in parts]
            for stage in self.stages:
                stage.after(done, cols, batch.time)

    def _close(self, keys: list[float]) -> list[ClosedWindow]:
        out = []
        if keys:
            self.assigner.refresh()  # re-rank kept slice values between windows
        for key in keys:
            window = self.open.pop(key)
            self.windows.mark_closed(key)
            if self.model.window.kind == "time":
                start, end = key, key + self.model.window.size
            else:
                start, end = window.first_time, window.last_time
            out.append(ClosedWindow(self.model.name, key, start, end, window.groups))
        return out

    # ---- checkpoints ---------------------------------------------------------------------
    def to_state(self) -> dict:
        """Everything needed to resume exactly: watermark, slice vocabularies, class codes and
        every open window (plain JSON-able data; each part writes its own)."""
        return {"windows": self.windows.to_state(), "assigner": self.assigner.to_state(),
                "preparer": self.preparer.to_state(),
                "open": [w.to_state() for w in self.open.values()]}

    def load_state(self, state: dict) -> None:
        """Resume from :meth:`to_state`; the stages get each restored group's accumulators."""
        self.windows.load_state(state["windows"])
        self.assigner = SliceAssigner.from_state(self.model, state["assigner"])
        self.preparer.load_state(state["preparer"])
        self.open = {}
        for w in state["open"]:
            window = Window.from_state(w)
            self.upgrade.update(conform_window(window, self.optional))
            self.open[window.start] = window
            for group in window.groups.values():
                for stage in self.stages:
                    stage.restored(group.accumulators)
