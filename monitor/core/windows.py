"""Event-time tumbling windows (or count windows) per model, with a watermark.

A window ``[start, start + size)`` closes when the watermark reaches its end. With one input
partition (a file, stdin) the watermark is the largest event time seen minus
``allowed_lateness``. With several (Kafka partitions) it is the **minimum over partitions** of
the largest event time seen in each, minus ``allowed_lateness`` (Flink / Kafka Streams
semantics): a partition that is ahead never drags the records of one that is behind into
*late*. Which partitions hold the watermark back is decided by a :class:`PartitionView`
(shared by the models of one daemon): a partition that is caught up (*idle*: nothing left to
read in it) does not, nor does one that has delivered records of other models only; one not
heard from yet does. When every partition is idle the watermark follows the most advanced
one. The watermark never goes back. A record whose window has already closed is *late*: it is
counted and handed back to the caller (to go to the dead-letter output), never folded into a
closed window and never dropped silently.

Inside a window, state is kept per group ``(version, slice)``: a list of accumulators made by
a factory (metrics, drift summaries…). Updates are vectorised: records are sorted by group key
once per batch, and each group's slice of the columns is fed to its accumulators.

>>> import numpy as np
>>> from slices.spec import WindowSpec
>>> w = EventWindows(WindowSpec("time", 60.0, 0.0))
>>> starts, late = w.assign(np.array([0.0, 30.0, 61.0]))
>>> starts.tolist(), late.tolist(), w.watermark
([0.0, 0.0, 60.0], [False, False, False], 61.0)
>>> w.closable([0.0, 60.0])
[0.0]
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import Accumulator, ModelColumns
from monitor.core.metrics.registry import (
    accumulator_from_state,
    conform_accumulators,
    state_of,
)
from slices.codes import factorize
from slices.spec import WindowSpec

log = logging.getLogger(__name__)
_LOGGED: set[str] = set()  # upgrade events already logged (once per process each)

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)


@dataclass
class PartitionView:
    """What the source knows of its partitions, shared by every model's windows:
    ``live`` — the partitions this instance owns (None: every partition seen, e.g. a file);
    ``idle`` — owned partitions that are caught up (nothing left to read);
    ``busy`` — partitions that have delivered at least one record (of any model)."""

    live: set[str] | None = None
    idle: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)


class EventWindows:
    """Assigns records to windows and tracks the watermark; holds no metric state."""

    def __init__(self, spec: WindowSpec, view: PartitionView | None = None):
        self.spec = spec
        self.view = view if view is not None else PartitionView()
        self.watermark = -math.inf
        self.max_time = -math.inf
        self.partitions: dict[str, float] = {}  # partition → largest event time seen in it
        self.seen = 0  # records assigned so far (count windows)
        self.closed_before = -math.inf  # every window starting before this is closed

    def assign(self, times: np.ndarray, partition: str | None = "") -> tuple[np.ndarray,
                                                                              np.ndarray]:
        """Window start for each record (all from ``partition``), and which are late.

        Records are judged against the watermark as it was *before* this batch, so records
        of one batch are never late relative to each other. ``partition=None``: records that
        move no partition's event time (predictions released by the feature join).
        """
        n = times.shape[0]
        if self.spec.kind == "count":
            index = (self.seen + np.arange(n)) // int(self.spec.size)
            self.seen += n
            return index.astype(np.float64), np.zeros(n, dtype=bool)
        size = self.spec.size
        starts = np.floor(times / size) * size
        late = (starts + size <= self.watermark) | (starts < self.closed_before)
        if n and partition is not None:
            top = float(np.max(times))
            self.max_time = max(self.max_time, top)
            self.partitions[partition] = max(self.partitions.get(partition, -math.inf), top)
            self.advance()
        return starts, late

    def advance(self) -> float:
        """Recompute the watermark from the partitions' event times and the view (after the
        view changed); returns it. It never goes back."""
        view = self.view
        owned = view.live if view.live is not None else self.partitions.keys()
        holding = [p for p in owned if p not in view.idle
                   and (p in self.partitions or p not in view.busy)]
        # every partition caught up: the most advanced one leads
        low = min(self.partitions.get(p, -math.inf) for p in holding) if holding \
            else self.max_time
        self.watermark = max(self.watermark, low - self.spec.allowed_lateness)
        return self.watermark

    def closable(self, open_starts: Sequence[float], hold: float = 0.0) -> list[float]:
        """Which of the open windows may close now (sorted).

        ``hold`` keeps time windows open that much longer (the label delay), so late labels
        can still join; predictions arriving after ``end + allowed_lateness`` stay late.
        """
        if self.spec.kind == "count":
            current = self.seen // int(self.spec.size)
            return sorted(s for s in open_starts if s < current)
        return sorted(s for s in open_starts if s + self.spec.size + hold <= self.watermark)

    def mark_closed(self, start: float) -> None:
        if self.spec.kind == "time":
            # the next window's start exactly as assign() computes it, floor(t / size) * size:
            # start + size can differ from it by an ulp (size 300.006: every record of the next
            # window would be judged late)
            size = self.spec.size
            self.closed_before = max(self.closed_before, (round(start / size) + 1) * size)

    def to_state(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "max_time": self.max_time, "seen": self.seen,
                "closed_before": self.closed_before, "partitions": dict(self.partitions)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.watermark = float(state["watermark"])
        self.max_time = float(state["max_time"])
        self.seen = int(state["seen"])
        self.closed_before = float(state["closed_before"])
        self.partitions = {str(k): float(v) for k, v in state["partitions"].items()}


GroupKey = tuple[str, str, str]  # (version, slice spec name, slice label)


@dataclass
class Group:
    """State of one model × version × slice × window."""

    accumulators: list[Accumulator]
    count: int = 0

    def to_state(self) -> list[Any]:
        """``[count, [accumulator state, …]]`` (plain data; each state names its kind)."""
        return [self.count, [state_of(a) for a in self.accumulators]]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> Group:
        count, accumulators = state
        return cls([accumulator_from_state(a) for a in accumulators], count=int(count))


@dataclass
class Window:
    """An open window: its groups, and the event-time range of its records."""

    start: float
    groups: dict[GroupKey, Group] = field(default_factory=dict)
    first_time: float = math.inf
    last_time: float = -math.inf
    records: int = 0  # records folded in (labels joined later not counted again)

    def to_state(self) -> dict[str, Any]:
        return {"key": self.start, "first": self.first_time, "last": self.last_time,
                "records": self.records,
                "groups": [[list(k), *g.to_state()] for k, g in self.groups.items()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Window:
        window = cls(float(state["key"]), first_time=float(state["first"]),
                     last_time=float(state["last"]), records=int(state["records"]))
        for key, *group in state["groups"]:
            window.groups[tuple(key)] = Group.from_state(group)
        return window


def log_once(event: str, message: str) -> None:
    """Log ``message`` at warning level the first time ``event`` happens in this process."""
    if event not in _LOGGED:
        _LOGGED.add(event)
        log.warning("%s (logged once; counted in the upgrade counters)", message)


def conform_window(window: Window, expected: dict[str, dict[str, Any]]) -> Counter:
    """Drop from ``window``'s groups the optional (bootstrap) accumulators the spec does not
    ask for (``expected``: :func:`~monitor.core.metrics.registry.optional_expected`), e.g.
    state written before #15 stopped bootstrapping single-slice intervals. Returns the counts
    (``bootstrap_dropped``; ``bootstrap_mismatched``: asked for with other parameters;
    ``bootstrap_missing``: asked for and absent, those included — the group's paired
    comparisons are then not reported); logs each once."""
    out: Counter = Counter()
    for group in window.groups.values():
        kept, dropped, mismatched = conform_accumulators(group.accumulators, expected)
        if dropped or mismatched:
            group.accumulators = kept
            out["bootstrap_dropped"] += dropped
            out["bootstrap_mismatched"] += mismatched
        out["bootstrap_missing"] += len(expected.keys() - {a.kind for a in kept})
    if out["bootstrap_dropped"]:
        log_once("bootstrap_dropped", "window state of another version holds a bootstrap "
                 "accumulator the spec no longer asks for: dropped (no reported number reads it)")
    if out["bootstrap_mismatched"]:
        log_once("bootstrap_mismatched", "window state of another version holds a bootstrap "
                 "accumulator with other parameters than the spec's: dropped; the paired "
                 "comparisons of its groups are not reported for that window")
    if out["bootstrap_missing"]:
        log_once("bootstrap_missing", "window state of another version or spec lacks a "
                 "bootstrap accumulator the spec asks for: its groups' paired comparisons are "
                 "not reported for that window")
    return +out


def update_groups(cols: ModelColumns, parts: list[tuple[Group, np.ndarray]], *,
                  labels_only: bool = False) -> None:
    """Fold the records ``rows`` of one batch into each ``group`` (``labels_only``: labels
    that arrived after their predictions, label-side accumulators only). Label-side
    accumulators see the labelled records only. Accumulator kind by kind: a kind with
    ``update_many(cols, [(acc, rows), …])`` folds all its groups at once (the slices of a
    batch overlap, so per-batch work is shared); the others get ``cols.take(rows)``."""
    labelled: np.ndarray | None = None
    by_kind: dict[type, list[tuple[Accumulator, np.ndarray]]] = {}
    for group, rows in parts:
        if not labels_only:
            group.count += rows.shape[0]
        label_rows = None
        for acc in group.accumulators:
            if acc.needs_label:
                if label_rows is None:
                    if labelled is None:
                        labelled = cols.labelled()
                    label_rows = rows[labelled[rows]]
                if label_rows.shape[0]:
                    by_kind.setdefault(type(acc), []).append((acc, label_rows))
            elif not labels_only:
                by_kind.setdefault(type(acc), []).append((acc, rows))
    taken: dict[int, ModelColumns] = {}
    for kind, items in by_kind.items():
        many = getattr(kind, "update_many", None)
        if many is not None:
            many(cols, items)
            continue
        for acc, rows in items:
            part = taken.get(id(rows))
            if part is None:
                part = taken[id(rows)] = cols.take(rows)
            acc.update(part)


def group_rows(keys: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Split row positions by an int64 key: ``[(key, rows), ...]`` in key order, rows in
    original order (stable sort; one pass, no per-group mask)."""
    if keys.shape[0] == 0:
        return []
    if keys.min() >= 0 and keys.max() < 1 << 16:
        keys = keys.astype(np.uint16)  # numpy sorts 16-bit integers by radix, in O(n)
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    return [(int(keys[part[0]]), part)
            for part in np.split(order, cuts)]


def string_codes(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Values → (int64 codes, their distinct values as strings), by hashing
    (``pandas.factorize``); values that are not all strings are compared as strings."""
    if values.shape[0] == 0:
        return np.zeros(0, np.int64), []
    codes, uniques = factorize(values, use_na_sentinel=False)
    if not all(isinstance(u, str) for u in uniques):
        codes, uniques = pd.factorize(values.astype(object).astype(str), use_na_sentinel=False)
    return codes.astype(np.int64), [str(u) for u in uniques]
