"""One source partition's fold in a worker: a :class:`~monitor.runtime.daemon.Daemon` whose
windows are handed on as **partials** instead of being evaluated.

A worker runs one :class:`PartitionFold` per prediction partition it owns (labels and
features of the same partition index go to the same fold: the topics are co-partitioned by
prediction id). The fold decodes, slices and accumulates exactly as the single process does
(it *is* the daemon's code); its watermark is its own partition's. When that watermark
passes a window's end (plus lateness and label delay) the window is done here: its last
delta goes into the next partial, its unlabelled predictions expire. At a checkpoint
:meth:`PartitionFold.take_partial` returns the delta of every window since the previous
checkpoint and empties them; :meth:`PartitionFold.residual_state` is what must outlive the
checkpoint (pending predictions and early labels, slice vocabularies, the watermark), small
next to the windows, published to the worker's changelog in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from monitor.core.types import ClosedWindow
from monitor.core.windows import Window
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.feature_join import FeatureJoin
from monitor.runtime.daemon import Daemon
from monitor.runtime.exit_codes import UsageError
from monitor.scale.partials import Partial, Progress, WindowDelta
from monitor.scale.thin import Thinner
from slices.errors import SlicewatchError
from slices.spec import Spec


class ScaleError(SlicewatchError):
    """A spec or topic layout the scaled roles cannot run exactly."""


class NotScalable(ScaleError, UsageError):
    """A spec the scaled roles cannot run exactly: a usage error (exit 2, like the other spec
    errors), raised before anything starts."""


def check_scalable(spec: Spec) -> None:
    """Raise :class:`NotScalable` naming every part of ``spec`` whose state is not an exact
    merge of per-partition states (docs/scaling.md, "What scales")."""
    problems = []
    for m in spec.models:
        if m.window.kind != "time":
            problems.append(f"model {m.name}: count windows (a window's records depend on "
                            "the order across partitions); use a time window")
        if m.task == "multiclass":
            problems.append(f"model {m.name}: multiclass (class codes are learned per "
                            "process)")
        if m.drift.enabled and m.drift.concept_detector:
            problems.append(f"model {m.name}: drift.concept (a sequential detector over one "
                            "error stream)")
        if m.drift.enabled and not m.drift.profile:
            problems.append(f"model {m.name}: drift without a profile (a rolling reference "
                            "learns its bins from the first micro-batch of one process)")
        if m.discovery.enabled:
            problems.append(f"model {m.name}: discovery (its conjunction coder is per process)")
    if problems:
        raise NotScalable("--role worker/evaluator cannot run this spec exactly:\n  "
                         + "\n  ".join(problems))


_COUNTERS = ("records", "late", "bad", "outcomes")


class PartitionFold(Daemon):
    """The daemon for one source partition of a worker (see the module docstring)."""

    def __init__(self, spec: Spec, source: str, *, dead_letter: DeadLetter | None = None,
                 feature_join: FeatureJoin | None = None, thin: bool = True):
        """``thin``: leave out of the partials the reservoir values that cannot be among
        their window's sample (:mod:`monitor.scale.thin`; exact)."""
        check_scalable(spec)
        super().__init__(spec, dead_letter=dead_letter, feature_join=feature_join)
        self.source = source
        self.seq = 0
        self._done: list[ClosedWindow] = []
        self._base: dict[str, Counter] = self._counters()
        self.thinner = Thinner() if thin else None
        self._salt()

    def _salt(self) -> None:
        """New groups' reservoirs get seeds of this partition and checkpoint: deltas of one
        window draw independent reservoir keys, so their merge is a uniform sample."""
        for stage in self.drift.values():
            stage.salt = (self.source, self.seq)

    def _begin_close(self, window: ClosedWindow) -> None:
        """Done in this partition: unlabelled predictions expire; the delta waits for the
        next partial (evaluation is the evaluator's)."""
        self.join.expire(window.model, {window.key})
        self._done.append(window)

    def take_partial(self, *, idle: bool = False) -> Partial:
        """The deltas since the previous call, and this partition's progress; the windows
        are emptied (they stay open for later records and labels)."""
        deltas = [self._delta(w.model, Window(w.key, w.groups)) for w in self._done
                  if w.groups]
        if self.thinner is not None:
            for w in self._done:
                self.thinner.forget((w.model, w.key))
        self._done = []
        times = {}
        for name, pipeline in self.pipelines.items():
            for key, window in list(pipeline.open.items()):
                if window.groups or window.records:
                    deltas.append(self._delta(name, window))
                    pipeline.open[key] = Window(key)
            t = pipeline.windows.partitions.get(self.source)
            if t is not None:
                times[name] = t
        self.seq += 1
        self._salt()
        now = self._counters()
        counts = {k: {key: n - self._base[k].get(key, 0) for key, n in now[k].items()
                      if n != self._base[k].get(key, 0)} for k in now}
        self._base = now
        return Partial(self.source, self.seq, deltas,
                       Progress(times, self.source in self.partitions.busy, idle),
                       {k: v for k, v in counts.items() if v})

    def _delta(self, model: str, window: Window) -> WindowDelta:
        state = window.to_state()
        if self.thinner is not None:
            state = self.thinner.thin((model, window.start), state)
        return WindowDelta(model, state)

    def residual_state(self) -> dict[str, Any]:
        """What outlives a checkpoint (call right after :meth:`take_partial`): the daemon's
        state with its windows empty — pending predictions, early labels, vocabularies,
        watermark, counters."""
        return self.state()

    def state(self) -> dict:
        """The daemon's state, plus what this fold holds for its next partial (windows done
        here since it, the counters at it), so a state put back (a batch isolated message by
        message, :func:`monitor.runtime.kafka_run.fold_isolating`) loses nothing."""
        state = super().state()
        state["fold"] = {"seq": self.seq,
                         "done": [[w.model, Window(w.key, w.groups).to_state(), w.start, w.end]
                                  for w in self._done],
                         "base": {k: [[list(key) if isinstance(key, tuple) else key, n]
                                      for key, n in c.items()] for k, c in self._base.items()}}
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        fold = state.get("fold")
        if fold is None:
            self._done, self._base = [], self._counters()
            return
        self.seq = int(fold["seq"])
        self._salt()
        self._done = []
        for model, w, start, end in fold["done"]:
            window = Window.from_state(w)
            for group in window.groups.values():
                for stage in self.pipelines[model].stages:
                    stage.restored(group.accumulators)
            self._done.append(ClosedWindow(model, window.start, float(start), float(end),
                                           window.groups))
        self._base = {k: Counter({tuple(key) if isinstance(key, list) else key: n
                                  for key, n in pairs}) for k, pairs in fold["base"].items()}

    def _counters(self) -> dict[str, Counter]:
        t = self.tracker
        out = {name: Counter(getattr(t, name)) for name in _COUNTERS}
        out["labels"] = Counter(self.join.counts)
        return out
