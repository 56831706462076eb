"""Intervals through the daemon (issue 15 item 1): every reported metric gets bounds, they
are exported as ``_lower``/``_upper`` families, and ``confidence: true`` rules page only
when the whole interval is past the threshold."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from alerts.model import Observation
from alerts.rules import evaluate
from monitor.export.collector import SlicewatchCollector
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.errors import SlicewatchError
from slices.load import load_spec_text
from slices.load_alerting import parse_alerting
from slices.spec import ModelSpec
from slices.yamlpos import Checker, load_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
%s
"""


def records(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        score = float(rng.random())
        out.append(orjson.dumps({
            "model": "m", "prediction_id": f"{seed}-{i}", "timestamp": i * 60.0 / n,
            "features": {"c": "ab"[i % 2]}, "prediction": {"score": score},
            "label": int(rng.random() < score)}))
    return out


def run(spec, recs):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)])
    daemon.run([Chunk("lines", recs)])
    return daemon, got


def test_every_metric_is_bracketed_and_exported_and_restart_free_of_batching():
    spec = load_spec_text(SPEC % "")
    # 12 000 records: 6 000 a slice, above the ECE interval's minimum (MIN_ECE_RECORDS)
    daemon, results = run(spec, records(12000, 1))
    for r in results:
        missing = set(r.metrics) - set(r.intervals) - {"count"}
        assert not missing, (r.slice, missing)
        for name, (lo, hi) in r.intervals.items():
            if name == "ece":  # biased upwards: its interval may sit below it
                assert 0 <= lo < hi, (r.slice, lo, hi)
                continue
            # (Wilson's bound of a rate of 1 is 1 − 1e-16 in floats)
            assert lo - 1e-12 <= r.metrics[name] <= hi + 1e-12, (r.slice, name, lo, hi)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    overall = next(r for r in results if r.slice == "overall")
    for metric in ("roc_auc", "f1", "accuracy", "log_loss"):
        for i, side in enumerate(("lower", "upper")):
            [sample] = [s for s in fams[f"slicewatch_slice_{metric}_{side}"].samples
                        if s.labels["slice"] == "overall"]
            assert sample.value == pytest.approx(overall.intervals[metric][i])
    # intervals are functions of exact (mergeable) state: other batch cuts give the same ones
    _, again = run(spec, records(12000, 1)[::-1])
    cut = {r.slice: dict(r.intervals) for r in again}
    for r in results:
        for name in ("f1", "pr_auc", "ece", "score_std"):
            assert cut[r.slice][name] == pytest.approx(r.intervals[name], rel=1e-9)


def test_confidence_off_and_level():
    _, results = run(load_spec_text(SPEC % "    confidence: false"), records(500, 2))
    assert all(not r.intervals for r in results)
    _, narrow = run(load_spec_text(SPEC % "    confidence: {level: 0.8}"), records(500, 2))
    _, wide = run(load_spec_text(SPEC % ""), records(500, 2))
    n, w = narrow[0].intervals["accuracy"], wide[0].intervals["accuracy"]
    assert w[0] < n[0] < n[1] < w[1]
    with pytest.raises(SlicewatchError, match="level"):
        load_spec_text(SPEC % "    confidence: {level: 1.5}")


MODELS = (ModelSpec(name="m", task="binary"),)


def rule(text, models=MODELS):
    doc = load_text("alerts:\n" + text + "\nreceivers: [{name: h, type: webhook, "
                    "url: 'http://127.0.0.1:9/'}]\nroute: {receiver: h}\n", "spec.yaml")
    checker = Checker(doc)
    spec = parse_alerting(checker, doc.data, models)
    checker.raise_if_any()
    return spec.rules[0]


def obs(value, lo, hi):
    return Observation(model="m", version="v", slice="overall", window_start=0,
                       window_end=60, metrics={"accuracy": value}, count=40,
                       intervals={"accuracy": (lo, hi)})


def test_confidence_rule_needs_the_whole_interval_past_the_bound():
    plain = rule("  - {name: a, metric: accuracy, threshold: {lower: 0.7}}")
    sure = rule("  - {name: a, metric: accuracy, threshold: {lower: 0.7}, confidence: true}")
    noisy, clear = obs(0.65, 0.5, 0.8), obs(0.6, 0.52, 0.68)
    assert evaluate(plain, noisy, lambda *a: None)[0].breached
    assert not evaluate(sure, noisy, lambda *a: None)[0].breached
    assert evaluate(sure, clear, lambda *a: None)[0].breached
    above = rule("  - {name: a, metric: accuracy, threshold: {upper: 0.5}, confidence: true}")
    assert not evaluate(above, obs(0.6, 0.45, 0.7), lambda *a: None)[0].breached
    assert evaluate(above, obs(0.6, 0.55, 0.7), lambda *a: None)[0].breached
    no_interval = Observation(model="m", version="v", slice="overall", window_start=0,
                              window_end=60, metrics={"accuracy": 0.1}, count=1)
    assert evaluate(sure, no_interval, lambda *a: None) == []  # not judged
    change = rule("  - {name: a, metric: accuracy, confidence: true, change: {baseline: "
                  "reference, absolute: -0.1, direction: higher_is_better}}")
    assert not evaluate(change, obs(0.7, 0.6, 0.85), lambda *a: 0.9)[0].breached
    assert evaluate(change, obs(0.7, 0.6, 0.75), lambda *a: 0.9)[0].breached


def test_confidence_rule_on_a_model_without_intervals_is_a_spec_error():
    off = (ModelSpec(name="m", task="binary", confidence_level=None),)
    with pytest.raises(SlicewatchError, match="turns them off"):
        rule("  - {name: a, metric: accuracy, threshold: {lower: 0.7}, confidence: true}", off)
