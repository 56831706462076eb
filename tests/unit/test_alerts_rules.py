"""Rule semantics: TFMA value and change thresholds, kinds, min_count, severity, templates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.model import DriftObservation, Observation
from alerts.rules import change_breach, evaluate, fingerprint, relative_change, value_breach
from alerts.template import render
from slices.alerting import ChangeSpec, RuleSpec, variables


def tfma_change_passes(candidate, baseline, absolute, relative, direction):
    """TFMA's GenericChangeThreshold check, restated (metrics_validator._check_threshold);
    except the zero baseline, where TFMA's ratio is NaN and ours is the limit."""
    diff = candidate - baseline
    ratio = diff / baseline if baseline != 0 else (0.0 if diff == 0 else math.copysign(
        math.inf, diff))
    if direction == "higher_is_better":
        a = -math.inf if absolute is None else absolute
        r = -math.inf if relative is None else relative
        return diff >= a and ratio >= r
    a = math.inf if absolute is None else absolute
    r = math.inf if relative is None else relative
    return diff <= a and ratio <= r


finite = st.floats(-1e6, 1e6, allow_nan=False)
maybe = st.one_of(st.none(), st.floats(-10, 10, allow_nan=False))


@given(finite, finite, maybe, maybe, st.sampled_from(["higher_is_better", "lower_is_better"]))
def test_change_breach_matches_tfma(candidate, baseline, absolute, relative, direction):
    change = ChangeSpec(baseline="previous", absolute=absolute, relative=relative,
                        direction=direction)
    expected_pass = tfma_change_passes(candidate, baseline, absolute, relative, direction)
    assert (change_breach(candidate, baseline, change) is None) == expected_pass


@pytest.mark.parametrize(("candidate", "baseline", "change", "broken"), [
    # AUC may drop by at most 0.05 (absolute, higher is better): 0.90 → 0.84 breaks it
    (0.84, 0.90, dict(absolute=-0.05, direction="higher_is_better"), True),
    (0.86, 0.90, dict(absolute=-0.05, direction="higher_is_better"), False),
    # "no worse than baseline" (TFMA docs' -1e-10)
    (0.90, 0.90, dict(absolute=-1e-10, direction="higher_is_better"), False),
    (0.8999, 0.90, dict(absolute=-1e-10, direction="higher_is_better"), True),
    # MAE may grow by at most 20 % (relative, lower is better)
    (12.5, 10.0, dict(relative=0.2, direction="lower_is_better"), True),
    (11.9, 10.0, dict(relative=0.2, direction="lower_is_better"), False),
    # both bounds must pass
    (10.5, 10.0, dict(absolute=1.0, relative=0.01, direction="lower_is_better"), True),
    # baseline 0: unchanged never breaks, any move away breaks a relative bound
    (0.0, 0.0, dict(relative=0.5, direction="lower_is_better"), False),
    (0.001, 0.0, dict(relative=0.5, direction="lower_is_better"), True),
    (0.001, 0.0, dict(absolute=0.01, direction="lower_is_better"), False),
    (-0.001, 0.0, dict(relative=-0.5, direction="higher_is_better"), True),
])
def test_change_examples(candidate, baseline, change, broken):
    spec = ChangeSpec(baseline="previous", **change)
    assert (change_breach(candidate, baseline, spec) is not None) == broken


def test_relative_change_zero_baseline():
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.3, 0.0) == math.inf
    assert relative_change(-0.3, 0.0) == -math.inf
    assert relative_change(-0.1, 0.5) == pytest.approx(-0.2)


def test_value_breach_bounds_inclusive():
    assert value_breach(0.7, 0.7, 0.9) is None and value_breach(0.9, 0.7, 0.9) is None
    assert value_breach(0.69, 0.7, 0.9) == "< 0.7"
    assert value_breach(0.91, 0.7, 0.9) == "> 0.9"


def obs(**kw):
    base = dict(model="fraud", version="v2", slice="country=DE", window_start=0.0,
                window_end=60.0, metrics={"roc_auc": 0.65}, count=500)
    return Observation(**{**base, **kw})


def no_baseline(o, change, metric):
    return None


def rule(**kw):
    base = dict(name="auc", kind="metric", metric="roc_auc", lower=0.7)
    return RuleSpec(**{**base, **kw})


def test_metric_threshold_verdict_and_labels():
    [v] = evaluate(rule(labels={"team": "risk"}), obs(), no_baseline)
    assert v.breached and v.value == 0.65 and v.threshold == "< 0.7"
    assert v.labels == {"team": "risk", "alertname": "auc", "model": "fraud", "version": "v2",
                        "slice": "country=DE", "severity": "warning"}
    [ok] = evaluate(rule(), obs(metrics={"roc_auc": 0.8}), no_baseline)
    assert not ok.breached


def test_critical_slice_raises_severity():
    [v] = evaluate(rule(severity="info"), obs(critical=True), no_baseline)
    assert v.labels["severity"] == "critical"


@pytest.mark.parametrize("observation", [
    obs(count=99),  # below min_count
    obs(metrics={"roc_auc": float("nan")}),  # undefined metric
    obs(metrics={}),  # missing metric
    obs(model="pricing"),  # another model
    obs(slice="overall"),  # slice filter
])
def test_no_verdict(observation):
    r = rule(model="fraud", min_count=100, slices=("country=*",))
    assert evaluate(r, observation, no_baseline) == []


def test_change_rule_uses_baseline_and_skips_without_one():
    r = rule(lower=None, change=ChangeSpec(baseline="reference", absolute=-0.05,
                                           direction="higher_is_better"))
    assert evaluate(r, obs(), no_baseline) == []
    [v] = evaluate(r, obs(), lambda o, c, m: 0.75)
    assert v.breached and v.baseline == 0.75 and v.threshold.startswith("diff -0.1 < -0.05")
    [v] = evaluate(r, obs(), lambda o, c, m: 0.68)
    assert not v.breached


def test_drift_concept_quality_rules():
    o = obs(drift=[DriftObservation("amount", "ks", 0.3, 1e-6, True),
                   DriftObservation("age", "psi", 0.05, None, False)],
            concept_drift_events=2, quality={"amount": {"missing_rate": 0.2},
                                             "age": {"missing_rate": 0.0}})
    drift = evaluate(RuleSpec(name="d", kind="drift"), o, no_baseline)
    assert [(v.labels["feature"], v.breached) for v in drift] == [("amount", True),
                                                                 ("age", False)]
    only = evaluate(RuleSpec(name="d", kind="drift", features=("age",)), o, no_baseline)
    assert [v.labels["feature"] for v in only] == ["age"]
    [c] = evaluate(RuleSpec(name="c", kind="concept_drift"), o, no_baseline)
    assert c.breached and c.value == 2
    q = evaluate(RuleSpec(name="q", kind="quality", check="missing_rate", upper=0.1), o,
                 no_baseline)
    assert {v.labels["feature"]: v.breached for v in q} == {"amount": True, "age": False}


def test_fingerprint_stable_and_order_free():
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})
    assert len(fingerprint({})) == 16


def test_template_is_plain_substitution():
    assert variables("{{ model }}/{{slice}} {{ value }}") == ["model", "slice", "value"]
    out = render("{{ model }} {{ value }} {{ missing }} {{ __class__ }}",
                 {"model": "fraud", "value": 0.123456})
    assert out == "fraud 0.1235  "
    # no expression evaluation
    assert render("{{ 1+1 }}", {}) == "{{ 1+1 }}"
