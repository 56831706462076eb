"""The core's value types: what one stage hands the next, typed and immutable.

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
from typing import Any, Literal

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
    upper)`` at the model's ``confidence_level`` (empty when off).
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
