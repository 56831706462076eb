"""Validation of the alerting sections: every problem reported, with its path and bound."""

from __future__ import annotations

import pytest

from slices.alerting import GROUP_BY_ALL, Matcher
from slices.load_alerting import parse_alerting
from slices.spec import DriftSpec, FeatureSpec, ModelSpec
from slices.yamlpos import Checker, load_text

MODELS = (ModelSpec(name="fraud", task="binary", features=(FeatureSpec("amount"),),
                    drift=DriftSpec(enabled=True, rolling_windows=1)),
          ModelSpec(name="pricing", task="regression"))

GOOD = """
alerts:
  - name: auc_low
    model: fraud
    metric: roc_auc
    threshold: {lower: 0.7}
    for: 2
    severity: error
    slices: ["country=*"]
    labels: {team: risk}
    annotations:
      summary: "{{ model }} {{ slice }} auc {{ value }} < {{ threshold }}"
  - name: auc_drop
    model: fraud
    metric: roc_auc
    change: {baseline: version, version: v1, absolute: -0.05, direction: higher_is_better}
  - name: mae_up
    model: pricing
    metric: mae
    change: {baseline: previous, relative: 0.2, direction: lower_is_better}
  - name: drifted
    drift: {features: [amount]}
  - name: concept
    concept_drift: true
  - name: missing
    quality: {feature: amount, check: missing_ratio, upper: 0.1}
    min_count: 100
    flapping: false
receivers:
  - {name: slack, type: slack, url: "${SLACK_URL}"}
  - {name: pd, type: pagerduty, routing_key: "${PD_KEY}"}
  - {name: hook, type: webhook, url: "http://127.0.0.1:1/x", secret: "${HOOK_SECRET}"}
  - {name: am, type: alertmanager, url: "http://127.0.0.1:9093", resend_interval: 30s}
route:
  receiver: slack
  group_by: [model]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"', 'team=~"risk|ops"']
      receiver: pd
      continue: true
      group_by: ['...']
    - matchers: {model: pricing}
      receiver: am
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|info"']
    equal: [model, slice]
"""


def parse(text: str, models=MODELS):
    doc = load_text(text, "spec.yaml")
    checker = Checker(doc)
    spec = parse_alerting(checker, doc.data, models)
    return spec, [(p.path, p.message) for p in checker.problems], checker


def test_good_spec_builds_every_part():
    spec, problems, _ = parse(GOOD)
    assert problems == []
    rules = {r.name: r for r in spec.rules}
    assert rules["auc_low"].lower == 0.7 and rules["auc_low"].upper is None
    assert rules["auc_low"].for_windows == 2 and rules["auc_low"].severity == "error"
    assert rules["auc_low"].applies_to("fraud", "country=DE")
    assert not rules["auc_low"].applies_to("fraud", "overall")
    assert rules["auc_drop"].change.version == "v1" and rules["auc_drop"].change.absolute == -0.05
    assert rules["mae_up"].change.direction == "lower_is_better"
    assert rules["drifted"].kind == "drift" and rules["drifted"].features == ("amount",)
    assert rules["concept"].kind == "concept_drift"
    assert rules["missing"].check == "missing_ratio" and rules["missing"].upper == 0.1
    assert rules["missing"].flap_changes == 0 and rules["missing"].min_count == 100
    assert spec.receiver("pd").url == "https://events.pagerduty.com/v2/enqueue"
    assert spec.receiver("am").resend_interval == 30.0
    assert spec.route.group_wait == 10.0 and spec.route.group_by == ("model",)
    crit, pricing = spec.route.routes
    assert crit.matchers == (Matcher("severity", "=", "critical"),
                             Matcher("team", "=~", "risk|ops"))
    assert crit.continue_ and crit.group_by == (GROUP_BY_ALL,)
    assert crit.group_wait == 10.0  # inherited from the parent
    assert pricing.group_by == ("model",) and pricing.receiver == "am"
    assert spec.inhibit_rules[0].target == (Matcher("severity", "=~", "warning|info"),)


def test_secrets_not_in_repr():
    spec, _, _ = parse(GOOD)
    assert "HOOK_SECRET" not in repr(spec.receiver("hook"))
    assert "PD_KEY" not in repr(spec)


def test_no_alerting_sections_gives_none():
    spec, problems, _ = parse("models: []\n")
    assert spec is None and problems == []


def test_single_receiver_needs_no_route():
    spec, problems, _ = parse("alerts:\n  - {name: c, concept_drift: true}\n"
                              "receivers:\n  - {name: s, type: slack, url: 'http://x'}\n")
    assert problems == [] and spec.route.receiver == "s"


@pytest.mark.parametrize(("snippet", "path", "needle"), [
    ("{name: a, model: fraud, metric: mae, threshold: {lower: 1}}", "alerts[0].metric",
     "unknown metric 'mae' for binary models"),
    ("{name: a, model: nope, concept_drift: true}", "alerts[0].model", "unknown model 'nope'"),
    ("{name: a, metric: roc_auc, threshold: {lower: 0.9, upper: 0.1}}",
     "alerts[0].threshold.lower", "lower (0.9) must be <= upper (0.1)"),
    ("{name: a, metric: roc_auc, threshold: {upper: high}}", "alerts[0].threshold.upper",
     "expected a finite number"),
    ("{name: a, metric: roc_auc, threshold: {}}", "alerts[0].threshold",
     "needs 'lower' and/or 'upper'"),
    ("{name: a, metric: roc_auc}", "alerts[0]", "needs 'threshold' and/or 'change'"),
    ("{name: a, metric: roc_auc, change: {baseline: yesterday, absolute: 1, "
     "direction: higher_is_better}}", "alerts[0].change.baseline", "unknown baseline"),
    ("{name: a, metric: roc_auc, change: {baseline: previous, absolute: 1, direction: up}}",
     "alerts[0].change.direction", "unknown direction 'up'"),
    ("{name: a, metric: roc_auc, change: {baseline: previous, direction: higher_is_better}}",
     "alerts[0].change", "needs 'absolute' and/or 'relative'"),
    ("{name: a, metric: roc_auc, change: {baseline: version, absolute: 1, "
     "direction: higher_is_better}}", "alerts[0].change", "needs 'version: <model version>'"),
    ("{name: a, concept_drift: true, severity: page}", "alerts[0].severity",
     "unknown severity 'page'"),
    ("{name: a, concept_drift: true, for: 0}", "alerts[0].for", "expected an integer >= 1"),
    ("{name: a, concept_drift: true, min_count: -1}", "alerts[0].min_count",
     "expected an integer >= 0"),
    ("{name: a, concept_drift: true, drift: true}", "alerts[0]", "exactly one of"),
    ("{name: a, concept_drift: true, annotations: {summary: '{{ oops }}'}}",
     "alerts[0].annotations.summary", "unknown template variable {{ oops }}"),
    ("{name: a, concept_drift: true, labels: {severity: x}}", "alerts[0].labels.severity",
     "cannot be overridden"),
    ("{name: a, concept_drift: true, treshold: 1}", "alerts[0].treshold",
     "did you mean 'threshold'"),
    ("{name: a, quality: {feature: amount, upper: 1}}", "alerts[0].quality",
     "missing required key 'check'"),
    ("{name: a, concept_drift: true, flapping: {window: 5, changes: 5}}",
     "alerts[0].flapping.changes", "must be <= window - 1 (4)"),
])
def test_rule_errors(snippet, path, needle):
    text = (f"alerts:\n  - {snippet}\nreceivers:\n  - {{name: s, type: slack, url: 'http://x'}}\n")
    spec, problems, _ = parse(text)
    assert spec is None
    assert any(p == path and needle in m for p, m in problems), problems


@pytest.mark.parametrize(("receivers", "route", "path", "needle"), [
    ("[{name: s, type: email, url: x}]", "{receiver: s}", "receivers[0].type",
     "unknown receiver type 'email'"),
    ("[{name: s, type: slack}]", "{receiver: s}", "receivers[0]", "missing required key 'url'"),
    ("[{name: p, type: pagerduty}]", "{receiver: p}", "receivers[0]",
     "missing required key 'routing_key'"),
    ("[{name: s, type: slack, url: 'http://${BAD-NAME}'}]", "{receiver: s}", "receivers[0].url",
     "invalid environment reference ${BAD-NAME}"),
    ("[{name: s, type: slack, url: 'http://${OPEN'}]", "{receiver: s}", "receivers[0].url",
     "unterminated ${"),
    ("[{name: s, type: slack, url: x}, {name: s, type: slack, url: y}]", "{receiver: s}",
     "receivers[1].name", "duplicate receiver name 's'"),
    ("[{name: s, type: slack, url: x}]", "{receiver: nobody}", "route.receiver",
     "unknown receiver 'nobody'"),
    ("[{name: s, type: slack, url: x}]", "{receiver: s, routes: [{receiver: t}]}",
     "route.routes[0].receiver", "unknown receiver 't'"),
    ("[{name: s, type: slack, url: x}]", "{receiver: s, group_wait: soon}", "route.group_wait",
     "invalid duration 'soon'"),
    ("[{name: s, type: slack, url: x}]", "{receiver: s, repeat_interval: 0}",
     "route.repeat_interval", "must be longer than 0 seconds"),
    ("[{name: s, type: slack, url: x}]",
     "{receiver: s, routes: [{matchers: ['severity=~\"(\"']}]}",
     "route.routes[0].matchers[0]", "invalid regular expression"),
    ("[{name: s, type: slack, url: x}]", "{receiver: s, routes: [{matchers: ['sev ~ x']}]}",
     "route.routes[0].matchers[0]", "invalid matcher"),
    ("[{name: s, type: slack, url: x}]", "{receiver: s, matchers: ['a=b']}", "route.matchers",
     "takes no matchers"),
])
def test_receiver_and_route_errors(receivers, route, path, needle):
    text = (f"alerts:\n  - {{name: a, concept_drift: true}}\nreceivers: {receivers}\n"
            f"route: {route}\n")
    spec, problems, _ = parse(text)
    assert spec is None
    assert any(p == path and needle in m for p, m in problems), problems


def test_all_problems_reported_with_lines():
    text = ("alerts:\n"
            "  - {name: a, metric: roc_auc, threshold: {lower: x}}\n"
            "  - {name: a, concept_drift: true, severity: loud}\n"
            "receivers:\n  - {name: s, type: slack, url: x}\n")
    spec, problems, checker = parse(text)
    assert spec is None
    paths = [p for p, _ in problems]
    assert "alerts[0].threshold.lower" in paths and "alerts[1].severity" in paths
    line = {p.path: p.line for p in checker.problems}
    assert line["alerts[0].threshold.lower"] == 2 and line["alerts[1].severity"] == 3


def test_missing_route_with_several_receivers():
    text = ("alerts:\n  - {name: a, concept_drift: true}\nreceivers:\n"
            "  - {name: s, type: slack, url: x}\n  - {name: t, type: slack, url: y}\n")
    spec, problems, _ = parse(text)
    assert spec is None and any("need a 'route'" in m for _, m in problems)


@pytest.mark.parametrize("receiver, path", [
    ("{name: p, type: pagerduty, routing_key: k, source: '${OTHER_TEAM_KEY}'}",
     "receivers[0].source"),
    ("{name: a, type: alertmanager, url: 'http://x', generator_url: 'http://g/${TOKEN}'}",
     "receivers[0].generator_url"),
])
def test_env_references_only_in_credential_fields(receiver, path):
    """#11.10: ${...} is expanded only where credentials go; elsewhere it is an error."""
    spec, problems, _ = parse(f"alerts:\n  - {{name: c, concept_drift: true}}\n"
                              f"receivers:\n  - {receiver}\n")
    assert spec is None
    assert any(p == path and "is expanded only in url, secret, routing_key and headers" in m
               for p, m in problems), problems


def test_retry_max_delay_and_credential_fields_parse():
    spec, problems, _ = parse(
        "alerts:\n  - {name: c, concept_drift: true}\nreceivers:\n"
        "  - {name: h, type: webhook, url: '${HOOK_URL}', secret: '${S}', retry_max_delay: 5s,"
        " headers: {Authorization: 'Bearer ${TOKEN}'}}\n")
    assert problems == []
    assert spec.receiver("h").retry_max_delay == 5.0
    assert spec.receiver("h").headers == {"Authorization": "Bearer ${TOKEN}"}


QUALITY_OLD = """
alerts:
  - {name: a, quality: {feature: amount, check: missing_rate, upper: 0.1}}
  - {name: b, quality: {feature: amount, check: missing_rate, upper: 0.2}}
  - {name: c, quality: {feature: amount, check: unseen_share, upper: 0.2}}
  - {name: d, quality: {feature: amount, check: out_of_range_ratio, upper: 0.2}}
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:1/x"}]
"""


def test_quality_checks_use_the_metric_names_old_ones_deprecated_once():
    spec, problems, checker = parse(QUALITY_OLD)
    assert problems == []
    checks = {r.name: r.check for r in spec.rules}
    assert checks == {"a": "missing_ratio", "b": "missing_ratio", "c": "unseen_category_ratio",
                      "d": "out_of_range_ratio"}
    warnings = [w.message for w in checker.warnings]
    assert warnings == [
        "warning: quality check 'missing_rate' is deprecated; use 'missing_ratio' (the "
        "exported metric slicewatch_data_missing_ratio)",
        "warning: quality check 'unseen_share' is deprecated; use 'unseen_category_ratio' (the "
        "exported metric slicewatch_data_unseen_category_ratio)"]


def test_every_quality_check_names_an_exported_family():
    from monitor.export.collector import QUALITY_HELP
    from monitor.export.families import FAMILIES, QUALITY_FAMILIES
    from slices.vocab import QUALITY_CHECKS

    assert set(QUALITY_HELP) == set(QUALITY_CHECKS) == set(QUALITY_FAMILIES)
    for check in QUALITY_CHECKS:
        assert QUALITY_HELP[check][0] == QUALITY_FAMILIES[check] == f"slicewatch_data_{check}"
        assert QUALITY_FAMILIES[check] in FAMILIES


def test_a_deprecated_check_still_fires_on_the_daemons_numbers():
    """The names the daemon hands to alerts are the ones rules carry after loading."""
    import math

    from alerts.model import Observation
    from alerts.rules import evaluate
    from monitor.drift.quality import Quality
    from monitor.drift.stage import _feature_quality

    spec, _, _ = parse(QUALITY_OLD)
    numbers = _feature_quality(Quality("amount", "numeric", 10, 0.5, 0, 0.9, math.nan, 0)).to_dict()
    obs = Observation(model="fraud", version="v1", slice="overall", window_start=0.0,
                      window_end=60.0, count=10, metrics={}, quality={"amount": numbers})
    fired = {v.rule.name for r in spec.rules for v in evaluate(r, obs, lambda *a: None)
             if v.breached}
    assert fired == {"a", "b", "d"}


def test_validate_prints_the_deprecation_once_and_exits_0(tmp_path, capsys):
    from monitor import cli

    spec = tmp_path / "s.yaml"
    spec.write_text("models:\n  - name: fraud\n    task: binary\n    features: {amount: numeric}"
                    "\n    drift: {rolling_windows: 1}\n" + QUALITY_OLD)
    assert cli.main(["validate", "-c", str(spec)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(": warning: quality check '" in line for line in err), err
    assert err[0].startswith(f"{spec}:8:49: alerts[0].quality.check: warning: "), err
