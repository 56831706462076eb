"""One model's path through the core: prepare → assign slices → window → accumulate.

:class:`ModelPipeline` owns the open windows of one model; :meth:`process` takes that
model's records and returns the late ones (a mask) and the windows that closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from monitor.metrics.base import Accumulator
from monitor.prepare import Preparer
from monitor.records import RecordBatch
from monitor.windows import EventWindows, Group, GroupKey, Window, factorize, group_rows
from slices.assign import SliceAssigner
from slices.spec import ModelSpec


@dataclass(frozen=True)
class ClosedWindow:
    """A window that will receive no more records: its groups are final."""

    model: str
    key: float  # window start (time windows) or window index (count windows)
    start: float  # event-time start
    end: float  # event-time end
    groups: dict[GroupKey, Group]


class ModelPipeline:
    def __init__(self, model: ModelSpec, factory: Callable[[str], list[Accumulator]]):
        self.model = model
        self.factory = factory
        self.preparer = Preparer(model)
        self.assigner = SliceAssigner(model)
        self.windows = EventWindows(model.window)
        self.open: dict[float, Window] = {}

    def process(self, batch: RecordBatch) -> tuple[np.ndarray, list[ClosedWindow]]:
        """Fold ``batch`` (records of this model only) into the open windows."""
        starts, late = self.windows.assign(batch.time)
        on_time = np.flatnonzero(~late)
        if on_time.size:
            part = batch if on_time.size == len(batch) else batch.take(on_time)
            self._accumulate(part, starts[on_time])
        return late, self._close(self.windows.closable(list(self.open)))

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of a replay, shutdown)."""
        return self._close(sorted(self.open))

    def _accumulate(self, batch: RecordBatch, starts: np.ndarray) -> None:
        cols = self.preparer.columns(batch)
        w_uniques, w_codes = np.unique(starts, return_inverse=True)
        v_codes, v_uniques = factorize(batch.version)
        n_w, n_v = len(w_uniques), max(len(v_uniques), 1)
        windows = [self.open.setdefault(float(s), Window(float(s))) for s in w_uniques]
        first = np.full(n_w, np.inf)
        last = np.full(n_w, -np.inf)
        np.minimum.at(first, w_codes, batch.time)
        np.maximum.at(last, w_codes, batch.time)
        for w, window in enumerate(windows):
            window.first_time = min(window.first_time, float(first[w]))
            window.last_time = max(window.last_time, float(last[w]))
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
                    group = window.groups[gkey] = Group(self.factory(sc.spec.name))
                group.update(cols.take(rows[part]))

    def _close(self, keys: list[float]) -> list[ClosedWindow]:
        out = []
        for key in keys:
            window = self.open.pop(key)
            self.windows.mark_closed(key)
            if self.model.window.kind == "time":
                start, end = key, key + self.model.window.size
            else:
                start, end = window.first_time, window.last_time
            out.append(ClosedWindow(self.model.name, key, start, end, window.groups))
        return out
