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

State survives restarts as ``to_state()``: plain data, never a pickle. The detector is rebuilt
from its spec name (one of :data:`DETECTORS`, the allowlist) and constructor parameters, then
its attributes are set from the saved plain values, each decoded by the type of the same
attribute of the freshly built detector (a River statistic, a deque, ``random.Random``, or one
of River's Rust objects restored from its own serialised bytes) — no type is ever read from the
state (:func:`detector_state`, :func:`restore_detector`).

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
import os
import random
import threading
from collections import deque
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import ModelColumns
from monitor.drift.errors import DriftParamError

drift = lazy_module("river.drift")  # River loads when a detector is first built

DETECTORS: dict[str, str] = {  # spec name → attribute path under ``river.drift``
    "ADWIN": "ADWIN",
    "DDM": "binary.DDM",
    "EDDM": "binary.EDDM",
    "HDDM_A": "binary.HDDMA",
    "HDDM_W": "binary.HDDMW",
    "PageHinkley": "PageHinkley",
    "KSWIN": "KSWIN",
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


def detector_class(name: str) -> type:
    """River's class for the spec name ``name`` (a key of :data:`DETECTORS`); imports River."""
    obj: Any = drift
    for part in DETECTORS[name].split("."):
        obj = getattr(obj, part)
    return obj


def make_detector(name: str, params: dict[str, Any] | None = None, task: str = "binary") -> Any:
    """A River detector ``name`` built with ``params`` (checked against its signature)."""
    if name not in DETECTORS:
        raise DriftParamError(f"unknown concept-drift detector {name!r}; "
                              f"known: {', '.join(DETECTORS)}")
    if name in BINARY_ONLY and task == "regression":
        raise DriftParamError(f"detector {name!r} takes a 0/1 error stream and cannot watch "
                              "a regression model's absolute errors; use ADWIN, PageHinkley or "
                              "KSWIN")
    cls = detector_class(name)
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


def error_rows(task: str, cols: ModelColumns) -> tuple[np.ndarray, np.ndarray]:
    """The error of every labelled record with a known prediction, in order, and the positions
    in ``cols`` of those records. binary/multiclass: ``predicted != label`` as 0.0/1.0;
    regression: ``|predicted - label|``."""
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
                "state": detector_state(self.detector)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConceptMonitor:
        """Inverse of :meth:`to_state`; a state that does not fit the detector raises
        :class:`DriftParamError`."""
        if not isinstance(state, dict) or "state" not in state:
            raise DriftParamError("concept-drift state is not of this slicewatch's format")
        m = cls(state["detector"], state["params"], task=state["task"])
        restore_detector(m.detector, state["state"])
        m.events, m.n = int(state["events"]), int(state["n"])
        scale = state["scale"]  # None: a regression monitor still in its warm-up
        m.scale = None if scale is None else float(scale)
        m.warmup = [float(x) for x in state["warmup"]]
        return m


# ---- detector state as plain data ------------------------------------------------------------

def _rust_setstate(obj: Any, data: bytes) -> None:
    """``obj.__setstate__(data)`` for one of River's Rust objects. Its decoder (serde,
    memory-safe, bounded by ``data``) panics on bytes that do not fit; the panic becomes a
    :class:`DriftParamError`, and Rust's panic message (written straight to file descriptor
    2) is kept off the terminal: one clear error line, no Rust backtrace."""
    with _STDERR_SWAP:  # one restore at a time swaps descriptor 2
        _rust_setstate_quietly(obj, data)


_STDERR_SWAP = threading.Lock()


def _rust_setstate_quietly(obj: Any, data: bytes) -> None:
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                obj.__setstate__(data)
            except BaseException as exc:  # pyo3's PanicException derives from BaseException
                if type(exc).__name__ != "PanicException":
                    raise
                raise DriftParamError(f"{type(obj).__name__}: its saved bytes do not fit "
                                      "(River's decoder refused them)") from None
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


_PRIMITIVE = (type(None), bool, int, float, str)


def detector_state(obj: Any) -> Any:
    """A River detector (or one of its parts) as plain JSON-able data: primitives, lists,
    dicts. Bound methods (set by the constructor) are left out."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PRIMITIVE):
        return obj
    if isinstance(obj, list | tuple):
        return [detector_state(x) for x in obj]
    if isinstance(obj, deque):
        return {"items": [detector_state(x) for x in obj], "maxlen": obj.maxlen}
    if isinstance(obj, random.Random):
        version, internal, gauss = obj.getstate()
        return {"random": [version, list(internal), gauss]}
    if not hasattr(obj, "__dict__") and hasattr(obj, "__getnewargs__"):  # River's Rust objects
        return {"args": list(obj.__getnewargs__()),
                "bytes": base64.b64encode(obj.__getstate__()).decode("ascii")}
    if hasattr(obj, "__dict__"):
        return {k: detector_state(v) for k, v in vars(obj).items()
                if not inspect.ismethod(v)}
    raise DriftParamError(f"cannot save concept-drift state holding {type(obj).__name__}")


def restore_detector(fresh: Any, state: Any) -> Any:
    """``fresh`` (a newly built detector or part) with the values of ``state`` (from
    :func:`detector_state`), each decoded by the type ``fresh`` has there; returns it."""
    where = type(fresh).__name__
    try:
        if isinstance(fresh, (*_PRIMITIVE, np.generic)):
            if not isinstance(state, _PRIMITIVE):
                raise TypeError(f"expected a number, string or null, got {type(state).__name__}")
            return state
        if isinstance(fresh, list | tuple):
            if not all(isinstance(x, _PRIMITIVE) for x in state):
                raise TypeError("expected a list of plain values")
            return type(fresh)(state)
        if isinstance(fresh, deque):
            items = state["items"]
            if not all(isinstance(x, _PRIMITIVE) for x in items):
                raise TypeError("expected a list of plain values")
            return deque(items, maxlen=fresh.maxlen)
        if isinstance(fresh, random.Random):
            version, internal, gauss = state["random"]
            out = random.Random()
            out.setstate((int(version), tuple(int(x) for x in internal),
                          None if gauss is None else float(gauss)))
            return out
        if not hasattr(fresh, "__dict__") and hasattr(fresh, "__getnewargs__"):
            args = state["args"]
            if not all(isinstance(x, _PRIMITIVE) for x in args):
                raise TypeError("expected plain constructor arguments")
            out = type(fresh)(*args)
            _rust_setstate(out, base64.b64decode(state["bytes"], validate=True))
            return out
        if hasattr(fresh, "__dict__") and isinstance(state, dict):
            attrs = vars(fresh)
            unknown = set(state) - set(attrs)
            if unknown:
                raise TypeError(f"unknown attribute(s) {', '.join(sorted(map(str, unknown)))}")
            for key, value in state.items():
                attrs[key] = restore_detector(attrs[key], value)
            return fresh
    except DriftParamError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise DriftParamError(f"concept-drift state does not fit {where}: {exc}") from None
    raise DriftParamError(f"concept-drift state does not fit {where}")
