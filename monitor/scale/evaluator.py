"""The evaluator's core: partials merged into open windows, watermarks over every source
partition, windows closed and evaluated by the daemon's own code.

It holds a :class:`~monitor.runtime.daemon.Daemon` that never decodes a record: its
pipelines' open windows are the merged partials; each pipeline's per-partition event times
are the partitions' published progress; its partition view's ``live`` is every source
partition (the evaluator must know them all: one not heard from holds the watermark, as in
the single process) and ``idle`` those published as caught up. Closing, metrics, drift,
the tracker (/metrics) and the result listeners are the daemon's, unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from monitor.core.types import SliceResult
from monitor.core.windows import Window, conform_window
from monitor.runtime.daemon import Daemon, ResultListener
from monitor.scale.partials import (
    Partial,
    PartialError,
    commit_merge,
    merge_window,
    prepare_merge,
)
from monitor.scale.worker import check_scalable
from slices.spec import Spec


class Evaluator:
    """Merges partials; closes windows when the minimum watermark over all source partitions
    passes their end (+ lateness, + label delay)."""

    def __init__(self, spec: Spec, *, listeners: Iterable[ResultListener] = (),
                 sources: Iterable[str] | None = None, close_in_worker: bool = False):
        check_scalable(spec)
        self.daemon = Daemon(spec, listeners=listeners, close_in_worker=close_in_worker)
        self.idle: set[str] = set()
        self.stale: Counter = Counter()  # model → window deltas for windows already closed
        self.merged = 0  # window deltas merged
        # partials of another version (docs/scaling.md "Upgrades"): bootstrap accumulators
        # dropped / mismatched (conform_window) and groups merged without one (merge_window)
        self.upgrade: Counter = Counter()
        self.rejected: Counter = Counter()  # reason → partials rejected (EvaluatorLoop)
        if sources is not None:
            self.set_sources(sources)

    def set_sources(self, sources: Iterable[str]) -> None:
        """Every source partition (all must report before their windows close)."""
        self.daemon.partitions.live = set(sources)
        self.daemon.partitions.idle = self.idle & self.daemon.partitions.live

    def add(self, partial: Partial) -> None:
        """Merge one partial (its window deltas, then its progress and counters) — all or
        nothing: a partial that raises :class:`PartialError` (any window that does not read
        or merge, malformed counters) changes nothing."""
        try:
            plan = self._prepare(partial)
        except PartialError:
            raise
        except Exception as exc:  # whatever else a hostile partial triggers: nothing changed
            raise PartialError(f"partial of {partial.source}: {type(exc).__name__}: "
                               f"{str(exc)[:200]}", "state") from None
        self._commit(partial, plan)

    def _prepare(self, partial: Partial) -> tuple:
        """Everything that can fail, on the partial's own fresh objects (the open windows,
        watermarks and counters untouched)."""
        d = self.daemon
        upgrade: Counter = Counter()
        stale: Counter = Counter()
        staged: dict[tuple[str, float], tuple[Any, Window]] = {}
        for delta in partial.windows:
            pipeline = d.pipelines.get(delta.model)
            if pipeline is None:
                raise PartialError(f"partial of {partial.source} for model {delta.model!r}, "
                                   "not in the spec", "model")
            try:
                window = Window.from_state(delta.window)
                upgrade.update(conform_window(window, pipeline.optional))
                for group in window.groups.values():
                    for stage in pipeline.stages:
                        stage.restored(group.accumulators)
            except Exception as exc:
                raise PartialError(f"partial of {partial.source}: a window of model "
                                   f"{delta.model!r} does not read: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}", "state") from None
            if window.start < pipeline.windows.closed_before:
                stale[delta.model] += 1  # cannot happen with per-partition watermarks
                continue
            key = (delta.model, window.start)
            if key in staged:  # two deltas of one window: merged together first (fresh)
                merge_window(staged[key][1], window, upgrade)
            else:
                staged[key] = (pipeline, window)
        merges = []
        for (_, start), (pipeline, window) in staged.items():
            into = pipeline.open.get(start)
            merges.append((pipeline, window, into,
                           None if into is None else prepare_merge(into, window)))
        return merges, upgrade, stale, _checked_counts(partial)

    def _commit(self, partial: Partial, plan: tuple) -> None:
        """Apply a prepared partial (assignments and additions only)."""
        merges, upgrade, stale, counts = plan
        d = self.daemon
        for pipeline, window, into, merge in merges:
            if into is None:
                pipeline.open[window.start] = window
            else:
                commit_merge(into, window, merge, upgrade)
            self.merged += 1
        self.upgrade.update(upgrade)
        self.stale.update(stale)
        progress = partial.progress
        for model, t in progress.times.items():
            pipeline = d.pipelines.get(model)
            if pipeline is None:
                continue
            w = pipeline.windows
            w.partitions[partial.source] = max(w.partitions.get(partial.source, t), t)
            w.max_time = max(w.max_time, t)
        if progress.busy:
            d.partitions.busy.add(partial.source)
        if progress.idle:
            self.idle.add(partial.source)
        else:
            self.idle.discard(partial.source)
        self._count(counts)

    def _count(self, counts: dict[str, Any]) -> None:
        t = self.daemon.tracker
        for name in ("records", "late", "bad", "outcomes"):
            for key, n in counts.get(name, {}).items():
                getattr(t, name)[key] += n
        for key, n in counts.get("labels", {}).items():
            self.daemon.join.counts[key] += n

    def advance(self) -> list[SliceResult]:
        """Close (and evaluate, and hand on) the windows the watermarks passed."""
        d = self.daemon
        live = d.partitions.live
        d.partitions.idle = set(self.idle) if live is None else self.idle & live
        d.advance_watermarks()
        d.tracker.labels = dict(d.join.counts)
        out = d.finish_closes(wait=False)
        d.publish()
        return out

    def flush(self) -> list[SliceResult]:
        """Close every open window (end of a bounded replay)."""
        return self.daemon.flush()

    def state(self) -> dict[str, Any]:
        """The evaluator's resumable state (merged open windows, watermarks, counters)."""
        return {"daemon": self.daemon.state(), "idle": sorted(self.idle),
                "stale": [[k, n] for k, n in self.stale.items()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.daemon.load_state(state["daemon"])
        self.idle = set(state["idle"])
        self.stale = Counter({k: n for k, n in state["stale"]})


COUNTED = ("records", "late", "bad", "outcomes", "labels")


def _checked_counts(partial: Partial) -> dict[str, dict[Any, int]]:
    """The partial's counters, checked: per name a mapping of hashable keys to integers
    (else :class:`PartialError`, reason ``counts``); progress times finite or not, floats."""
    counts = partial.counts
    out: dict[str, dict[Any, int]] = {}
    try:
        for name in COUNTED:
            got = counts.get(name, {})
            if not isinstance(got, dict):
                raise TypeError(f"{name} is a {type(got).__name__}, not a mapping")
            for key, n in got.items():
                hash(key)
                if isinstance(n, bool) or not isinstance(n, int | np.integer):
                    raise TypeError(f"{name}[{key!r}] is {type(n).__name__}, not an int")
            out[name] = {k: int(n) for k, n in got.items()}
        for model, t in partial.progress.times.items():
            if not isinstance(model, str) or not isinstance(t, float):
                raise TypeError(f"progress time {model!r}: {t!r}")
    except (TypeError, ValueError, AttributeError) as exc:
        raise PartialError(f"partial of {partial.source}: counters: {str(exc)[:200]}",
                           "counts") from None
    return out
