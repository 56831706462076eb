"""What the exporter reads: an immutable snapshot, published by the daemon loop.

The loop owns a :class:`Tracker` (mutable, single-threaded); after each batch or window close
it publishes ``tracker.snapshot()``; the ``/metrics`` thread only reads the latest snapshot, so
no lock is held across the hot path.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType

from monitor.core.types import SliceResult

SeriesKey = tuple[str, str, str]  # (model, version, slice)


def _empty() -> MappingProxyType:
    return MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    records: MappingProxyType  # model → accepted records
    bad_records: MappingProxyType  # reason → count
    late_records: MappingProxyType  # model → count
    windows_closed: MappingProxyType  # model → count
    watermark: MappingProxyType  # model → epoch seconds
    last_window_end: MappingProxyType  # model → epoch seconds
    outcomes: MappingProxyType  # (model, version, outcome) → count
    series: MappingProxyType  # SeriesKey → SliceResult (latest closed window)
    suppressed: MappingProxyType  # model → slices below min_size, cumulative
    labels: MappingProxyType  # (model, outcome) → delayed labels by join outcome
    concept: MappingProxyType  # (model, version, slice, detector) → concept-drift events
    features_join: MappingProxyType  # joined / missing / orphaned feature-log records
    # model → the discovered slices of its last closed window (DiscoveredSlice, both scopes)
    discovered: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # model → wall clock minus the event-time end of its last closed window
    close_delay: MappingProxyType = field(default_factory=_empty)
    # model → records whose version was folded; listener name → windows it failed on
    versions_folded: MappingProxyType = field(default_factory=_empty)
    listener_errors: MappingProxyType = field(default_factory=_empty)
    # side (reader, daemon) → times it waited for the other (monitor.ingest.ahead)
    decode_waits: MappingProxyType = field(default_factory=_empty)
    started: float = 0.0
    heartbeat: float = 0.0


class Tracker:
    """Counters and the latest result per series. Every series with a version or slice label
    — slice results, predictions by version, concept-drift events — is dropped once its
    model has closed ``stale_after_windows`` windows without it."""

    def __init__(self, stale_after_windows: int = 3):
        self.stale_after = max(1, stale_after_windows)
        self.records: Counter = Counter()
        self.bad: Counter = Counter()
        self.late: Counter = Counter()
        self.closed: Counter = Counter()
        self.suppressed: Counter = Counter()
        self.outcomes: Counter = Counter()
        self.watermark: dict[str, float] = {}
        self.last_end: dict[str, float] = {}
        self.series: dict[SeriesKey, SliceResult] = {}
        self._seen_at: dict[SeriesKey, int] = {}  # reported series → last window (seq)
        self._active_at: dict[SeriesKey, int] = {}  # every result, reported or not
        self._version_at: dict[tuple[str, str], int] = {}  # (model, version) → last window
        self.close_delay: dict[str, float] = {}  # model → seconds
        self.versions_folded: dict[str, int] = {}  # model → records
        self.listener_errors: dict[str, int] = {}  # listener name → windows
        self.decode_waits: dict[str, int] = {}  # side → waits (monitor.ingest.ahead)
        self.labels: dict[tuple[str, str], int] = {}  # (model, join outcome) → count
        self.concept: dict[tuple[str, str, str, str], int] = {}  # (model, version, slice, det.)
        self.features_join: dict[str, int] = {}  # feature-log join outcome → count
        self.discovered: dict[str, tuple] = {}  # model → discovered slices, last window
        self.started = time.time()
        self.heartbeat = self.started

    def window_closed(self, model: str, window_end: float, results: list[SliceResult]) -> None:
        """Record one closed window of ``model`` and expire series not seen recently."""
        self.closed[model] += 1
        seq = self.closed[model]
        self.last_end[model] = max(self.last_end.get(model, window_end), window_end)
        for r in results:
            key = (r.model, r.version, r.slice)
            self._active_at[key] = seq
            self._version_at[key[:2]] = seq
            if not r.reported:
                self.suppressed[model] += 1
                continue
            self.series[key] = r
            self._seen_at[key] = seq
        for key in [k for k in self.series if k[0] == model]:
            if seq - self._seen_at[key] >= self.stale_after:
                del self.series[key]
                del self._seen_at[key]
        self._expire_labelled(model, seq)

    def discovered_in(self, model: str, found: tuple) -> None:
        """The discovered slices of ``model``'s last closed window (replacing the last)."""
        self.discovered[model] = tuple(found)

    def _expire_labelled(self, model: str, seq: int) -> None:
        """Predictions by version and concept-drift events of ``model`` whose version (or
        version × slice) had no result in the last ``stale_after_windows`` windows."""
        for key in [k for k, at in self._active_at.items()
                    if k[0] == model and seq - at >= self.stale_after]:
            del self._active_at[key]
        versions = {k[:2] for k in self.outcomes if k[0] == model}
        for mv in versions:  # a version not judged yet (new, or restored) gets its grace
            if seq - self._version_at.setdefault(mv, seq) >= self.stale_after:
                del self._version_at[mv]
                for outcome in [k for k in self.outcomes if k[:2] == mv]:
                    del self.outcomes[outcome]
        # the drift stage hands over every count so far: only those of live series show
        self.concept = {k: v for k, v in self.concept.items()
                        if k[0] != model or k[:3] in self._active_at}

    def to_state(self) -> dict:
        """Counters (cumulative across restarts) — not the latest series, which the next
        closed windows rebuild."""
        pairs = lambda c: [[list(k) if isinstance(k, tuple) else k, v] for k, v in c.items()]  # noqa: E731
        return {"records": pairs(self.records), "bad": pairs(self.bad), "late": pairs(self.late),
                "closed": pairs(self.closed), "suppressed": pairs(self.suppressed),
                "outcomes": pairs(self.outcomes), "watermark": self.watermark,
                "last_end": self.last_end}

    def load_state(self, state: dict) -> None:
        def counter(items) -> Counter:
            return Counter({tuple(k) if isinstance(k, list) else k: v for k, v in items})

        self.records, self.bad = counter(state["records"]), counter(state["bad"])
        self.late, self.closed = counter(state["late"]), counter(state["closed"])
        self.suppressed, self.outcomes = counter(state["suppressed"]), counter(state["outcomes"])
        self.watermark = dict(state["watermark"])
        self.last_end = dict(state["last_end"])

    def snapshot(self) -> Snapshot:
        self.heartbeat = time.time()
        p = MappingProxyType
        return Snapshot(
            records=p(dict(self.records)), bad_records=p(dict(self.bad)),
            late_records=p(dict(self.late)), windows_closed=p(dict(self.closed)),
            watermark=p(dict(self.watermark)), last_window_end=p(dict(self.last_end)),
            outcomes=p(dict(self.outcomes)), series=p(dict(self.series)),
            suppressed=p(dict(self.suppressed)), labels=p(dict(self.labels)),
            concept=p(dict(self.concept)), features_join=p(dict(self.features_join)),
            discovered=p(dict(self.discovered)),
            close_delay=p(dict(self.close_delay)),
            versions_folded=p(dict(self.versions_folded)),
            listener_errors=p(dict(self.listener_errors)),
            decode_waits=p(dict(self.decode_waits)),
            started=self.started, heartbeat=self.heartbeat)


EMPTY = Tracker().snapshot()
