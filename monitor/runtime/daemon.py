"""The daemon loop: the only place that knows every stage.

source chunks → decode (rejects → dead letter) → per model: pipeline (late → dead letter) →
closed windows → evaluate → tracker → snapshot (→ /metrics) and ``on_results`` listeners.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import orjson

from monitor.core.evaluate import evaluate_window
from monitor.core.label_join import LabelJoin, late_horizon
from monitor.core.lazy import lazy_module
from monitor.core.pipeline import ModelPipeline
from monitor.core.prepare import Preparer
from monitor.core.types import ClosedWindow, RecordBatch, SliceResult
from monitor.core.versions import VersionFolder
from monitor.core.windows import PartitionView, string_codes
from monitor.discovery.stage import DiscoveryStage
from monitor.drift.stage import CloseJob, DriftStage, close_extras
from monitor.drift.summary import compact_state
from monitor.export.snapshot import EMPTY, Snapshot, Tracker
from monitor.ingest.ahead import DEPTH, DecodeAhead, Decoded
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Reject, _kept, parse_json_lines
from monitor.ingest.decode_models import decoder_for
from monitor.ingest.feature_join import FeatureJoin
from monitor.ingest.places import RowPlaces
from monitor.ingest.source import Chunk
from monitor.runtime.close_worker import InlineCloser, Pending, ProcessCloser
from slices.codes import factorize
from slices.spec import OUTCOMES, Spec

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

log = logging.getLogger("slicewatch.daemon")

ResultListener = Callable[[ClosedWindow, list[SliceResult]], None]
LATE_WARN_SHARE = 0.01  # warn (once per model) when more than this share of a window is late
LATE_WARN_MIN = 100  # …of a window of at least this many records
LATE_WINDOWS = 256  # windows whose record counts are kept for that check (oldest dropped)


@dataclass(frozen=True)
class RunSummary:
    records: int
    rejected: int
    late: int
    windows: int
    seconds: float


class Daemon:
    """Runs a spec over a stream of chunks; publishes snapshots for the exporter."""

    def __init__(self, spec: Spec, *, dead_letter: DeadLetter | None = None,
                 listeners: Iterable[ResultListener] = (), close_in_worker: bool = False,
                 feature_join: FeatureJoin | None = None, decode_ahead: int = DEPTH):
        """``close_in_worker``: run window-close drift tests in a worker process
        (:mod:`monitor.runtime.close_worker`) while ingestion goes on; results still come in window
        order, and :meth:`state` waits for them. ``feature_join``: the join of features
        logged apart (a source with a features stream; :func:`monitor.ingest.feature_join.
        feature_join_for`). ``decode_ahead``: chunks read and decoded ahead on a background
        thread by :meth:`ahead` (:mod:`monitor.ingest.ahead`; 0: none)."""
        self.spec = spec
        self.decode_ahead = decode_ahead
        self._decoding = threading.Lock()  # the decoder is used by one thread at a time
        self._lines: list | None = None  # the JSON lines being processed (late records' source)
        self._places: RowPlaces | None = None  # where the batch being processed came from
        self.dead_letter = dead_letter or DeadLetter(spec.source.dead_letter)
        self.listeners = list(listeners)
        # outputs (results to listeners, dead letters) of open transactions, innermost last:
        # see begin()
        self._held: list[list[Callable[[], None]]] = []
        self.decoder = decoder_for(spec)
        self.pipelines: dict[str, ModelPipeline] = {}
        self.drift: dict[str, DriftStage] = {}
        self.discovery = {m.name: DiscoveryStage(m) for m in spec.models
                          if m.discovery.enabled}
        self.partitions = PartitionView()  # the source's partitions, for the watermarks
        for m in spec.models:
            preparer = Preparer(m)
            if m.drift.enabled:
                self.drift[m.name] = DriftStage(m, preparer.classes)
            stages = [s[m.name] for s in (self.drift, self.discovery) if m.name in s]
            self.pipelines[m.name] = ModelPipeline(m, preparer=preparer, stages=stages,
                                                   view=self.partitions)
        self.tracker = Tracker(spec.server.stale_after_windows)
        for m in spec.models:  # counters exist from the start, so rate() and panels see 0
            for counter in (self.tracker.records, self.tracker.late, self.tracker.closed,
                            self.tracker.suppressed):
                counter[m.name] += 0
        self.join = LabelJoin(models=[m.name for m in spec.models])
        self.versions = {m.name: VersionFolder(m.max_versions) for m in spec.models}
        self.feature_join = feature_join
        self._snapshot: Snapshot = EMPTY
        # (model, window start) → [records on time, records late]: the late-share warning
        self._window_counts: OrderedDict[tuple[str, float], list[int]] = OrderedDict()
        self._late_warned: set[str] = set()
        self.alive = time.time()
        self.stop = threading.Event()
        self.closer = ProcessCloser() if close_in_worker and self.drift else InlineCloser()
        # closes in window order: (window, metrics, drift job, its pending tests); the last two
        # are None for a model without drift
        self._closing: deque[tuple[ClosedWindow, list[SliceResult], CloseJob | None,
                                   Pending | None]] = deque()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self) -> None:
        self._snapshot = self.tracker.snapshot()

    # ---- the loop ---------------------------------------------------------------------
    def run(self, chunks: Iterable[Chunk], *, flush_at_end: bool = True) -> RunSummary:
        t0 = time.perf_counter()
        with closing(self.ahead(chunks)) as ahead:
            for chunk in ahead:
                self.process(chunk)
                if self.stop.is_set():
                    break
        if flush_at_end:
            self.flush()
        self.dead_letter.flush()
        return self.summary(time.perf_counter() - t0)

    def ahead(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        """``chunks`` read and their predictions decoded ``decode_ahead`` chunks ahead on a
        background thread (:class:`monitor.ingest.ahead.DecodeAhead`), in order; as they are
        when ``decode_ahead`` is 0. Close it (``contextlib.closing``) when leaving early."""
        if not self.decode_ahead:
            return (chunk for chunk in chunks)
        return iter(DecodeAhead(chunks, self.decode, depth=self.decode_ahead,
                                waits=self.tracker.decode_waits))

    def decode(self, chunk: Chunk) -> Decoded | None:
        """``chunk``'s predictions decoded (any thread; nothing counted, nothing written), or
        None for a chunk only :meth:`process` can decode (labels, features, the feature join).
        An error decoding is kept in the result: :meth:`process` raises it."""
        if chunk.stream != "predictions" or (chunk.kind == "lines"
                                             and self.feature_join is not None):
            return None
        try:
            with self._decoding:
                if chunk.kind == "lines":
                    batch, rejects = self.decoder.decode_lines(chunk.payload)
                else:
                    batch, rejects = self.decoder.decode_frame(chunk.payload)
        except Exception as exc:
            return Decoded(chunk.payload, error=exc)
        return Decoded(chunk.payload, batch, rejects)

    def summary(self, seconds: float) -> RunSummary:
        t = self.tracker
        return RunSummary(sum(t.records.values()), sum(t.bad.values()), sum(t.late.values()),
                          sum(t.closed.values()), seconds)

    def process(self, chunk: Chunk) -> list[SliceResult]:
        """Decode and fold one chunk; returns the results of windows it closed."""
        self.alive = time.time()
        if chunk.stream == "labels":
            return self.process_labels(chunk)
        if chunk.stream == "features":
            return self.process_features(chunk)
        decoded = chunk.decoded
        if decoded is None or decoded.of is not chunk.payload:  # not decoded ahead
            decoded = self.decode(chunk)
        if decoded is None:
            batch, rejects, places = self._admit(chunk)
        elif decoded.error is not None:
            raise decoded.error
        else:
            batch, rejects = decoded.batch, decoded.rejects
            places = RowPlaces.of_chunk(chunk, rejects, len(batch))
        self._reject(rejects, chunk)
        self._lines = chunk.payload if chunk.kind == "lines" else None
        self._places = places
        try:
            results = self.process_batch(batch, chunk.partition)
        finally:
            self._lines = self._places = None
        self.publish()
        return results

    def process_batch(self, batch: RecordBatch, partition: str | None = ""
                      ) -> list[SliceResult]:
        """Fold decoded predictions from source ``partition`` (None: records that move no
        partition's event time, see :meth:`EventWindows.assign`)."""
        results: list[SliceResult] = []
        if not len(batch):
            return results
        places = self._places  # set by process(): where the batch's rows came from
        if places is None or places.n_rows != len(batch):
            places = RowPlaces.unknown("the batch was not decoded from one source block")
        first_records = partition is not None and partition not in self.partitions.busy
        if partition is not None:
            self.partitions.busy.add(partition)
        inverse, models = factorize(batch.model, use_na_sentinel=False)
        for i, name in enumerate(models):
            rows = np.flatnonzero(inverse == i) if len(models) > 1 else np.arange(len(batch))
            part = batch if rows.size == len(batch) else batch.take(rows)
            part = self._fold_versions(str(name), part)
            part = self.join.attach_early(part)
            pipeline = self.pipelines[str(name)]
            folded = pipeline.process(part, partition)
            late, closed = folded.late, folded.closed
            self._count(str(name), part if not late.any() else part.take(np.flatnonzero(~late)))
            self.join.remember(str(name), part, folded.starts, ~late)
            if pipeline.model.window.kind == "time":
                self._count_window_records(str(name), folded.starts, late)
            if late.any():
                self.tracker.late[str(name)] += int(late.sum())
                originals = self._originals(part, late)
                for j in np.flatnonzero(late):
                    record = originals.get(str(part.id[j])) or _row(part, int(j))
                    self._late_letter(record, places.at(int(rows[j])), places.why,
                                      str(name), _late_detail(part, int(j), pipeline))
            self.tracker.watermark[str(name)] = self.pipelines[str(name)].windows.watermark
            for window in closed:
                self._begin_close(window)
            if closed:
                self.versions[str(name)].rotate()
        if first_records:  # a partition heard from: other models' watermarks may move
            self.advance_watermarks()
        results.extend(self.finish_closes(wait=False))
        self._sync_join_counts()
        return results

    def _count_window_records(self, model: str, starts: np.ndarray, late: np.ndarray) -> None:
        """Count each window's records on time and late; warn once per model when more than
        1 % of a window's records came late (``allowed_lateness`` too small for the source's
        event-time skew: docs/kafka.md, "Sizing allowed_lateness")."""
        counts = self._window_counts
        for is_late in (False, True):
            keys, n = np.unique(starts[late == is_late], return_counts=True)
            for key, k in zip(keys.tolist(), n.tolist(), strict=True):
                entry = counts.get((model, key))
                if entry is None:
                    entry = counts[(model, key)] = [0, 0]
                    if len(counts) > LATE_WINDOWS:
                        counts.popitem(last=False)
                entry[is_late] += k
                total = entry[0] + entry[1]
                if (is_late and model not in self._late_warned and total >= LATE_WARN_MIN
                        and entry[1] > LATE_WARN_SHARE * total):
                    self._late_warned.add(model)
                    spec = self.pipelines[model].model.window
                    log.warning("slicewatch: warning: model %s: %d of %d records (%.1f %%) of "
                                "the window starting at %s came after it closed (late); "
                                "allowed_lateness (%gs) is smaller than the event-time skew of "
                                "the source — see docs/kafka.md, \"Sizing allowed_lateness\" "
                                "(said once)", model, entry[1], total, 100 * entry[1] / total,
                                key, spec.allowed_lateness)

    def track_partitions(self, live: set[str], idle: set[str]) -> list[SliceResult]:
        """The source's partitions changed (owned ``live``, caught-up ``idle``): recompute
        the watermarks, close the windows they passed; returns results handed on."""
        if self.partitions.live == live and self.partitions.idle == idle:
            return []
        self.partitions.live, self.partitions.idle = set(live), set(idle)
        self.advance_watermarks()
        results = self.finish_closes(wait=False)
        self.publish()
        return results

    def advance_watermarks(self) -> None:
        """Recompute every model's watermark from the partition view; close (begin closing)
        the windows it passed."""
        for name, pipeline in self.pipelines.items():
            before = pipeline.windows.watermark
            if pipeline.windows.advance() != before:
                self.tracker.watermark[name] = pipeline.windows.watermark
                closed = pipeline.close_due()
                for window in closed:
                    self._begin_close(window)
                if closed:
                    self.versions[name].rotate()

    def _sync_join_counts(self) -> None:
        self.join.expire_early({n: late_horizon(p.windows) for n, p in self.pipelines.items()})
        self.tracker.labels = dict(self.join.counts)
        if self.feature_join is not None:
            self.tracker.features_join = dict(self.feature_join.counts)

    def process_labels(self, chunk: Chunk) -> list[SliceResult]:
        """Label records (``stream='labels'``), joined to their predictions by id: into the
        prediction's window if it is still open (see :mod:`monitor.core.label_join`)."""
        with self._decoding:
            if chunk.kind == "frame":  # a CSV or Parquet label file
                labels, rejects = self.decoder.decode_label_frame(chunk.payload)
            else:
                labels, rejects = self.decoder.decode_label_lines(chunk.payload)
        self._reject(rejects, chunk)
        matched = self.join.add_labels(labels["id"], labels["label"], labels["time"])
        for model, (batch, starts) in matched.items():
            applied = self.pipelines[model].process_labels(batch, starts)
            if not applied.all():
                self.join.counts[(model, "too_late")] += int((~applied).sum())
        self._sync_join_counts()
        results = self.finish_closes(wait=False)
        self.publish()
        return results

    def process_features(self, chunk: Chunk) -> list[SliceResult]:
        """Feature records logged apart from predictions (see :mod:`monitor.ingest.feature_join`):
        held predictions whose features came go on into the windows."""
        self._reject(self.feature_join.add_features(chunk.payload), chunk)
        return self._released(*self.feature_join.admit_placed([], []))

    def _released(self, records: list, where: list) -> list[SliceResult]:
        """Held predictions the feature join released (``where``: their places), decoded and
        folded."""
        with self._decoding:
            batch, rejects = self.decoder.decode_records(records)
        self._reject_placed(rejects, where)
        self._places = _placed(where, rejects, len(batch))
        try:
            results = self.process_batch(batch, None)
        finally:
            self._places = None
        self.publish()
        return results

    def _admit(self, chunk: Chunk) -> tuple[RecordBatch, list[Reject], RowPlaces]:
        """Predictions through the feature join: parsed, merged or held, then decoded; each
        record's place goes with it (a held one's too)."""
        records, rejects = parse_json_lines(chunk.payload)
        lines = _kept(len(chunk.payload), rejects)
        self._reject(rejects, chunk)
        placed = [(chunk.origin, chunk.locate(i)) for i in lines]
        with self._decoding:
            ready, where = self.feature_join.admit_placed(records, placed)
            batch, more = self.decoder.decode_records(ready)
        self._reject_placed(more, where)
        return batch, [], _placed(where, more, len(batch))

    def flush(self) -> list[SliceResult]:
        results: list[SliceResult] = []
        if self.feature_join is not None:  # end of input: held predictions go on as they are
            results.extend(self._released(*self.feature_join.flush_placed()))
        for pipeline in self.pipelines.values():
            for window in pipeline.flush():
                self._begin_close(window)
        results.extend(self.settle())
        self._sync_join_counts()
        self.publish()
        return results

    def open_records(self) -> tuple[int, int]:
        """(records, windows) still open: what a stop without a checkpoint leaves unreported
        (a stopped run does not report incomplete windows; :meth:`flush` would)."""
        windows = [w for p in self.pipelines.values() for w in p.open.values()]
        return sum(w.records for w in windows), len(windows)

    # ---- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict:
        """The daemon's whole resumable state as plain JSON-able data: every model's open
        windows (accumulator states), watermarks, slice vocabularies and the counters. Closes
        still in the worker are finished (their results handed on) first."""
        self.settle()
        return {"format": 2, "pipelines": {n: p.to_state() for n, p in self.pipelines.items()},
                "tracker": self.tracker.to_state(), "join": self.join.to_state(),
                "drift": {n: s.to_state() for n, s in self.drift.items()},
                "discovery": {n: s.to_state() for n, s in self.discovery.items()},
                "versions": {n: v.to_state() for n, v in self.versions.items()},
                "features": self.feature_join.to_state() if self.feature_join else None,
                "partitions_heard": sorted(self.partitions.busy)}

    def checkpoint_state(self) -> dict:
        """:meth:`state` for a checkpoint: the same, with the large float arrays as
        ``array.array`` (pickled as bytes, not JSON; :func:`monitor.drift.summary.
        compact_state`)."""
        return compact_state(self.state())

    def load_state(self, state: dict) -> None:
        """Resume from :meth:`state` output (models no longer in the spec are ignored). Closes
        still in the worker are dropped: they belong to the state being replaced."""
        if state.get("format") != 2:
            raise ValueError(f"daemon state of format {state.get('format')!r}, not 2")
        self._closing.clear()
        self.partitions.busy = set(state["partitions_heard"])
        for name, dstate in state["drift"].items():
            if name in self.drift:
                self.drift[name].load_state(dstate)
                self.tracker.concept.update(self.drift[name].concept_counts())
        for name, dstate in state.get("discovery", {}).items():
            if name in self.discovery:
                self.discovery[name].load_state(dstate)
        for name, pstate in state["pipelines"].items():
            if name in self.pipelines:
                self.pipelines[name].load_state(pstate)
        for name, vstate in state["versions"].items():
            if name in self.versions:
                self.versions[name].load_state(vstate)
        self.tracker.load_state(state["tracker"])
        self.join.load_state(state["join"])
        if self.feature_join is not None and state["features"] is not None:
            self.feature_join.load_state(state["features"])
        self._sync_join_counts()
        self.publish()

    # ---- helpers ------------------------------------------------------------------------
    def settle(self) -> list[SliceResult]:
        """Wait for closes still in the worker and hand their results on; returns them."""
        return self.finish_closes(wait=True)

    def close(self) -> None:
        """Stop the close worker (if any) once its closes are finished."""
        self.settle()
        self.closer.close()

    def _begin_close(self, window: ClosedWindow) -> None:
        """Metrics now; drift tests submitted to the closer; results handed on in window order
        by :meth:`finish_closes`."""
        self.join.expire(window.model, {window.key})
        found = self.discovery.get(window.model)
        if found is not None:
            window = found.close(window)
        results = evaluate_window(window, self.spec.model(window.model))
        stage = self.drift.get(window.model)
        job = stage.begin_close(window) if stage is not None else None
        pending = self.closer.submit(close_extras, job) if job is not None else None
        self._closing.append((window, results, job, pending))

    def finish_closes(self, *, wait: bool) -> list[SliceResult]:
        """Hand on the results of closes whose drift tests are done (all of them if
        ``wait``), oldest first, and publish them; returns them. The Kafka loop calls it on
        every turn, so results of the last close before an idle spell are not held back."""
        out: list[SliceResult] = []
        before = len(self._closing)
        while self._closing and (wait or self._closing[0][3] is None
                                 or self._closing[0][3].done()):
            window, results, job, pending = self._closing.popleft()
            if job is not None:  # a model with drift: its tests were submitted
                stage = self.drift[window.model]
                results = stage.finish_close(job, pending.result(), results)
                self.tracker.concept.update(stage.concept_counts())
            self.tracker.window_closed(window.model, window.end, results)
            if window.model in self.discovery:
                self.tracker.discovered_in(window.model, window.discovered)
            self.tracker.close_delay[window.model] = time.time() - window.end
            self._emit(partial(self._hand_on, window, results))
            out.extend(results)
        if len(self._closing) < before:
            self.publish()
        return out

    def _fold_versions(self, model: str, batch: RecordBatch) -> RecordBatch:
        """The model's versions over its ``max_versions`` budget → ``__other__``."""
        folder = self.versions[model]
        version = folder.fold(batch.version)
        if version is batch.version:
            return batch
        if model not in self.tracker.versions_folded:
            log.warning("slicewatch: model %s has more than max_versions=%d versions: the "
                        "others are exported as version=\"__other__\" (counted in "
                        "slicewatch_versions_folded_total)", model, folder.max_versions)
        self.tracker.versions_folded[model] = folder.folded
        return dataclasses.replace(batch, version=version)

    def _listener_failed(self, listener: ResultListener, window: ClosedWindow,
                         exc: Exception) -> None:
        name = getattr(listener, "__qualname__", type(listener).__name__)
        errors = self.tracker.listener_errors
        errors[name] = errors.get(name, 0) + 1
        log.warning("slicewatch: error: result listener %s failed on window %s of model %s "
                    "(%s: %s); the other listeners got it", name, window.key, window.model,
                    type(exc).__name__, str(exc)[:300])

    @property
    def listener_errors(self) -> dict[str, int]:
        """Listener name → windows it failed on (``slicewatch_listener_errors_total``)."""
        return self.tracker.listener_errors

    def begin(self) -> None:
        """Open a transaction: results for the listeners and dead letters are held until
        :meth:`commit` and dropped by :meth:`rollback` (the Kafka loop, which puts the state
        back when a batch fails, so nothing of a failed batch goes out). Transactions nest:
        an inner commit hands its outputs to the outer one."""
        self._held.append([])

    def commit(self) -> None:
        held = self._held.pop()
        if self._held:
            self._held[-1].extend(held)
        else:
            for effect in held:
                effect()

    def rollback(self) -> None:
        self._held.pop()

    def _emit(self, effect: Callable[[], None]) -> None:
        if self._held:
            self._held[-1].append(effect)
        else:
            effect()

    def _letter(self, reason: str, record, *, origin: str = "", detail: str = "",
                **place: int) -> None:
        """Dead-letter ``record``; ``place``: its ``line=`` or ``row=`` in ``origin``."""
        self._emit(partial(self.dead_letter.write, reason, record, origin=origin,
                           detail=detail, **place))

    def _hand_on(self, window: ClosedWindow, results: list[SliceResult]) -> None:
        for listener in self.listeners:  # one listener failing never costs the others
            try:
                listener(window, results)
            except Exception as exc:
                self._listener_failed(listener, window, exc)

    def processing_failed(self, raw: bytes, exc: Exception, *, origin: str = "",
                          where: str = "", **place: int) -> None:
        """A record whose processing raised (the state before it was put back by the
        caller): counted as ``processing_error`` and dead-lettered with the error (and
        ``place``: where it is in ``origin``, e.g. its Kafka ``partition`` and ``offset``)."""
        self.tracker.bad["processing_error"] += 1
        self._letter("processing_error", raw, origin=origin,
                     detail=f"{where}: {type(exc).__name__}: {str(exc)[:300]}", **place)
        self.publish()

    def _count(self, model: str, batch: RecordBatch) -> None:
        """Accepted (on-time) records, by model and by version × serving outcome."""
        self.tracker.records[model] += len(batch)
        v_codes, versions = string_codes(batch.version)
        counts = np.bincount(v_codes * len(OUTCOMES) + batch.outcome.astype(np.int64),
                             minlength=len(versions) * len(OUTCOMES)).reshape(-1, len(OUTCOMES))
        for vi, version in enumerate(versions):
            for oi, outcome in enumerate(OUTCOMES):
                if counts[vi, oi]:
                    self.tracker.outcomes[(model, str(version), outcome)] += int(counts[vi, oi])

    def _originals(self, part: RecordBatch, late: np.ndarray) -> dict[str, Any]:
        """The late records of ``part`` as logged, by prediction id, from the chunk being
        processed (only when it is JSON lines and the late records have distinct ids;
        otherwise the dead letter holds the decoded fields)."""
        if self._lines is None:
            return {}
        ids = [str(i) for i in part.id[late]]
        wanted = set(ids) - {""}
        if len(wanted) != len(ids):
            return {}
        path = self.spec.schema.id.split(".")
        found: dict[str, Any] = {}
        for line in self._lines:
            if not isinstance(line, bytes | str):
                continue
            try:
                record = node = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            for step in path:
                node = node.get(step) if isinstance(node, dict) else None
            if node is not None and str(node) in wanted:
                found[str(node)] = record  # the record as logged, every field kept
                if len(found) == len(wanted):
                    break
        return found

    def _reject(self, rejects: list[Reject], chunk: Chunk) -> None:
        """Count and dead-letter ``rejects`` of ``chunk``, each with its line, row or Kafka
        partition and offset when known (its ``line``, or its ``index`` in the chunk:
        :meth:`Chunk.locate`)."""
        for r in rejects:
            self.tracker.bad[r.reason] += 1
            at = {"line": r.line} if r.line is not None else chunk.locate(r.index)
            self._letter(r.reason, r.raw, detail=r.detail, origin=chunk.origin, **at)

    def _reject_placed(self, rejects: list[Reject], where: list) -> None:
        """Count and dead-letter ``rejects`` of records whose places are ``where`` (a held
        record's: ``(origin, {...})`` or None)."""
        for r in rejects:
            self.tracker.bad[r.reason] += 1
            origin, at = (where[r.index] if r.index is not None and r.index < len(where)
                          and where[r.index] is not None else ("", {}))
            self._letter(r.reason, r.raw, detail=r.detail, origin=origin, **at)

    def _late_letter(self, record: Any, found: tuple[str, dict] | None, why: str, model: str,
                     detail: str) -> None:
        """Dead-letter a late record of ``model`` with where it came from (``found``:
        :meth:`RowPlaces.at`), or ``why`` that is not known."""
        if found is None:
            self._letter("late", record, origin=model,
                         detail=f"{detail}; model {model}; its place in the source is not "
                         f"known: {why}")
            return
        origin, at = found
        self._letter("late", record, origin=origin, detail=f"{detail}; model {model}", **at)


def _placed(where: list, rejects: list[Reject], n_rows: int) -> RowPlaces:
    """The places of rows decoded from records whose places are ``where``."""
    return RowPlaces(lambda i: where[i] or ("", {}), len(where), rejects, n_rows)


def _late_detail(batch: RecordBatch, i: int, pipeline) -> str:
    """Why a record is late: its event time against the watermark."""
    watermark = pipeline.windows.watermark
    return (f"event time {float(batch.time[i]):.3f} is in a window already closed "
            f"(watermark {watermark:.3f}, allowed_lateness "
            f"{pipeline.model.window.allowed_lateness:g}s)")


def _row(batch: RecordBatch, i: int) -> dict:
    """One record of a batch back as a plain dict (for dead-letter output)."""
    return {"model": batch.model[i], "model_version": batch.version[i], "id": batch.id[i],
            "time": float(batch.time[i]),
            "score": None if np.isnan(batch.score[i]) else float(batch.score[i]),
            "features": {k: (v[i].item() if hasattr(v[i], "item") else v[i])
                         for k, v in batch.features.items()}}
