"""Drift in the daemon: window summaries as accumulators, tests at window close, concept
drift on each slice's error stream.

Per model with ``drift:`` in its spec, a :class:`DriftStage`

- gives each new window group two extra accumulators: :class:`FeatureDrift` (features and
  prediction, fed every record) and :class:`LabelDrift` (the label, fed labelled records,
  including labels joined later) — both with the reference's fixed bins, so memory is
  bounded by bins × features × slices;
- at window close runs :func:`monitor.drift.evaluate_drift` (all tests of the window, BH,
  effect-size gate) and :func:`monitor.drift.data_quality`, and attaches the decisions to the
  slice results (typed ``drift`` and ``quality`` fields);
- feeds a River detector per model × version × slice with the per-record error stream
  (``drift.concept``) and gives each window its own events: an event belongs to the window of
  the prediction at which the detector fired (its event time is kept, at most
  :data:`MAX_EVENT_TIMES` per window and slice).

The reference is a profile file (``drift.profile``) or the previous N windows
(``drift.rolling_windows``); a rolling reference takes its bins from the first micro-batch.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.core.kernels import warm_up
from monitor.core.metrics.base import Accumulator, ModelColumns
from monitor.core.metrics.registry import register
from monitor.core.stage import GroupRows
from monitor.core.types import (
    ClosedWindow,
    ConceptResult,
    EstimatedPerformance,
    FeatureDriftResult,
    FeatureQuality,
    MultivariateDrift,
    SliceResult,
)
from monitor.drift import (
    LABEL,
    ConceptMonitor,
    FeatureSummaries,
    Profile,
    RollingReference,
    build_profile,
    data_quality,
    error_rows,
    evaluate_drift,
    load_profile,
)
from monitor.drift.cbpe import PerformanceEstimate
from monitor.drift.decide import Decision
from monitor.drift.multivariate import Reconstruction, ReconstructionError
from monitor.drift.quality import Quality
from slices.spec import ModelSpec


@register
class FeatureDrift:
    """Features and prediction of one group, summarised with the reference's bins."""

    kind = "drift_features"
    needs_label = False

    def __init__(self, summaries: FeatureSummaries, classes: list[str] | None = None):
        self.summaries = summaries
        self.classes = classes

    def update(self, cols: ModelColumns) -> None:
        """:meth:`update_many` with one group holding every record."""
        type(self).update_many(cols, [(self, np.arange(len(cols)))])

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[FeatureDrift, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of one batch, at once."""
        FeatureSummaries.update_groups(cols, [(acc.summaries, rows) for acc, rows in items],
                                       classes=items[0][0].classes if items else None)

    def merge(self, other: FeatureDrift) -> None:
        self.summaries.merge(other.summaries)

    def to_state(self) -> dict[str, Any]:
        return {"summaries": self.summaries.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureDrift:
        return cls(FeatureSummaries.from_state(state["summaries"]))

    def result(self) -> dict[str, float]:
        return {}


@register
class LabelDrift(FeatureDrift):
    """The label of one group (labelled records only, whenever the label arrives)."""

    kind = "drift_label"
    needs_label = True

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[LabelDrift, np.ndarray]]) -> None:
        FeatureSummaries.update_label_groups(
            cols, [(acc.summaries, rows) for acc, rows in items],
            classes=items[0][0].classes if items else None)


MAX_EVENT_TIMES = 100  # event times kept per window × version × slice (all are counted)


@dataclass
class WindowEvents:
    """Concept-drift events of one window × version × slice: how many, and the event times
    of the predictions they fired at (the first :data:`MAX_EVENT_TIMES`)."""

    count: int = 0
    times: list[float] = dataclasses.field(default_factory=list)

    def add(self, times: np.ndarray) -> None:
        self.count += int(times.shape[0])
        room = MAX_EVENT_TIMES - len(self.times)
        if room > 0:
            self.times.extend(float(t) for t in times[:room])


def _seed(*parts: Any) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


@dataclass(frozen=True)
class FrozenReference:
    """The references of a window's slices, looked up when the window closed."""

    by_slice: dict[str, tuple[FeatureSummaries, str] | None]

    def for_slice(self, key: str | None) -> tuple[FeatureSummaries, str] | None:
        return self.by_slice.get(key)


@dataclass(frozen=True)
class CloseJob:
    """A closed window's drift work, detached from the stage (picklable): per version, the
    window's summaries by slice and the reference to test them against (None: the rolling
    reference is not ready yet)."""

    model: ModelSpec
    versions: list[tuple[str, dict[str, FeatureSummaries], FrozenReference | None]]
    concept_events: dict[tuple[str, str], WindowEvents]  # (version, slice) → this window's
    multivariate: dict[tuple[str, str], MultivariateDrift] = dataclasses.field(
        default_factory=dict)  # (version, slice) → PCA reconstruction error vs its band
    estimated: dict[tuple[str, str], tuple[dict[str, float], dict[str, tuple[float, float]]]] \
        = dataclasses.field(default_factory=dict)  # (version, slice) → CBPE (values, intervals)


@dataclass(frozen=True)
class SliceDrift:
    """The drift tests and data quality of one version × slice in a closed window."""

    drift: tuple[FeatureDriftResult, ...]
    quality: tuple[FeatureQuality, ...]


def close_extras(job: CloseJob) -> dict[tuple[str, str], SliceDrift]:
    """(version, slice) → its :class:`SliceDrift` for a closed window: every drift test of
    the window decided together (:func:`evaluate_drift`) and the data-quality figures. A pure
    function of ``job`` (it may run in a worker process)."""
    drift: dict[tuple[str, str], list[FeatureDriftResult]] = {}
    out: dict[tuple[str, str], SliceDrift] = {}
    for version, current, reference in job.versions:
        decisions = evaluate_drift(reference, current, job.model) if reference is not None \
            else []
        for d in decisions:
            drift.setdefault((version, d.slice), []).append(_drift_result(d))
        for label, sums in current.items():
            out[(version, label)] = SliceDrift(
                tuple(drift.get((version, label), ())),
                tuple(_feature_quality(q) for q in data_quality(sums)))
    return out


class DriftStage:
    def __init__(self, model: ModelSpec, classes: list[str]):
        self.model = model
        self.spec = model.drift
        self.classes = classes  # the preparer's live class list (multiclass names)
        self.profile: Profile | None = load_profile(self.spec.profile) if self.spec.profile \
            else None
        self.rolling = RollingReference(self.spec.rolling_windows) \
            if self.spec.rolling_windows else None
        self.concept: dict[tuple[str, str], ConceptMonitor] = {}
        # events of windows still open: window key → (version, slice) → events
        self.open_events: dict[float, dict[tuple[str, str], WindowEvents]] = {}
        self.concept_events: Counter = Counter()  # (version, slice) → events of closed windows
        # mixed into new groups' reservoir seeds: a scale-out worker's partition and
        # checkpoint, so the deltas of one window draw independent keys (docs/scaling.md)
        self.salt: tuple = ()
        warm_up()  # the compiled summary kernels, before the first batch

    # ---- accumulators for a new group ---------------------------------------------------
    def wants(self, slice_name: str) -> bool:
        return self.spec.per_slice or slice_name == "overall"

    def accumulators(self, slice_name: str) -> list[Accumulator]:
        if self.profile is None or not self.wants(slice_name):
            return []
        classes = self.classes if self.model.task == "multiclass" else None
        names = self.spec.features or None
        feats = self.profile.window_summaries(_seed(self.model.name, slice_name, *self.salt),
                                              names)
        label = FeatureSummaries(feats.task, {k: v for k, v in feats.summaries.items()
                                              if k == LABEL})
        feats = FeatureSummaries(feats.task, {k: v for k, v in feats.summaries.items()
                                              if k != LABEL})
        accs: list[Accumulator] = [FeatureDrift(feats, classes), LabelDrift(label, classes)]
        if self.reconstruction is not None:
            accs.append(ReconstructionError(self.reconstruction))
        if self.calibration is not None:
            accs.append(PerformanceEstimate(self.calibration, self.model.threshold))
        return accs

    @property
    def calibration(self):
        """The profile's CBPE calibration (binary models, profile files only)."""
        if self.model.task != "binary" or not self.spec.profile or self.profile is None:
            return None
        return self.profile.calibration

    @property
    def reconstruction(self) -> Reconstruction | None:
        """The profile's PCA fit, when multivariate drift is on (profile files only)."""
        if not (self.spec.multivariate and self.spec.profile) or self.profile is None:
            return None
        return self.profile.multivariate

    def before(self, cols: ModelColumns) -> None:
        """Rolling reference without a profile: bins from the first micro-batch."""
        if self.profile is None and self.rolling is not None and len(cols):
            self.profile = build_profile(self.model, cols, source="first micro-batch",
                                         classes=self.classes or None)

    def restored(self, accumulators: Sequence[Accumulator]) -> None:
        """Accumulators rebuilt from a checkpoint: re-attach the live state they share with
        the stage (multiclass names, the PCA fit)."""
        for acc in accumulators:
            if isinstance(acc, FeatureDrift) and self.model.task == "multiclass":
                acc.classes = self.classes
            elif isinstance(acc, ReconstructionError):
                acc.fit = self.reconstruction
            elif isinstance(acc, PerformanceEstimate):
                acc.calibration = self.calibration

    # ---- concept drift ------------------------------------------------------------------
    def after(self, groups: Sequence[GroupRows], cols: ModelColumns, times: np.ndarray) -> None:
        """Feed the errors of the labelled records of each group to its slice's detector;
        a detector's events go to the group's window, with the records' event times."""
        if self.spec.concept_detector is None:
            return
        for g in groups:
            self._concept(g.window, g.version, g.slice_label, cols.take(g.rows), times[g.rows])

    def _concept(self, window: float, version: str, slice_label: str, cols: ModelColumns,
                 times: np.ndarray) -> None:
        errors, rows = error_rows(self.model.task, cols)
        if not errors.size:
            return
        key = (version, slice_label)
        monitor = self.concept.get(key)
        if monitor is None:
            monitor = self.concept[key] = ConceptMonitor(
                self.spec.concept_detector, self.spec.concept_params, task=self.model.task)
        hits = monitor.update(errors)
        if hits:
            events = self.open_events.setdefault(window, {}).setdefault(key, WindowEvents())
            events.add(times[rows[hits]])

    # ---- window close --------------------------------------------------------------------
    def begin_close(self, window: ClosedWindow) -> CloseJob:
        """The stateful part of a window close, in window order: the window's summaries per
        version, the reference each version is tested against (the rolling reference then
        takes the window in) and the window's concept-drift events. The returned job holds no
        live state: :func:`close_extras` may run on it anywhere, later."""
        by_version: dict[str, dict[str, FeatureSummaries]] = {}
        multivariate = {}
        estimated = {}
        for (version, _, label), group in window.groups.items():
            for acc in group.accumulators:
                if isinstance(acc, PerformanceEstimate) and acc.sums[:4].sum() > 0:
                    estimated[(version, label)] = (acc.estimates(), acc.intervals())
                if isinstance(acc, ReconstructionError) and acc.n:
                    found = self._multivariate(label, acc)
                    if found is not None:
                        multivariate[(version, label)] = found
            parts = [a for a in group.accumulators if isinstance(a, FeatureDrift)]
            if not parts:
                continue
            merged = {}
            for acc in parts:
                merged.update(acc.summaries.summaries)
            by_version.setdefault(version, {})[label] = FeatureSummaries(
                self.model.task, merged)
        versions = []
        reference = self.rolling if self.rolling is not None else self.profile
        for version, current in by_version.items():
            ready = reference is not None and (self.rolling is None or self.rolling.ready)
            frozen = FrozenReference({key: reference.for_slice(key) for key in current}) \
                if ready else None
            versions.append((version, current, frozen))
            if self.rolling is not None:
                self.rolling.push(current)
        return CloseJob(self.model, versions, self.open_events.pop(window.key, {}),
                        multivariate, estimated)

    def _multivariate(self, label: str, acc: ReconstructionError) -> MultivariateDrift | None:
        fit = self.reconstruction
        band, scope = fit.band_for(label) if fit is not None else (None, "none")
        if band is None:
            return None
        lower, upper = band.bounds(acc.n)
        return MultivariateDrift(acc.mean, lower, upper, not lower <= acc.mean <= upper, acc.n,
                                 scope)

    def finish_close(self, job: CloseJob, extra: dict[tuple[str, str], SliceDrift],
                     results: list[SliceResult]) -> list[SliceResult]:
        """``results`` with ``extra`` (from :func:`close_extras`), the profile's metrics of
        the slice (``reference_metrics``) and the window's concept
        events (``concept_drift_events``, ``concept_drift_event_times``) attached; the events
        are added to :attr:`concept_events` (call once per job, in window order)."""
        for key, events in job.concept_events.items():
            self.concept_events[key] += events.count
        reference = self.profile.metrics if self.profile is not None else {}
        out = []
        for r in results:
            typed: dict[str, Any] = {}
            found = extra.get((r.version, r.slice))
            if found is not None:
                typed.update(drift=found.drift, quality=found.quality)
            if r.slice in reference:
                typed["reference_metrics"] = MappingProxyType(dict(reference[r.slice]))
            if self.spec.concept_detector is not None:
                events = job.concept_events.get((r.version, r.slice), WindowEvents())
                typed["concept"] = ConceptResult(events.count, tuple(events.times))
            mv = job.multivariate.get((r.version, r.slice))
            if mv is not None:
                typed["multivariate"] = mv
            est = job.estimated.get((r.version, r.slice))
            if est is not None:
                typed["estimated"] = _estimated(r, *est)
            out.append(dataclasses.replace(r, **typed) if typed else r)
        return out

    def concept_counts(self) -> dict[tuple[str, str, str, str], int]:
        """(model, version, slice, detector) → events of the windows closed so far."""
        return {(self.model.name, v, s, self.spec.concept_detector or ""): n
                for (v, s), n in self.concept_events.items()}

    # ---- checkpoints -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"concept": [[list(k), m.to_state()] for k, m in self.concept.items()],
                "events": [[list(k), n] for k, n in self.concept_events.items()],
                "open_events": [[[w, *k], e.count, e.times] for w, by in self.open_events.items()
                                for k, e in by.items()],
                "rolling": self.rolling.to_state() if self.rolling is not None else None,
                "learned": self.profile.to_dict() if self.profile is not None
                and not self.spec.profile else None}

    def load_state(self, state: dict[str, Any]) -> None:
        self.concept = {tuple(k): ConceptMonitor.from_state(m) for k, m in state["concept"]}
        self.concept_events = Counter({tuple(k): n for k, n in state["events"]})
        self.open_events = {}
        for (w, v, s), n, times in state["open_events"]:
            self.open_events.setdefault(float(w), {})[(v, s)] = WindowEvents(int(n), list(times))
        if state["rolling"] is not None:
            self.rolling = RollingReference.from_state(state["rolling"])
        if state["learned"] is not None:
            self.profile = Profile.from_dict(state["learned"])


def _estimated(r: SliceResult, values: dict[str, float],
               intervals: dict[str, tuple[float, float]]) -> EstimatedPerformance:
    """The CBPE estimate with its error against the window's realised metrics (when its
    labels define them)."""
    error = {}
    for k, v in values.items():
        real = r.metrics.get(k)
        if isinstance(real, float) and math.isfinite(real) and math.isfinite(v):
            error[k] = float(real - v)
    return EstimatedPerformance(
        MappingProxyType({k: float(v) for k, v in values.items()}),
        MappingProxyType({k: (float(lo), float(hi)) for k, (lo, hi) in intervals.items()}),
        MappingProxyType(error))


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _drift_result(d: Decision) -> FeatureDriftResult:
    return FeatureDriftResult(
        d.feature, d.test, d.gate, _finite(d.statistic), _finite(d.pvalue),
        _finite(d.adjusted_pvalue), _finite(d.distance), d.threshold, d.status,
        d.n_reference, d.n_current, d.reference)


def _feature_quality(q: Quality) -> FeatureQuality:
    return FeatureQuality(q.feature, _finite(q.missing_rate), _finite(q.nonfinite),
                          _finite(q.out_of_range_share), _finite(q.unseen_share),
                          _finite(q.type_mismatches))
