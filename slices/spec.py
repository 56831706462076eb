"""Typed, validated spec objects. Built by :func:`slices.load.load_spec`; immutable afterwards.

Everything downstream (assignment, windows, metrics, drift, alerts, exporters, dashboard
generation) reads these objects, never raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slices.alerting import AlertingSpec

Task = Literal["binary", "multiclass", "regression"]
FeatureType = Literal["numeric", "categorical"]
SliceKind = Literal["overall", "feature_keys", "feature_values", "buckets", "where", "tags"]

OUTCOMES: tuple[str, ...] = ("ok", "error", "timeout", "fallback")
OTHER = "__other__"
MISSING = "__missing__"


@dataclass(frozen=True)
class SchemaSpec:
    """Where each record role lives in the user's records (dot paths, e.g. ``prediction.score``).

    ``features`` is the path of a mapping whose keys are feature names; ``feature_paths``
    overrides the place of single features (``{country: ctx.country}``).
    """

    model: str = "model"
    version: str = "model_version"
    id: str = "prediction_id"
    time: str = "timestamp"
    features: str = "features"
    feature_paths: dict[str, str] = field(default_factory=dict)
    score: str = "prediction.score"
    pred_class: str = "prediction.class"
    value: str = "prediction.value"
    label: str = "label"
    tags: str = "tags"
    outcome: str = "outcome"
    label_id: str = "prediction_id"
    label_value: str = "label"
    label_time: str = "timestamp"


@dataclass(frozen=True)
class WindowSpec:
    """A tumbling window: ``kind='time'`` with ``size`` seconds or ``kind='count'`` of records."""

    kind: Literal["time", "count"] = "time"
    size: float = 300.0
    allowed_lateness: float = 0.0


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: FeatureType = "numeric"
    # Drift overrides (issue 3); None means "use the default selection rules".
    test: str | None = None
    threshold: float | None = None
    min_samples: int | None = None


@dataclass(frozen=True)
class SliceSpec:
    """One slicing rule; it yields zero or more slice values per record.

    ``name`` is unique within a model. For ``feature_keys`` a record falls into the slice value
    of its feature values (a cross when several keys); ``buckets`` maps a numeric feature onto
    ``[edge_i, edge_i+1)`` intervals; ``where`` is a parsed predicate; ``tags`` yields one slice
    value per listed tag the record carries.
    """

    name: str
    kind: SliceKind
    keys: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    buckets: tuple[float, ...] = ()
    where: str | None = None
    predicate: Any = None  # slices.predicate.Expr, parsed at load time
    tags: tuple[str, ...] = ()
    critical: bool = False
    max_values: int = 50
    min_size: int = 0


@dataclass(frozen=True)
class DriftSpec:
    """Drift checks of one model (issue 3)."""

    enabled: bool = False
    profile: str | None = None  # path of a reference profile JSON
    rolling_windows: int = 0  # >0: reference = previous N windows instead of a profile
    fdr: float = 0.05
    features: tuple[str, ...] = ()  # empty: every declared feature
    prediction: bool = True
    label: bool = True
    per_slice: bool = True
    multivariate: bool = True  # PCA reconstruction error when the profile holds a fit
    concept_detector: str | None = None  # River detector name, e.g. "ADWIN"
    concept_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiscoverySpec:
    """Discovery of failing slices nobody declared (issue 17; docs/discovery.md).

    ``features`` may form slices (numeric ones through ``buckets`` edges); ``error`` is the
    per-record error signal; conjunctions up to ``max_level`` features with at least
    ``min_support`` labelled records are candidates; ``top_k`` significant ones (BH at ``fdr``)
    are reported per window and over the last ``horizon`` windows, ranked by the SliceLine
    score with weight ``alpha``. Each feature keeps ``max_values`` values (others:
    ``__other__``)."""

    enabled: bool = False
    features: tuple[str, ...] = ()
    buckets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    error: str = "misclassification"
    max_level: int = 2
    min_support: int = 50
    top_k: int = 5
    horizon: int = 0
    fdr: float = 0.05
    alpha: float = 0.95
    max_values: int = 20


@dataclass(frozen=True)
class CompareSpec:
    """Candidate vs baseline model version (issue 15): per slice and window, each metric's
    ``candidate − baseline`` with its interval (monitor/core/compare.py). ``candidate`` None:
    every other version seen in the window. ``paired``: both versions score the same
    predictions (shadow traffic, same prediction ids): paired Poisson-bootstrap intervals."""

    baseline: str
    candidate: str | None = None
    paired: bool = False


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Task
    threshold: float = 0.5
    window: WindowSpec = field(default_factory=WindowSpec)
    metrics: tuple[str, ...] = ()
    features: tuple[FeatureSpec, ...] = ()
    slices: tuple[SliceSpec, ...] = ()
    classes: tuple[str, ...] = ()  # multiclass: known classes (others fold into __other__)
    positive_label: Any = 1
    calibration_bins: int = 10
    label_delay: float = 0.0  # seconds a label may arrive after its prediction
    schema: SchemaSpec | None = None  # overrides the top-level schema
    drift: DriftSpec = field(default_factory=DriftSpec)
    max_versions: int = 10  # version labels kept; the other versions fold into __other__
    discovery: DiscoverySpec = field(default_factory=DiscoverySpec)
    confidence_level: float | None = 0.95  # metric intervals' level; None: no intervals
    bootstrap_replicates: int = 200  # Poisson bootstrap replicates (metrics without formula)
    compare: tuple[CompareSpec, ...] = ()  # version comparisons (plus those of alert rules)

    def feature(self, name: str) -> FeatureSpec | None:
        return next((f for f in self.features if f.name == name), None)


@dataclass(frozen=True)
class SourceSpec:
    type: Literal["file", "stdin", "kafka"] = "file"
    paths: tuple[str, ...] = ()
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    follow: bool = False
    batch_size: int = 10_000
    labels: tuple[str, ...] = ()  # label files (file source)
    dead_letter: str | None = None
    kafka: dict[str, Any] = field(default_factory=dict)
    max_future: float = 3600.0  # seconds an event time may be ahead of the clock
    max_record_bytes: int = 1 << 20  # longer lines / CSV rows are dead-lettered (too_large)
    dead_letter_max_bytes: int = 100 << 20  # the dead-letter file rotates at this size


@dataclass(frozen=True)
class ServerSpec:
    listen: str = "127.0.0.1:9108"
    stale_after_windows: int = 3
    max_series: int = 50_000  # series on /metrics in total; the rest counted, left out
    max_series_per_family: int = 10_000  # series per metric family


@dataclass(frozen=True)
class Spec:
    """A whole slicewatch spec, as loaded from one YAML file."""

    file: str
    models: tuple[ModelSpec, ...]
    schema: SchemaSpec = field(default_factory=SchemaSpec)
    source: SourceSpec = field(default_factory=SourceSpec)
    server: ServerSpec = field(default_factory=ServerSpec)
    checkpoint: str | None = None
    alerting: AlertingSpec | None = None
    warnings: tuple[Any, ...] = ()  # slices.errors.Problem: valid but deprecated usage

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)

    def schema_for(self, model: ModelSpec) -> SchemaSpec:
        return model.schema or self.schema
