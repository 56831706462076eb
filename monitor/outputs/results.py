"""Results history: every closed window's per-slice results as JSON lines, the alerts that
fired or resolved with them, the distributions of drifted features, and one summary per run.

Lines have a ``type`` (the full format, as a JSON Schema, is docs/results-format.md):

- ``result``: one slice of one window;
- ``discovered``: a slice found worse than the rest of its window or horizon
  (:class:`monitor.discovery.types.DiscoveredSlice`);
- ``alert``: a transition (see :meth:`alerts.model.AlertEvent.to_dict`);
- ``histogram``: the window's distribution of a feature whose drift decision is ``drift``
  (at most :data:`MAX_HISTOGRAMS` per window), for reports;
- ``run``: written when a run ends: records, rejects by reason, late records, windows.

Results are keyed by ``(model, version, slice, window_start)``; after a crash and replay a
window may be written again with identical values, so readers keep the last line per key
(:func:`read_results` does). Lines of unknown types are for newer readers: skip them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from alerts.model import AlertEvent
from monitor.core.labels import cut_label, is_long
from monitor.core.types import ClosedWindow, SliceResult
from monitor.outputs.discovered import discovered_record
from slices.errors import SlicewatchError

MAX_HISTOGRAMS = 200  # histogram lines per window (the drifted features of the most slices)
DRIFT_KINDS = ("drift_features", "drift_label")


class ResultsExistError(SlicewatchError):
    """The results file already holds lines and appending was not asked for."""


def result_record(r: SliceResult) -> dict:
    return {"type": "result", "model": r.model, "version": r.version, "slice_name": r.slice_name,
            "slice": r.slice, "critical": r.critical, "window_start": r.window_start,
            "window_end": r.window_end, "count": r.count, "reported": r.reported,
            "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in r.metrics.items()},
            **({"extra": extra} if (extra := extra_record(r)) else {}),
            **({"multivariate": dataclasses.asdict(r.multivariate)}
               if r.multivariate is not None else {}),
            **({"estimated": {"values": _nan_none(r.estimated.values),
                              "intervals": {k: list(v) for k, v in r.estimated.intervals.items()},
                              "error": dict(r.estimated.error)}}
               if r.estimated is not None else {}),
            **({"compared": [d.to_dict() for d in r.compared]} if r.compared else {})}


def _nan_none(values) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in values.items()}


def extra_record(r: SliceResult) -> dict[str, Any]:
    """The typed drift, quality, reference and concept fields of ``r`` as the history's
    ``extra`` object (its keys and their order are the format)."""
    out: dict[str, Any] = {}
    if r.drift:
        out["drift"] = [d.to_dict() for d in r.drift]
    if r.quality is not None:
        out["quality"] = {q.feature: q.to_dict() for q in r.quality}
    if r.reference_metrics is not None:
        out["reference_metrics"] = dict(r.reference_metrics)
    if r.concept is not None:
        out["concept_drift_events"] = r.concept.events
        out["concept_drift_event_times"] = list(r.concept.event_times)
    return out


def _drifted(r: SliceResult) -> list[str]:
    return [d.feature for d in r.drift if d.detected]


def summary_histogram(summary: Any) -> dict[str, Any] | None:
    """A drift summary's bins as plain data: numeric ``edges`` (counts has one more bucket
    at each end: below the first edge, above the last) or categorical ``categories`` (plus
    ``__other__``). None for anything else."""
    counts = getattr(summary, "counts", None)
    if counts is None:
        return None
    if getattr(summary, "kind", "") == "numeric":
        return {"kind": "numeric", "edges": [float(e) for e in summary.edges],
                "counts": [int(c) for c in counts]}
    vocabulary = getattr(summary, "vocabulary", None)
    if vocabulary is None:
        return None
    return {"kind": "categorical", "categories": [*map(str, vocabulary), "__other__"],
            "counts": [int(c) for c in counts]}


def histogram_records(window: ClosedWindow, results: list[SliceResult]) -> Iterator[dict]:
    """``type: histogram`` lines: the window's distribution of each drifted feature."""
    n = 0
    for r in results:
        features = _drifted(r)
        group = window.groups.get((r.version, r.slice_name, r.slice)) if features else None
        if group is None:
            continue
        summaries: dict[str, Any] = {}
        for acc in group.accumulators:
            if getattr(acc, "kind", "") in DRIFT_KINDS:
                summaries.update(acc.summaries.items())
        for feature in features:
            hist = summary_histogram(summaries.get(feature))
            if hist is None:
                continue
            if n >= MAX_HISTOGRAMS:
                return
            n += 1
            yield {"type": "histogram", "model": r.model, "version": r.version,
                   "slice": r.slice, "window_start": r.window_start,
                   "window_end": r.window_end, "feature": feature, **hist}


def open_results(path: str, *, append: bool = False):
    """Open ``path`` for the history: appended to with ``append``, else it must be absent
    or empty (:class:`ResultsExistError`: a second run never mixes into the first
    silently)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not append and os.path.exists(path) and os.path.getsize(path) > 0:
        raise ResultsExistError(f"results file {path} already holds results: pass "
                                "--results-append to add this run to it, or remove it")
    return open(path, "ab")


class ResultsWriter:
    """Listener appending each closed window's results to ``path`` (flushed per window)."""

    def __init__(self, path: str, *, append: bool = True):
        self.path = path
        self._fh = open_results(path, append=append)
        self._lock = threading.Lock()
        self.started = time.time()
        self.labels_cut = 0  # label values cut to MAX_LABEL_CHARS (_bounded)

    def __call__(self, window: ClosedWindow, results: list[SliceResult]) -> None:
        lines = [*map(result_record, results), *histogram_records(window, results),
                 *map(discovered_record, window.discovered)]
        self._write(lines)

    def write_alerts(self, events: list[AlertEvent]) -> None:
        """Sink of :class:`alerts.workers.Dispatcher`: one ``type: alert`` line per
        transition."""
        if events:
            self._write([e.to_dict() for e in events])

    def write_run(self, *, records: Mapping[str, int], rejected: Mapping[str, int],
                  late: Mapping[str, int], windows: Mapping[str, int],
                  seconds: float) -> None:
        """The ``type: run`` line: what the run read and rejected (counts by model or
        reason)."""
        self._write([{"type": "run", "started": self.started, "ended": time.time(),
                      "seconds": seconds, "records": dict(records), "rejected": dict(rejected),
                      "late": dict(late), "windows": dict(windows),
                      "labels_cut": self.labels_cut}])

    def _write(self, lines: list[dict]) -> None:
        bounded = [self._bounded(x) for x in lines]
        data = b"".join(orjson.dumps(x, default=str) + b"\n" for x, _ in bounded)
        with self._lock:
            self.labels_cut += sum(n for _, n in bounded)
            if not self._fh.closed:
                self._fh.write(data)
                self._fh.flush()

    @staticmethod
    def _bounded(line: dict) -> tuple[dict, int]:
        """``line`` with its label values (``slice``, ``version``, an alert's ``labels``) cut
        to :data:`~monitor.core.labels.MAX_LABEL_CHARS`, and how many were (``labels_cut``
        of the run line): a 1 MiB feature value is a slice label in every line of its window
        otherwise."""
        labels = line.get("labels")
        long = [k for k in ("slice", "version") if is_long(line.get(k))]
        long_labels = [k for k, v in labels.items() if is_long(v)] \
            if isinstance(labels, dict) else []
        if not long and not long_labels:
            return line, 0
        out = {**line, **{k: cut_label(line[k]) for k in long}}
        if long_labels:
            out["labels"] = {k: cut_label(v) if k in long_labels else v
                             for k, v in labels.items()}
        return out, len(long) + len(long_labels)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_results(path: str) -> dict[tuple, dict]:
    """Last result line per ``(model, version, slice, window_start)``."""
    out: dict[tuple, dict] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                r = orjson.loads(line)
                if r.get("type", "result") == "result":
                    out[(r["model"], r["version"], r["slice"], r["window_start"])] = r
    return out


def read_discovered(path: str) -> list[dict]:
    """The ``type: discovered`` lines, in order."""
    with open(path, "rb") as fh:
        return [r for r in map(orjson.loads, filter(bytes.strip, fh))
                if r.get("type") == "discovered"]


def read_alerts(path: str) -> list[dict]:
    """The ``type: alert`` lines, in order."""
    with open(path, "rb") as fh:
        return [r for r in map(orjson.loads, filter(bytes.strip, fh))
                if r.get("type") == "alert"]
