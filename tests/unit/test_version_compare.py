"""Candidate vs baseline versions (issue 15 item 2): the difference intervals against
independent formulas (scipy's Wilson bounds → Newcombe; Wald difference of DeLong AUCs;
McNemar's paired variance), their coverage by simulation (nominal ± 2 points over ≥ 1000
windows), paired narrower than unpaired on correlated shadow traffic, and the daemon's
per-slice comparisons."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from scipy import stats

from monitor.core.compare import compare_metrics, mover, pairs_in_window, replicate_diff
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import BootstrapLabel
from monitor.core.metrics.intervals import delong_binned, wilson
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.errors import SlicewatchError
from slices.load import load_spec_text
from slices.spec import CompareSpec

LEVEL = 0.95
WINDOWS = 2000


def covered(lo, hi, truth) -> float:
    return float(np.mean((np.asarray(lo) <= truth) & (truth <= np.asarray(hi))))


# ---- against independent formulas -------------------------------------------------------

def test_mover_on_wilson_is_newcombes_hybrid_score_interval():
    k1, n1, k2, n2 = 160, 200, 141, 190
    w1 = stats.binomtest(k1, n1).proportion_ci(LEVEL, method="wilson")
    w2 = stats.binomtest(k2, n2).proportion_ci(LEVEL, method="wilson")
    p1, p2 = k1 / n1, k2 / n2
    # Newcombe (1998), method 10, for p2 − p1
    d = p2 - p1
    ref = (d - np.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2),
           d + np.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2))
    lo1, hi1 = wilson(k1, n1, LEVEL)
    lo2, hi2 = wilson(k2, n2, LEVEL)
    got = mover(p1, float(lo1), float(hi1), p2, float(lo2), float(hi2))
    assert got == pytest.approx((d, *ref), abs=1e-12)


def test_mover_on_wald_intervals_is_the_wald_difference():
    z = stats.norm.ppf(0.975)
    a, se_a, b, se_b = 0.81, 0.02, 0.78, 0.03
    _, lo, hi = mover(a, a - z * se_a, a + z * se_a, b, b - z * se_b, b + z * se_b)
    half = z * np.hypot(se_a, se_b)
    assert (lo, hi) == pytest.approx((b - a - half, b - a + half), abs=1e-12)


def test_pairs_in_window():
    specs = (CompareSpec("v3", "v4"), CompareSpec("v3"), CompareSpec("v9", "v4", True))
    assert pairs_in_window(specs, {"v3", "v4", "v5", "__other__"}) == [
        ("v3", "v4", False), ("v3", "v5", False)]
    assert pairs_in_window(specs, {"v4", "v5"}) == []


# ---- coverage by simulation -------------------------------------------------------------

def test_unpaired_rate_difference_coverage():
    rng = np.random.default_rng(31)
    p1, p2, n1, n2 = 0.80, 0.74, 300, 250
    k1, k2 = rng.binomial(n1, p1, WINDOWS), rng.binomial(n2, p2, WINDOWS)
    lo1, hi1 = wilson(k1, n1, LEVEL)
    lo2, hi2 = wilson(k2, n2, LEVEL)
    _, lo, hi = mover(k1 / n1, lo1, hi1, k2 / n2, lo2, hi2)
    assert covered(lo, hi, p2 - p1) == pytest.approx(LEVEL, abs=0.02)


def test_unpaired_delong_auc_difference_coverage():
    rng = np.random.default_rng(32)
    bins = 512
    offs = np.arange(WINDOWS)[:, None] * bins

    def version(shift, n_pos, n_neg):
        pos, neg = rng.normal(shift, 1, (WINDOWS, n_pos)), rng.normal(0, 1, (WINDOWS, n_neg))

        def hist(x):
            b = np.clip((stats.norm.cdf(x / 2) * bins).astype(int), 0, bins - 1)
            return np.bincount((b + offs).ravel(),
                               minlength=WINDOWS * bins).reshape(WINDOWS, bins)
        return delong_binned(hist(neg), hist(pos), LEVEL), stats.norm.cdf(shift / np.sqrt(2))

    (a1, l1, h1), t1 = version(1.0, 120, 200)
    (a2, l2, h2), t2 = version(0.8, 100, 220)
    _, lo, hi = mover(a1, l1, h1, a2, l2, h2)
    assert covered(lo, hi, t2 - t1) == pytest.approx(LEVEL, abs=0.02)


def _shadow(rng, windows, n, agree):
    """Shadow traffic: the same ``n`` records per window scored by two versions. Baseline
    right w.p. 0.80; the candidate repeats the baseline's prediction w.p. ``agree``, else is
    right w.p. 0.5: candidate accuracy = agree·0.8 + (1 − agree)·0.5."""
    y = (rng.random((windows, n)) < 0.4).astype(float)
    p_b = np.where(rng.random((windows, n)) < 0.8, y, 1 - y)
    own = np.where(rng.random((windows, n)) < 0.5, y, 1 - y)
    p_c = np.where(rng.random((windows, n)) < agree, p_b, own)
    truth = (agree * 0.8 + (1 - agree) * 0.5) - 0.8
    return y, p_b, p_c, truth


def _boot(y, p, keys, windows, n):
    cols = ModelColumns(np.where(p == 1, 0.7, 0.3), p, y, np.zeros(y.size, np.int8), key=keys)
    accs = [BootstrapLabel("binary", ("accuracy",), 200) for _ in range(windows)]
    BootstrapLabel.update_many(cols, [(a, np.arange(i * n, (i + 1) * n))
                                      for i, a in enumerate(accs)])
    return [a.replicates_of()["accuracy"] for a in accs]


def test_paired_bootstrap_coverage_and_narrower_than_unpaired():
    rng = np.random.default_rng(33)
    windows, n = 1000, 600
    y, p_b, p_c, truth = _shadow(rng, windows, n, agree=0.8)
    keys = rng.integers(0, 2**63, y.size).astype(np.uint64)  # one prediction id, 2 versions
    rb = _boot(y.ravel(), p_b.ravel(), keys, windows, n)
    rc = _boot(y.ravel(), p_c.ravel(), keys, windows, n)
    acc_b, acc_c = (p_b == y).mean(axis=1), (p_c == y).mean(axis=1)
    paired = np.array([replicate_diff(b, c, eb, ec, LEVEL)
                       for b, c, eb, ec in zip(rb, rc, acc_b, acc_c, strict=True)])
    assert covered(paired[:, 1], paired[:, 2], truth) == pytest.approx(LEVEL, abs=0.02)
    # the unpaired interval (Newcombe) ignores the correlation: ≈ 1.85× wider here
    lo1, hi1 = wilson(acc_b * n, n, LEVEL)
    lo2, hi2 = wilson(acc_c * n, n, LEVEL)
    _, ulo, uhi = mover(acc_b, lo1, hi1, acc_c, lo2, hi2)
    assert np.median(uhi - ulo) > 1.5 * np.median(paired[:, 2] - paired[:, 1])
    # McNemar's paired variance: Var(d) = (b + c − (c − b)²/n) / n², discordant b, c
    right_b, right_c = p_b == y, p_c == y
    b = (right_b & ~right_c).sum(axis=1)
    c = (~right_b & right_c).sum(axis=1)
    se = np.sqrt(b + c - (c - b) ** 2 / n) / n
    ratio = (paired[:, 2] - paired[:, 1]) / (2 * stats.norm.ppf(0.975) * se)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)


def test_unpaired_bootstrap_difference_coverage():
    rng = np.random.default_rng(34)
    windows, n = 1000, 300
    y, p_b, p_c, truth = _shadow(rng, windows, n, agree=0.8)
    y2 = y.copy()  # the candidate on other records: independent ids
    y2_rows = rng.permutation(windows)
    y2, p_c = y2[y2_rows], p_c[y2_rows]
    k1 = rng.integers(0, 2**63, y.size).astype(np.uint64)
    k2 = rng.integers(0, 2**63, y.size).astype(np.uint64)
    rb = _boot(y.ravel(), p_b.ravel(), k1, windows, n)
    rc = _boot(y2.ravel(), p_c.ravel(), k2, windows, n)
    acc_b, acc_c = (p_b == y).mean(axis=1), (p_c == y2).mean(axis=1)
    got = np.array([replicate_diff(b, c, eb, ec, LEVEL)
                    for b, c, eb, ec in zip(rb, rc, acc_b, acc_c, strict=True)])
    assert covered(got[:, 1], got[:, 2], truth) == pytest.approx(LEVEL, abs=0.02)


def test_compare_metrics_prefers_replicates_and_skips_what_has_no_interval():
    reps = np.linspace(0.5, 0.7, 201)
    base = ({"accuracy": 0.8, "pr_auc": 0.6, "count": 10}, {"accuracy": (0.7, 0.9)},
            {"pr_auc": reps})
    cand = ({"accuracy": 0.7, "pr_auc": 0.5, "score_mean": 0.3, "count": 10},
            {"accuracy": (0.6, 0.8)}, {"pr_auc": reps - 0.1})
    got = {d.metric: d for d in compare_metrics("v1", "v2", base, cand, LEVEL)}
    assert set(got) == {"accuracy", "pr_auc"}
    assert got["accuracy"].method == "mover"
    assert got["accuracy"].diff == pytest.approx(-0.1)
    assert got["pr_auc"].method == "bootstrap"
    assert got["pr_auc"].lower == pytest.approx(-0.1) == got["pr_auc"].upper


# ---- through the daemon -----------------------------------------------------------------

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
%s
"""


def shadow_records(n, seed, worse=0.0):
    """v3 and v4 score the same predictions (same ids); v4's score is noisier by ``worse``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y = int(rng.random() < 0.4)
        base = float(np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1))
        cand = float(np.clip(base + rng.normal(0, worse), 0, 1)) if worse else base
        for version, score in (("v3", base), ("v4", cand)):
            out.append(orjson.dumps({
                "model": "m", "model_version": version, "prediction_id": f"{seed}-{i}",
                "timestamp": i * 60.0 / n, "features": {"c": "ab"[i % 2]},
                "prediction": {"score": score}, "label": y}))
    return out


def run(spec, recs):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)])
    daemon.run([Chunk("lines", recs)])
    return daemon, got


@pytest.mark.parametrize("paired", [False, True])
def test_daemon_compares_versions_per_slice(paired):
    spec = load_spec_text(SPEC % f"    compare: {{baseline: v3, candidate: v4, "
                                 f"paired: {str(paired).lower()}}}")
    _, results = run(spec, shadow_records(3000, 1, worse=0.25))
    cand = {r.slice: r for r in results if r.version == "v4"}
    base = {r.slice: r for r in results if r.version == "v3"}
    assert set(cand) == {"overall", "c=a", "c=b"}
    assert all(not r.compared for r in base.values())
    for sl, r in cand.items():
        diffs = {d.metric: d for d in r.compared}
        assert {"accuracy", "roc_auc", "f1", "log_loss", "pr_auc"} <= set(diffs), sl
        for name, d in diffs.items():
            assert (d.baseline, d.candidate) == ("v3", "v4")
            assert d.diff == pytest.approx(r.metrics[name] - base[sl].metrics[name])
            assert d.lower <= d.diff <= d.upper, (sl, name, d)
        auc = diffs["roc_auc"]
        assert auc.method == ("paired_bootstrap" if paired else "mover")
        if sl == "overall":
            assert auc.upper < 0  # the noisier candidate is surely worse
    if paired:  # same records in both versions: the paired interval is much narrower
        _, unpaired = run(load_spec_text(SPEC % "    compare: {baseline: v3}"),
                          shadow_records(3000, 1, worse=0.25))
        u = {d.metric: d for r in unpaired if r.version == "v4" and r.slice == "overall"
             for d in r.compared}
        p = {d.metric: d for d in cand["overall"].compared}
        assert p["roc_auc"].upper - p["roc_auc"].lower < \
            0.7 * (u["roc_auc"].upper - u["roc_auc"].lower)


def test_compare_spec_errors():
    for text, match in (
            ("    compare: {candidate: v4}", "baseline"),
            ("    compare: {baseline: v3, candidate: v3}", "both 'v3'"),
            ("    compare: {baseline: v3, paired: yes please}", "paired"),
            ("    compare: {baseline: v3, nope: 1}", "nope"),
            ("    compare: [{baseline: 3}]", "baseline")):
        with pytest.raises(SlicewatchError, match=match) as e:
            load_spec_text(SPEC % text, "spec.yaml")
        assert "spec.yaml:" in str(e.value)


# ---- export, results history, alert rule ------------------------------------------------

def test_exported_families_and_results_history(tmp_path):
    import json

    import jsonschema
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    from monitor.export.collector import SlicewatchCollector
    from monitor.export.families import FAMILIES
    from monitor.outputs.results import result_record

    daemon, results = run(load_spec_text(SPEC % "    compare: {baseline: v3}"),
                          shadow_records(2000, 2, worse=0.2))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    overall = next(r for r in results if r.version == "v4" and r.slice == "overall")
    want = {d.metric: d for d in overall.compared}
    for suffix, field in (("", "diff"), ("_lower", "lower"), ("_upper", "upper")):
        fam = fams[f"slicewatch_version_diff{suffix}"]
        assert tuple(FAMILIES[fam.name].labels) == ("model", "slice", "metric", "baseline",
                                                     "candidate")
        got = {s.labels["metric"]: s.value for s in fam.samples
               if s.labels["slice"] == "overall"}
        assert got == pytest.approx({m: getattr(d, field) for m, d in want.items()})
        assert {s.labels["candidate"] for s in fam.samples} == {"v4"}
    schema = json.loads((__import__("pathlib").Path(__file__).resolve().parents[2] / "docs" /
                         "results.schema.json").read_text())
    line = json.loads(json.dumps(result_record(overall)))
    jsonschema.validate(line, schema)
    assert {d["metric"] for d in line["compared"]} == set(want)


def shadow_windows(windows, n, worse_from):
    """``windows`` one-minute windows of shadow traffic; v4 gets worse from ``worse_from``."""
    out = []
    for w in range(windows):
        for line in shadow_records(n, 10 + w, worse=0.3 if w >= worse_from else 0.0):
            rec = orjson.loads(line)
            rec["timestamp"] += 60.0 * w
            out.append(orjson.dumps(rec))
    return out


ALERTING = """
receivers: [{name: h, type: webhook, url: 'http://127.0.0.1:9/'}]
route: {receiver: h, group_wait: 0s}
alerts:
  - name: candidate_worse
    model: m
    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: 0.02}
    confidence: true
    slices: [overall]
"""


def test_compare_alert_fires_once_when_the_candidate_gets_worse(tmp_path):
    from alerts.engine import AlertEngine
    from monitor.outputs.alerting import to_observation

    spec = load_spec_text(SPEC % "    compare: {baseline: v3, paired: true}" + ALERTING)
    assert spec.models[0].compare[0].paired
    _, results = run(spec, shadow_windows(5, 1500, worse_from=2))
    engine = AlertEngine(spec.alerting, str(tmp_path / "alerts.sqlite"), clock=lambda: 0.0,
                         notify=False)
    events: list = []
    for end in sorted({r.window_end for r in results}):
        engine.observe([to_observation(r) for r in results if r.window_end == end],
                       now=end, events=events)
    assert [(e.status, e.alert.labels["version"], e.alert.labels["slice"])
            for e in events] == [("firing", "v4", "overall")]
    fired = events[0].alert
    assert fired.window_start == min(r.window_start for r in results) + 120  # 3rd window
    assert fired.metric == "roc_auc" and fired.value < -0.02
    engine.close()


def test_a_compare_rule_adds_its_pair_to_the_model():
    spec = load_spec_text(SPEC % "" + ALERTING)
    assert [(c.baseline, c.candidate, c.paired) for c in spec.models[0].compare] == [
        ("v3", "v4", False)]
    _, results = run(spec, shadow_records(1000, 3, worse=0.2))
    assert any(r.compared for r in results if r.version == "v4")


def test_compare_rule_spec_errors():
    base = SPEC % "" + """
receivers: [{name: h, type: webhook, url: 'http://127.0.0.1:9/'}]
route: {receiver: h}
alerts:
  - name: x
    model: m
%s
"""
    cases = (
        ("    compare: {baseline: v3, candidate: v4, metric: roc_auc}", "max_drop"),
        ("    compare: {baseline: v3, candidate: v3, metric: roc_auc, max_drop: 0}",
         "both 'v3'"),
        ("    compare: {baseline: v3, candidate: v4, metric: roc_acu, max_drop: 0.1}",
         "did you mean 'roc_auc'"),
        ("    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: -0.1}",
         "max_drop must be >= 0"),
        ("    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: 0.1, "
         "direction: up}", "unknown direction"),
        ("    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: 0.1}\n"
         "    metric: roc_auc", "exactly one of .*got metric, compare"),
        ("    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: 0.1}\n"
         "    threshold: {lower: 0.5}", "'threshold' does not go with 'compare'"),
    )
    for text, match in cases:
        with pytest.raises(SlicewatchError, match=match) as e:
            load_spec_text(base % text, "spec.yaml")
        assert "spec.yaml:" in str(e.value) and "alerts[0]" in str(e.value)
    rule = "    compare: {baseline: v3, candidate: v4, metric: roc_auc, max_drop: 0.1}"
    off = (base % rule).replace("slices: [", "confidence: false\n    slices: [")
    with pytest.raises(SlicewatchError, match="needs metric intervals"):
        load_spec_text(off, "spec.yaml")


def test_prometheus_rule_generation_skips_compare_rules_with_a_note():
    from monitor.generate.promrules import rules_document

    doc, notes = rules_document(load_spec_text(SPEC % "" + ALERTING))
    assert doc == {"groups": []}
    assert any("candidate_worse" in n and "judged by the daemon only" in n for n in notes)
