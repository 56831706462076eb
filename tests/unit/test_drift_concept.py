"""Concept-drift monitors: same change points as River fed directly, restarts, bad params."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import drift

from monitor.core.metrics.base import ModelColumns
from monitor.drift.concept import (
    BINARY_ONLY,
    DETECTORS,
    REGRESSION_DEFAULTS,
    WARMUP,
    ConceptMonitor,
    detector_class,
    error_rows,
    error_scale,
    make_detector,
)
from monitor.drift.errors import DriftParamError
from slices.vocab import CONCEPT_DETECTORS

RIVER = {"ADWIN": drift.ADWIN, "DDM": drift.binary.DDM, "EDDM": drift.binary.EDDM,
         "HDDM_A": drift.binary.HDDMA, "HDDM_W": drift.binary.HDDMW,
         "PageHinkley": drift.PageHinkley, "KSWIN": drift.KSWIN}
PARAMS = {"ADWIN": {"delta": 0.01}, "DDM": {"warm_start": 50}, "EDDM": {},
          "HDDM_A": {"two_sided_test": True}, "HDDM_W": {"lambda_val": 0.1},
          "PageHinkley": {"threshold": 20.0}, "KSWIN": {"alpha": 0.001, "seed": 7}}


def _stream(binary: bool, seed: int = 0, seg: int = 700) -> np.ndarray:
    """Four segments with different error levels (KSWIN, which runs a KS test per record,
    gets shorter segments to keep the tests fast)."""
    rng = np.random.default_rng(seed)
    if binary:
        rates = [0.1, 0.45, 0.05, 0.3]
        return np.concatenate([(rng.random(seg) < r) for r in rates]).astype(float)
    return np.abs(np.concatenate([rng.normal(m, 1, seg) for m in (0, 2, 0.5, 3)]))


def _seg(name: str) -> int:
    return 250 if name == "KSWIN" else 700


def _direct(name: str, params: dict, stream: np.ndarray) -> list[int]:
    det = RIVER[name](**params)
    hits = []
    for i, x in enumerate(stream):
        det.update(bool(x) if name in BINARY_ONLY else float(x))
        if det.drift_detected:
            hits.append(i)
    return hits


def test_detector_names_are_the_vocabulary():
    assert tuple(DETECTORS) == CONCEPT_DETECTORS
    assert all(detector_class(k) is RIVER[k] for k in RIVER)


@pytest.mark.parametrize("name", CONCEPT_DETECTORS)
def test_change_points_equal_river_fed_directly(name):
    stream = _stream(binary=True, seed=1, seg=_seg(name))
    m = ConceptMonitor(name, PARAMS[name])
    hits = []
    for start in range(0, stream.shape[0], 333):  # batches of arbitrary size
        hits += [start + i for i in m.update(stream[start:start + 333])]
    assert hits == _direct(name, PARAMS[name], stream)
    assert hits, f"{name} found no change in a stream with three changes"
    assert m.events == len(hits) and m.n == stream.shape[0]


@pytest.mark.parametrize("name", ["ADWIN", "PageHinkley", "KSWIN"])
def test_real_valued_detectors_on_regression_errors(name):
    """Regression errors are fed standardised: the first WARMUP set the scale (their median
    absolute error) and are not fed; the detections are River's on ``errors / scale``, with
    the regression defaults for parameters left unset."""
    stream = 1e5 * _stream(binary=False, seed=2, seg=_seg(name))
    m = ConceptMonitor(name, PARAMS[name], task="regression")
    hits = []
    for start in range(0, stream.shape[0], 37):  # the warm-up ends inside a batch
        hits += [start + i for i in m.update(stream[start:start + 37])]
    scale = float(np.median(stream[:WARMUP]))
    assert m.scale == scale
    params = {**REGRESSION_DEFAULTS.get(name, {}), **PARAMS[name]}
    want = [WARMUP + i for i in _direct(name, params, stream[WARMUP:] / scale)]
    assert hits == want and want and m.n == stream.shape[0]


def test_regression_warm_up_survives_a_restart():
    stream = 1e5 * _stream(binary=False, seed=5)
    whole = ConceptMonitor("PageHinkley", task="regression")
    want = whole.update(stream)
    first = ConceptMonitor("PageHinkley", task="regression")
    got = first.update(stream[:60])  # in the middle of the warm-up
    second = ConceptMonitor.from_state(json.loads(json.dumps(first.to_state())))
    got += [60 + i for i in second.update(stream[60:])]
    assert got == want and want and second.scale == whole.scale


def test_page_hinkley_regression_defaults_apply_to_unset_parameters_only():
    ph = make_detector("PageHinkley", {"threshold": 30.0}, task="regression")
    assert (ph.delta, ph.threshold) == (0.1, 30.0)
    ph = make_detector("PageHinkley", task="binary")
    assert (ph.delta, ph.threshold) == (0.005, 50.0)  # River's defaults for 0/1 errors


def test_error_scale_is_robust_and_never_zero():
    assert error_scale(np.array([1.0, 2.0, 3.0, 1e9])) == 2.5
    assert error_scale(np.array([0.0, 0.0, 0.0, 8.0])) == 2.0  # median 0: the mean
    assert error_scale(np.zeros(5)) == 1.0


@pytest.mark.parametrize("name", CONCEPT_DETECTORS)
def test_state_survives_a_restart(name):
    stream = _stream(binary=True, seed=3, seg=_seg(name))
    whole = ConceptMonitor(name, PARAMS[name])
    want = whole.update(stream)
    cut = stream.shape[0] // 3
    first = ConceptMonitor(name, PARAMS[name])
    got = first.update(stream[:cut])
    state = json.loads(json.dumps(first.to_state()))
    second = ConceptMonitor.from_state(state)
    got += [cut + i for i in second.update(stream[cut:])]
    assert any(h >= cut for h in want), "the test needs a change after the restart"
    assert got == want and second.events == whole.events and second.n == whole.n


def test_kswin_defaults_to_a_fixed_seed():
    assert make_detector("KSWIN").seed == 0
    a, b = ConceptMonitor("KSWIN"), ConceptMonitor("KSWIN")
    s = _stream(True, 4, seg=150)
    assert a.update(s) == b.update(s)


def test_bad_parameters_name_the_culprit():
    with pytest.raises(ValueError, match="detector 'ADWIN' has no parameter 'delt'; allowed: "
                                         "delta, clock"):
        ConceptMonitor("ADWIN", {"delt": 0.1})
    with pytest.raises(DriftParamError, match="unknown concept-drift detector 'CUSUM'"):
        ConceptMonitor("CUSUM")
    with pytest.raises(DriftParamError, match=r"'KSWIN': bad parameters .*Alpha must be"):
        ConceptMonitor("KSWIN", {"alpha": 2.0})
    with pytest.raises(DriftParamError, match=r"'PageHinkley': bad parameters .*mode"):
        ConceptMonitor("PageHinkley", {"mode": "sideways"})
    for name in BINARY_ONLY:
        with pytest.raises(DriftParamError, match=f"{name}' takes a 0/1 error stream"):
            ConceptMonitor(name, task="regression")
    with pytest.raises(DriftParamError, match="needs 0/1 errors"):
        ConceptMonitor("DDM").update(np.array([0.0, 0.5]))
    with pytest.raises(DriftParamError, match="finite"):
        ConceptMonitor("ADWIN").update(np.array([np.nan]))


def test_error_rows_per_task():
    n = 6
    label = np.array([1.0, 0.0, np.nan, 1.0, 0.0, 1.0])
    pred = np.array([1.0, 1.0, 1.0, np.nan, 0.0, 0.0])
    cols = ModelColumns(np.zeros(n), pred, label, np.zeros(n, np.int8))
    assert error_rows("binary", cols)[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    codes = ModelColumns(np.zeros(n), np.array([0, 1, 2, -1, 2, 0]), np.array([0, 2, -1, 1, 2, 1]),
                    np.zeros(n, np.int8))
    assert error_rows("multiclass", codes)[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    reg = ModelColumns(np.zeros(n), np.array([1.0, 2.0, 3.0, np.nan, 5.0, 0.0]),
                  np.array([1.5, 2.0, np.nan, 1.0, 3.0, -1.0]), np.zeros(n, np.int8))
    assert error_rows("regression", reg)[0].tolist() == [0.5, 0.0, 2.0, 1.0]
