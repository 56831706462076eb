"""Concept drift on the per-record error stream, with River's detectors.

The error stream of a slice is, per labelled record in arrival order, the misclassification
indicator (0/1; binary and multiclass) or the absolute error ``|predicted - label|``
(regression). :class:`ConceptMonitor` feeds it to one River detector, one value at a time
(River detectors are sequential by nature; the loop runs over labelled records only).

Regression errors are standardised first: River's default parameters (PageHinkley's
``threshold=50``, ``delta=0.005``) are in the units of the stream, so raw errors of prices
~1e5 fire on every few records. The first :data:`WARMUP` errors of a monitor set its scale
(:func:`error_scale`: their median; the mean if that is 0; 1 if both are) and are not fed;
every later error is fed as ``error / scale``. (A reference profile holds no error sample, so
the scale comes from the stream itself.) On that unit-scale stream PageHinkley's defaults
(made for 0/1 error rates) still fire every few thousand records, so for regression its
unset parameters default to :data:`REGRESSION_DEFAULTS` (``delta=0.1, threshold=100``).

Detectors by spec name (River 0.26): ``ADWIN``, ``PageHinkley``, ``KSWIN`` accept any real
stream; ``DDM``, ``EDDM``, ``HDDM_A``, ``HDDM_W`` (``river.drift.binary``) expect bits, so they
are refused for regression. ``KSWIN`` without a ``seed`` gets ``seed=0`` so runs repeat.

State survives restarts as ``to_state()``: the River object pickled and base64-encoded (River
objects are picklable). Unpickling runs code from the state, so checkpoints must only ever be
read from slicewatch's own files.

>>> import numpy as np
>>> m = ConceptMonitor("ADWIN", {}, task="binary")
>>> rng = np.random.default_rng(0)
>>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.5]).astype(float)
>>> hits = m.update(errors)
>>> len(hits) > 0 and 1000 <= hits[0] < 1200
True
"""

from __future__ import annotations

import base64
import inspect
import pickle
from typing import Any

import numpy as np
from river import drift

from monitor.drift.errors import DriftParamError
from monitor.metrics.base import Columns

DETECTORS: dict[str, type] = {
    "ADWIN": drift.ADWIN,
    "DDM": drift.binary.DDM,
    "EDDM": drift.binary.EDDM,
    "HDDM_A": drift.binary.HDDMA,
    "HDDM_W": drift.binary.HDDMW,
    "PageHinkley": drift.PageHinkley,
    "KSWIN": drift.KSWIN,
}
BINARY_ONLY = frozenset({"DDM", "EDDM", "HDDM_A", "HDDM_W"})
DEFAULT_DETECTOR = "ADWIN"
WARMUP = 100  # regression errors that set the scale of a monitor's stream
# defaults for a standardised regression error stream (parameters the spec leaves unset)
REGRESSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "PageHinkley": {"delta": 0.1, "threshold": 100.0}}


def error_scale(errors: np.ndarray) -> float:
    """The scale regression errors are divided by: the median absolute error of the warm-up
    (robust to outliers), its mean when more than half are exact, else 1."""
    errors = np.abs(np.asarray(errors, dtype=np.float64))
    for scale in (float(np.median(errors)), float(np.mean(errors))):
        if scale > 0 and np.isfinite(scale):
            return scale
    return 1.0


def make_detector(name: str, params: dict[str, Any] | None = None, task: str = "binary") -> Any:
    """A River detector ``name`` built with ``params`` (checked against its signature)."""
    if name not in DETECTORS:
        raise DriftParamError(f"unknown concept-drift detector {name!r}; "
                              f"known: {', '.join(DETECTORS)}")
    if name in BINARY_ONLY and task == "regression":
        raise DriftParamError(f"detector {name!r} takes a 0/1 error stream and cannot watch "
                              "a regression model's absolute errors; use ADWIN, PageHinkley or "
                              "KSWIN")
    cls = DETECTORS[name]
    params = dict(params or {})
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in allowed:
            raise DriftParamError(f"detector {name!r} has no parameter {key!r}; "
                                  f"allowed: {', '.join(allowed)}")
    if name == "KSWIN" and params.get("seed") is None:
        params["seed"] = 0
    if task == "regression":
        params = {**REGRESSION_DEFAULTS.get(name, {}), **params}
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise DriftParamError(f"detector {name!r}: bad parameters {params}: {e}") from None


def error_stream(task: str, cols: Columns) -> np.ndarray:
    """The error of every labelled record with a known prediction, in order.

    binary/multiclass: ``predicted != label`` as 0.0/1.0; regression: ``|predicted - label|``.
    """
    return error_rows(task, cols)[0]


def error_rows(task: str, cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """:func:`error_stream` and the positions in ``cols`` of its records."""
    pred, label = cols.predicted, cols.label
    if task == "regression" or pred.dtype.kind == "f":
        known = ~np.isnan(pred) & ~np.isnan(label)
    else:
        known = (pred >= 0) & (label >= 0)
    rows = np.flatnonzero(known)
    if task == "regression":
        return np.abs(pred[rows] - label[rows]).astype(np.float64), rows
    return (pred[rows] != label[rows]).astype(np.float64), rows


class ConceptMonitor:
    """One River detector over one slice's error stream.

    ``update(errors)`` returns the positions in ``errors`` where the detector signalled drift;
    ``events`` counts all signals so far, ``n`` all values seen. Regression errors are fed
    divided by ``scale``, set by the first :data:`WARMUP` of them (held in ``warmup`` until
    then, not fed).
    """

    def __init__(self, detector: str = DEFAULT_DETECTOR, params: dict[str, Any] | None = None,
                 *, task: str = "binary"):
        self.detector_name = detector
        self.params = dict(params or {})
        self.task = task
        self.detector = make_detector(detector, self.params, task)
        self.events = 0
        self.n = 0
        self.scale: float | None = None if task == "regression" else 1.0
        self.warmup: list[float] = []

    def update(self, errors: np.ndarray) -> list[int]:
        errors = np.asarray(errors, dtype=np.float64)
        if errors.size and not np.all(np.isfinite(errors)):
            raise DriftParamError("concept-drift errors must be finite numbers")
        binary = self.detector_name in BINARY_ONLY
        if binary and errors.size and not np.all((errors == 0) | (errors == 1)):
            raise DriftParamError(f"detector {self.detector_name!r} needs 0/1 errors")
        skip = 0
        if self.scale is None:  # regression warm-up: these errors set the scale
            skip = min(errors.size, WARMUP - len(self.warmup))
            self.warmup.extend(errors[:skip].tolist())
            if len(self.warmup) < WARMUP:
                self.n += errors.size
                return []
            self.scale, self.warmup = error_scale(np.array(self.warmup)), []
        fed = errors[skip:] if self.scale == 1.0 else errors[skip:] / self.scale
        values = fed.astype(bool).tolist() if binary else fed.tolist()
        hits = []
        update = self.detector.update
        det = self.detector
        for i, x in enumerate(values, start=skip):
            update(x)
            if det.drift_detected:
                hits.append(i)
        self.events += len(hits)
        self.n += errors.size
        return hits

    def to_state(self) -> dict[str, Any]:
        return {"detector": self.detector_name, "params": self.params, "task": self.task,
                "events": self.events, "n": self.n, "scale": self.scale, "warmup": self.warmup,
                "pickle": base64.b64encode(pickle.dumps(self.detector)).decode("ascii")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConceptMonitor:
        m = cls(state["detector"], state["params"], task=state["task"])
        m.detector = pickle.loads(base64.b64decode(state["pickle"]))
        m.events, m.n = int(state["events"]), int(state["n"])
        m.scale = state.get("scale", 1.0)  # states from before standardisation: fed raw
        m.warmup = [float(x) for x in state.get("warmup", [])]
        return m
