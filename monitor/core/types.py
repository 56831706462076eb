"""The core's value types: what one stage hands the next, typed and immutable.

:class:`RecordBatch` is what decoding produces, :class:`ClosedWindow` what a pipeline hands
to evaluation when a window closes, :class:`SliceResult` what evaluation hands the outputs.

:class:`SliceResult` is one model × version × slice over one closed window; its drift tests,
data quality and concept-drift events are typed fields (:class:`FeatureDriftResult`,
:class:`FeatureQuality`, :class:`ConceptResult`), never a dict read by string keys.

>>> d = FeatureDriftResult("amount", "ks", "ks", 0.3, 1e-9, 2e-9, 0.3, 0.1, "drift", 500, 480)
>>> d.detected, d.to_dict()["pvalue_adjusted"]
(True, 2e-09)
>>> FeatureQuality("country", 0.0, 0.0, None, 0.25, 0.0).to_dict()
{'missing_ratio': 0.0, 'nonfinite': 0.0, 'unseen_category_ratio': 0.25, 'type_mismatches': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from monitor.core.compare import VersionDiff
    from monitor.core.windows import Group, GroupKey

OUTCOME_CODES: dict[str, int] = {"ok": 0, "error": 1, "timeout": 2, "fallback": 3}


@dataclass(frozen=True)
class RecordBatch:
    """Predictions of one or more models, as columns of equal length ``n``.

    - ``time``: event time, float64 epoch seconds.
    - ``model``, ``version``, ``id``: object arrays of str.
    - ``score``: float64 (NaN when absent): positive-class probability for binary models.
    - ``pred_class``: object (None when absent): predicted class (multiclass, optional binary).
    - ``value``: float64 (NaN when absent): regression prediction.
    - ``label``: object (None when not labelled yet): ground truth as logged.
    - ``outcome``: int8 codes of :data:`OUTCOME_CODES`.
    - ``features``: name → array.
    """

    time: np.ndarray
    model: np.ndarray
    version: np.ndarray
    id: np.ndarray
    score: np.ndarray
    pred_class: np.ndarray
    value: np.ndarray
    label: np.ndarray
    outcome: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    tag_names: tuple[str, ...] = ()
    tag_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tag_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.time.shape[0])

    # --- the protocol slices/ reads (slices.assign.SliceableBatch) ---
    def column(self, name: str) -> np.ndarray | None:
        """A feature column by name, or None when the batch has no such feature."""
        return self.features.get(name)

    def has_tag(self, tag: str) -> np.ndarray:
        """Boolean mask of the records that carry ``tag``."""
        mask = np.zeros(len(self), dtype=bool)
        if tag in self.tag_names:
            code = self.tag_names.index(tag)
            mask[self.tag_rows[self.tag_codes == code]] = True
        return mask

    def take(self, index: np.ndarray) -> RecordBatch:
        """The records at ``index`` (int positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if index.dtype == bool else np.asarray(index, np.int64)
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[index] = np.arange(index.shape[0])
        keep = remap[self.tag_rows] >= 0 if self.tag_rows.size else np.zeros(0, bool)
        return RecordBatch(
            time=self.time[index], model=self.model[index], version=self.version[index],
            id=self.id[index], score=self.score[index], pred_class=self.pred_class[index],
            value=self.value[index], label=self.label[index], outcome=self.outcome[index],
            features={k: v[index] for k, v in self.features.items()},
            tag_names=self.tag_names, tag_rows=remap[self.tag_rows[keep]],
            tag_codes=self.tag_codes[keep],
        )

    @staticmethod
    def empty(feature_names: tuple[str, ...] = ()) -> RecordBatch:
        o = np.empty(0, dtype=object)
        f = np.empty(0, dtype=np.float64)
        return RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f,
                           label=o, outcome=np.empty(0, np.int8),
                           features={k: np.empty(0, dtype=object) for k in feature_names})


@dataclass(frozen=True)
class ClosedWindow:
    """A window that will receive no more records: its groups are final."""

    model: str
    key: float  # window start (time windows) or window index (count windows)
    start: float  # event-time start
    end: float  # event-time end
    groups: dict[GroupKey, Group]
    # slices found worse than the rest (monitor.discovery.types.DiscoveredSlice), when the
    # model has discovery: set by the daemon at close
    discovered: tuple[Any, ...] = ()
    # (version, slice) of the slices discovered in one of the last windows but not in this
    # one, judged "not in the top-k" by the `discovered` alert rule: set with `discovered`
    discovered_absent: tuple[tuple[str, str], ...] = ()


DriftStatus = Literal["ok", "drift", "insufficient"]


@dataclass(frozen=True)
class FeatureDriftResult:
    """One drift test of one feature (or ``__prediction__`` / ``__label__``) in one window.

    ``statistic``/``pvalue`` come from ``test``, ``distance`` from ``gate`` (the effect size
    compared with ``threshold``); ``pvalue_adjusted`` is Benjamini-Hochberg adjusted across
    the window's tests. Numbers are None when not computed (``insufficient`` data, or a
    distance-only test). ``reference``: ``slice``, ``overall`` or ``rolling``.
    """

    feature: str
    test: str
    gate: str
    statistic: float | None
    pvalue: float | None
    pvalue_adjusted: float | None
    distance: float | None
    threshold: float
    status: DriftStatus
    n_reference: int
    n_current: int
    reference: str = "overall"

    @property
    def detected(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        """The results-history form (keys in this order)."""
        return {"feature": self.feature, "test": self.test, "gate": self.gate,
                "statistic": self.statistic, "pvalue": self.pvalue,
                "pvalue_adjusted": self.pvalue_adjusted, "distance": self.distance,
                "threshold": self.threshold, "status": self.status,
                "n_reference": self.n_reference, "n_current": self.n_current,
                "reference": self.reference}


QUALITY_CHECKS: tuple[str, ...] = ("missing_ratio", "nonfinite", "out_of_range_ratio",
                                   "unseen_category_ratio", "type_mismatches")


@dataclass(frozen=True)
class FeatureQuality:
    """Data-quality figures of one feature in one window; None = does not apply (range checks
    are numeric only, unseen categories categorical only)."""

    feature: str
    missing_ratio: float | None
    nonfinite: float | None
    out_of_range_ratio: float | None
    unseen_category_ratio: float | None
    type_mismatches: float | None

    def to_dict(self) -> dict[str, float]:
        """Check name → value, the checks that apply only (the results-history form)."""
        return {k: v for k in QUALITY_CHECKS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class ConceptResult:
    """Concept-drift detector signals in one window: how many, and at which event times."""

    events: int
    event_times: tuple[float, ...] = ()


@dataclass(frozen=True)
class MultivariateDrift:
    """PCA reconstruction error of one slice's window against its reference band
    (``monitor.drift.multivariate``): ``error`` (mean over ``n`` records), the band
    ``[lower, upper]`` at this ``n``, ``drift`` (error outside the band) and ``reference``
    (``slice`` or ``overall``: whose reference records gave the band)."""

    error: float
    lower: float
    upper: float
    drift: bool
    n: int
    reference: str


@dataclass(frozen=True)
class EstimatedPerformance:
    """CBPE estimate of one slice's window (``monitor.drift.cbpe``): ``values`` (metric →
    estimate), ``intervals`` (metric → (lower, upper), accuracy and precision) and ``error``
    (metric → realised − estimated, for the metrics the window's labels define)."""

    values: Mapping[str, float]
    intervals: Mapping[str, tuple[float, float]]
    error: Mapping[str, float]


@dataclass(frozen=True)
class SliceResult:
    """Metrics of one model × version × slice over one closed window.

    ``reported`` is False when the slice has fewer records than its ``min_size``: such a
    result is kept for bookkeeping but neither exported nor alerted on. ``drift`` holds the
    window's drift tests of the slice, ``quality`` its data quality (None: the model has no
    drift stage), ``concept`` its concept-drift events (None: no detector),
    ``reference_metrics`` the profile's metrics of the slice (None: not in the profile),
    ``multivariate`` its PCA reconstruction error (None: no PCA fit), ``estimated`` its
    CBPE performance estimate (None: not estimated), ``intervals`` metric → ``(lower,
    upper)`` at the model's ``confidence_level`` (empty when off), ``compared`` this
    version's metrics minus a baseline version's in the same window and slice (the model's
    ``compare``; monitor/core/compare.py).
    """

    model: str
    version: str
    slice_name: str
    slice: str
    critical: bool
    window_start: float
    window_end: float
    count: int
    metrics: Mapping[str, Any]
    reported: bool = True
    drift: tuple[FeatureDriftResult, ...] = ()
    quality: tuple[FeatureQuality, ...] | None = None
    concept: ConceptResult | None = None
    reference_metrics: Mapping[str, float] | None = None
    multivariate: MultivariateDrift | None = None
    estimated: EstimatedPerformance | None = None
    intervals: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: MappingProxyType({}))
    compared: tuple[VersionDiff, ...] = ()  # this version (candidate) − a baseline version
