"""``multivariate_drift: true`` alert rules (issue 15 item 3): breached while the slice's PCA
reconstruction error is outside its reference band, not judged without a fit; spec errors."""

from __future__ import annotations

import pytest

from alerts.rules import evaluate
from monitor.core.types import MultivariateDrift, SliceResult
from monitor.generate.promrules import rules_document
from monitor.outputs.alerting import to_observation
from slices.errors import SlicewatchError
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {a: numeric, b: numeric}
    drift: {rolling_windows: 2%s}
receivers: [{name: h, type: webhook, url: 'http://127.0.0.1:9/'}]
route: {receiver: h}
alerts:
  - {name: joint, model: m, %s}
"""


def result(mv: MultivariateDrift | None) -> SliceResult:
    return SliceResult(model="m", version="v1", slice_name="overall", slice="overall",
                       critical=False, window_start=0.0, window_end=60.0, count=500,
                       metrics={"count": 500}, multivariate=mv)


def test_breached_outside_the_band_and_not_judged_without_a_fit():
    spec = load_spec_text(SPEC % ("", "multivariate_drift: true"))
    rule = spec.alerting.rules[0]
    outside = to_observation(result(MultivariateDrift(1.9, 0.8, 1.2, True, 500, "overall")))
    inside = to_observation(result(MultivariateDrift(1.0, 0.8, 1.2, False, 500, "overall")))
    [v] = evaluate(rule, outside, lambda *a: None)
    assert v.breached and v.value == 1.9 and v.metric == "multivariate_drift"
    assert v.threshold == "outside [0.8, 1.2]"
    [v] = evaluate(rule, inside, lambda *a: None)
    assert not v.breached
    assert evaluate(rule, to_observation(result(None)), lambda *a: None) == []
    doc, notes = rules_document(spec)
    assert doc == {"groups": []} and any("joint" in n for n in notes)


@pytest.mark.parametrize("drift, rule, match", [
    ("", "multivariate_drift: false", "must be true"),
    (", multivariate: false", "multivariate_drift: true", "turns it off"),
    ("", "multivariate_drift: true, threshold: {lower: 1}", "belongs to 'metric'"),
])
def test_spec_errors(drift, rule, match):
    with pytest.raises(SlicewatchError, match=match) as e:
        load_spec_text(SPEC % (drift, rule), "spec.yaml")
    assert "spec.yaml:" in str(e.value) and "alerts[0]" in str(e.value)


def test_needs_a_drift_section():
    text = (SPEC % ("", "multivariate_drift: true")).replace(
        "    drift: {rolling_windows: 2}\n", "")
    with pytest.raises(SlicewatchError, match="needs drift checks"):
        load_spec_text(text, "spec.yaml")


# ---- CBPE: 'estimated' rules -------------------------------------------------------------

def _cbpe(values, intervals):
    from monitor.core.types import EstimatedPerformance

    r = result(None)
    return to_observation(SliceResult(**{**r.__dict__, "estimated": EstimatedPerformance(
        values, intervals, {})}))


def _profile_spec(tmp_path, rule):
    (tmp_path / "p.json").write_text("{}")
    return SPEC.replace("rolling_windows: 2%s", f"profile: {tmp_path / 'p.json'}") % rule


def test_estimated_rule_judges_the_cbpe_estimate(tmp_path):
    spec = load_spec_text(_profile_spec(
        tmp_path, "estimated: {metric: accuracy, threshold: {lower: 0.8}}"))
    rule = spec.alerting.rules[0]
    [v] = evaluate(rule, _cbpe({"accuracy": 0.7}, {"accuracy": (0.65, 0.75)}), lambda *a: None)
    assert v.breached and v.value == 0.7 and v.metric == "estimated_accuracy"
    [v] = evaluate(rule, _cbpe({"accuracy": 0.85}, {}), lambda *a: None)
    assert not v.breached
    assert evaluate(rule, _cbpe({}, {}), lambda *a: None) == []  # not estimated
    sure = load_spec_text(_profile_spec(
        tmp_path, "estimated: {metric: accuracy, threshold: {lower: 0.8}}, confidence: true"))
    # the interval reaches above 0.8: not surely below
    [v] = evaluate(sure.alerting.rules[0], _cbpe({"accuracy": 0.78}, {"accuracy": (0.74, 0.82)}),
                   lambda *a: None)
    assert not v.breached


@pytest.mark.parametrize("rule, match", [
    ("estimated: {metric: mae, threshold: {lower: 1}}", "unknown estimated metric"),
    ("estimated: {metric: f1}", "threshold"),
    ("estimated: {metric: f1, threshold: {lower: 0.5}}, confidence: true",
     "accuracy and precision only"),
])
def test_estimated_spec_errors(tmp_path, rule, match):
    with pytest.raises(SlicewatchError, match=match) as e:
        load_spec_text(_profile_spec(tmp_path, rule), "spec.yaml")
    assert "spec.yaml:" in str(e.value) and "alerts[0]" in str(e.value)
    with pytest.raises(SlicewatchError, match="needs a binary model with a drift profile"):
        load_spec_text(SPEC % ("", "estimated: {metric: f1, threshold: {lower: 0.5}}"))
