"""Discovery of one model: counts per window (on the ``overall`` group), discovered slices
at each close, over the window and over the rolling horizon of its last N windows.

The counts are an accumulator of the overall group (:class:`ConjunctionCounts`), so they
are windowed, checkpointed and merged with the window state like every metric. The stage
holds what outlives a window: the shared coder, the horizon's last N windows of counts and
the slices discovered lately (:class:`RecentlyDiscovered`, read by alerting); all of it is
checkpointed.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.core.metrics.base import ModelColumns
from monitor.core.stage import GroupRows
from monitor.core.types import ClosedWindow
from monitor.discovery.coder import FeatureCoder
from monitor.discovery.counts import ConjunctionCounts
from monitor.discovery.recent import RecentlyDiscovered
from monitor.discovery.search import Candidate, Settings, discover
from monitor.discovery.types import DiscoveredSlice, Scope
from slices.spec import ModelSpec


class DiscoveryStage:
    def __init__(self, model: ModelSpec):
        spec = model.discovery
        self.model = model
        self.spec = spec
        self.coder = FeatureCoder(spec.features, spec.buckets, spec.max_values)
        self.settings = Settings(spec.top_k, spec.min_support, spec.fdr, spec.alpha)
        self.overall = next((s.name for s in model.slices if s.kind == "overall"), None)
        # the last `horizon` closed windows: (start, end, {version: counts})
        self.recent: deque[tuple[float, float, dict[str, ConjunctionCounts]]] = deque(
            maxlen=max(spec.horizon, 1))
        self.lately = RecentlyDiscovered()

    def accumulators(self, slice_name: str) -> list[Any]:
        """The counts for a new group of slice ``slice_name`` (the overall slice only)."""
        if slice_name != self.overall:
            return []
        return [ConjunctionCounts(self.coder, self.spec.error, self.spec.max_level)]

    def before(self, cols: ModelColumns) -> None:
        """Nothing before a fold (the :mod:`monitor.core.stage` protocol)."""

    def after(self, groups: Sequence[GroupRows], cols: ModelColumns, times: np.ndarray) -> None:
        """Nothing after a fold: the counts are accumulators."""

    def restored(self, accumulators: list[Any]) -> None:
        """Accumulators rebuilt from a checkpoint (:meth:`attach`)."""
        self.attach(accumulators)

    def attach(self, accumulators: list[Any]) -> None:
        """Restored counts (their own coder) → the live coder, in place."""
        for k, acc in enumerate(accumulators):
            if isinstance(acc, ConjunctionCounts):
                accumulators[k] = acc.attach(self.coder)

    def close(self, window: ClosedWindow) -> ClosedWindow:
        """``window`` with its discovered slices per version, then the horizon's (when
        ``horizon >= 2``), and the slices discovered lately but not in it (``discovered_
        absent``); the window joins the horizon."""
        counts: dict[str, ConjunctionCounts] = {}
        for (version, slice_name, _), group in window.groups.items():
            if slice_name == self.overall:
                acc = next((a for a in group.accumulators if isinstance(a, ConjunctionCounts)),
                           None)
                if acc is not None:
                    counts[version] = acc
        out: list[DiscoveredSlice] = []
        absent: list[tuple[str, str]] = []
        for version in sorted(counts):
            found = self._found(version, "window", window.start, window.end,
                                discover(counts[version], self.settings))
            absent += [(version, name)
                       for name in self.lately.step(version, [d.slice for d in found])]
            out += found
        self.recent.append((window.start, window.end, counts))
        if self.spec.horizon >= 2:
            out += self._horizon()
        return dataclasses.replace(window, discovered=tuple(out),
                                   discovered_absent=tuple(absent))

    def _horizon(self) -> list[DiscoveredSlice]:
        merged: dict[str, ConjunctionCounts] = {}
        for _, _, counts in self.recent:
            for version, acc in counts.items():
                if version not in merged:
                    merged[version] = ConjunctionCounts(self.coder, self.spec.error,
                                                        self.spec.max_level)
                merged[version].merge(acc)
        start, end = self.recent[0][0], self.recent[-1][1]
        out: list[DiscoveredSlice] = []
        for version in sorted(merged):
            out += self._found(version, "horizon", start, end,
                               discover(merged[version], self.settings))
        return out

    def _found(self, version: str, scope: Scope, start: float, end: float,
               found: list[Candidate]) -> list[DiscoveredSlice]:
        return [DiscoveredSlice(self.model.name, version, scope, rank, c.slice, c.where,
                                c.level, c.records, c.error, c.rest_error, c.score, c.p_value,
                                c.p_adjusted, c.candidates, start, end)
                for rank, c in enumerate(found, start=1)]

    def to_state(self) -> dict[str, Any]:
        return {"coder": self.coder.to_state(), "lately": self.lately.to_state(),
                "recent": [[start, end, {v: acc.to_state() for v, acc in counts.items()}]
                           for start, end, counts in self.recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.coder.load_state(state["coder"])
        self.lately.load_state(state.get("lately", {}))  # absent from older checkpoints
        self.recent.clear()
        for start, end, counts in state["recent"]:
            self.recent.append((float(start), float(end), {
                str(v): ConjunctionCounts.from_state(s).attach(self.coder)
                for v, s in counts.items()}))
