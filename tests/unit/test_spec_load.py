"""Valid specs → typed objects: every slice kind, defaults, schema, source, server, drift."""

from __future__ import annotations

import os
import textwrap

import pytest

from slices import vocab
from slices.alerting import AlertingSpec
from slices.durations import parse_duration, parse_window
from slices.errors import SpecError
from slices.load import load_spec, load_spec_text
from slices.predicate import And, Compare, HasTag, InSet, parse_predicate
from slices.spec import SchemaSpec, ServerSpec, SourceSpec, WindowSpec

FULL = textwrap.dedent("""\
    version: 1
    schema:
      time: ts
      feature_paths: {country: ctx.country}
      class: prediction.klass
      label_record: {id: pid, label: y, time: t}
    source:
      type: file
      path: [data/a.jsonl, data/b.jsonl]
      format: jsonl
      follow: true
      batch_size: 5000
      labels: data/labels.jsonl
      dead_letter: out/dead-letter.jsonl
      kafka: {topic: preds}
    server: {listen: "0.0.0.0:9200", stale_after_windows: 5}
    checkpoint: state/slicewatch.db
    models:
      - name: fraud
        task: binary
        threshold: 0.4
        positive_label: fraud
        window: 5m
        allowed_lateness: 1m
        label_delay: 1h
        calibration_bins: 15
        metrics: [count, accuracy, roc_auc]
        features:
          amount: numeric
          hour: numeric
          country: categorical
          device: {type: categorical, test: chi2, threshold: 0.2, min_samples: 100}
        slices:
          - overall: true
          - feature_keys: [country]
            max_values: 20
          - feature_keys: [country, device]
            critical: true
          - feature_values: {country: US, hour: 3}
          - buckets: {amount: [0, 10, 100, 1000]}
          - name: big_na_new
            where: 'amount > 500 and country in ("US", "CA") and "new_user" in tags'
            critical: true
            min_size: 50
          - tags: [new_user, returning]
        drift:
          profile: profiles/fraud.json
          fdr: 0.01
          per_slice: false
          label: false
          features: [amount, country]
          concept: {detector: ADWIN, params: {delta: 0.002}}
      - name: pricing
        task: regression
        window: 10000 records
        schema: {value: out.price}
        drift: {rolling_windows: 12, concept: PageHinkley}
      - name: intent
        task: multiclass
        classes: [buy, browse, 3]
    """)


@pytest.fixture(scope="module")
def spec():
    return load_spec_text(FULL, "full.yaml")


def test_top_level(spec) -> None:
    assert spec.file == "full.yaml"
    assert [m.name for m in spec.models] == ["fraud", "pricing", "intent"]
    assert spec.schema == SchemaSpec(time="ts", feature_paths={"country": "ctx.country"},
                                     pred_class="prediction.klass", label_id="pid",
                                     label_value="y", label_time="t")
    assert spec.source == SourceSpec(type="file", paths=("data/a.jsonl", "data/b.jsonl"),
                                     format="jsonl", follow=True, batch_size=5000,
                                     labels=("data/labels.jsonl",),
                                     dead_letter="out/dead-letter.jsonl",
                                     kafka={"topic": "preds"})
    assert spec.server == ServerSpec(listen="0.0.0.0:9200", stale_after_windows=5)
    assert spec.checkpoint == "state/slicewatch.db"
    assert spec.alerting is None


def test_model_fields(spec) -> None:
    fraud = spec.model("fraud")
    assert fraud.task == "binary" and fraud.threshold == 0.4 and fraud.positive_label == "fraud"
    assert fraud.window == WindowSpec(kind="time", size=300.0, allowed_lateness=60.0)
    assert fraud.label_delay == 3600.0 and fraud.calibration_bins == 15
    assert fraud.metrics == ("count", "accuracy", "roc_auc")
    assert [(f.name, f.type) for f in fraud.features] == [
        ("amount", "numeric"), ("hour", "numeric"), ("country", "categorical"),
        ("device", "categorical")]
    device = fraud.feature("device")
    assert (device.test, device.threshold, device.min_samples) == ("chi2", 0.2, 100)
    assert spec.schema_for(fraud) is spec.schema


def test_every_slice_kind(spec) -> None:
    s = spec.model("fraud").slices
    assert [(x.name, x.kind) for x in s] == [
        ("overall", "overall"), ("country", "feature_keys"), ("country,device", "feature_keys"),
        ("country=US,hour=3", "feature_values"), ("amount", "buckets"),
        ("big_na_new", "where"), ("tags", "tags")]
    assert s[1].keys == ("country",) and s[1].max_values == 20 and not s[1].critical
    assert s[2].keys == ("country", "device") and s[2].critical and s[2].max_values == 50
    assert s[3].values == {"country": "US", "hour": 3}
    assert s[4].keys == ("amount",) and s[4].buckets == (0.0, 10.0, 100.0, 1000.0)
    assert s[5].where.startswith("amount > 500") and s[5].min_size == 50 and s[5].critical
    assert s[5].predicate == And((Compare("amount", ">", 500.0),
                                  InSet("country", ("US", "CA")), HasTag("new_user")))
    assert s[5].keys == ("amount", "country")
    assert s[6].tags == ("new_user", "returning")


def test_drift(spec) -> None:
    d = spec.model("fraud").drift
    assert d.enabled and d.profile == "profiles/fraud.json" and d.fdr == 0.01
    assert not d.per_slice and d.prediction and not d.label
    assert d.features == ("amount", "country")
    assert (d.concept_detector, d.concept_params) == ("ADWIN", {"delta": 0.002})
    p = spec.model("pricing").drift
    assert p.rolling_windows == 12 and p.profile is None and p.concept_detector == "PageHinkley"
    assert not spec.model("intent").drift.enabled


def test_defaults_per_task(spec) -> None:
    pricing, intent = spec.model("pricing"), spec.model("intent")
    assert pricing.window == WindowSpec(kind="count", size=10000.0)
    assert pricing.metrics == vocab.METRICS_BY_TASK["regression"]
    assert intent.metrics == vocab.METRICS_BY_TASK["multiclass"]
    assert intent.classes == ("buy", "browse", "3")
    assert [s.name for s in pricing.slices] == ["overall"]
    assert pricing.window.allowed_lateness == 0.0 and pricing.label_delay == 0.0


def test_model_schema_overrides_top_level(spec) -> None:
    pricing = spec.model("pricing")
    merged = spec.schema_for(pricing)
    assert merged.value == "out.price"
    assert merged.time == "ts" and merged.label_id == "pid"  # inherited from the top level


def test_minimal_spec_defaults() -> None:
    spec = load_spec_text("models:\n  - {name: m, task: binary}\n")
    (m,) = spec.models
    assert m.window == WindowSpec() and m.threshold == 0.5 and m.features == ()
    assert spec.source == SourceSpec() and spec.server == ServerSpec()
    assert spec.schema == SchemaSpec() and spec.checkpoint is None


def test_undeclared_features_allowed_without_features_block() -> None:
    spec = load_spec_text(textwrap.dedent("""\
        models:
          - name: m
            task: regression
            slices:
              - feature_keys: [region]
              - buckets: {age: [18, 65]}
              - name: young
                where: age < 25 and region != "EU"
        """))
    assert [s.name for s in spec.models[0].slices] == ["region", "age", "young"]


def test_load_spec_file_round_trip(tmp_path) -> None:
    """A file loads like its text, with relative paths anchored at the file's directory."""
    from slices.load import resolve_paths

    path = tmp_path / "fraud.yaml"
    path.write_text(FULL)
    spec = load_spec(str(path))
    assert spec == resolve_paths(load_spec_text(FULL, str(path)), str(tmp_path))
    assert all(p == "-" or p.startswith(str(tmp_path)) for p in spec.source.paths)


def test_relative_paths_are_relative_to_the_spec_file(tmp_path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "s.yaml"
    path.write_text("source: {path: ../data/*.jsonl, dead_letter: dl.jsonl, labels: /abs/l.jsonl}"
                    "\ncheckpoint: state.db\nmodels:\n  - name: m\n    task: binary\n"
                    "    drift: {profile: ~/p.json}\n")
    spec = load_spec(str(path))
    assert spec.source.paths == (str(tmp_path / "data" / "*.jsonl"),)
    assert spec.source.dead_letter == str(tmp_path / "conf" / "dl.jsonl")
    assert spec.source.labels == ("/abs/l.jsonl",)
    assert spec.checkpoint == str(tmp_path / "conf" / "state.db")
    assert spec.models[0].drift.profile == os.path.expanduser("~/p.json")


def test_docs_examples_load() -> None:
    """Every complete YAML example in docs/spec.md (those with a models: key) is valid."""
    import pathlib
    import re
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs" / "spec.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text(), flags=re.S)
    full = [b for b in blocks if b.startswith(("version:", "models:"))]
    assert len(full) >= 2
    for block in full:
        load_spec_text(block, "docs/spec.md")


def test_alerting_sections_are_typed_and_located() -> None:
    text = "models:\n  - {name: m, task: binary}\nroute: {receiver: x}\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "a.yaml")
    assert [str(p) for p in info.value.problems] == [
        "a.yaml:3:19: route.receiver: unknown receiver 'x'; receivers: none"]
    ok = text + "receivers: [{name: x, type: webhook, url: 'http://127.0.0.1:1/'}]\n"
    alerting = load_spec_text(ok).alerting
    assert isinstance(alerting, AlertingSpec)
    assert alerting.route.receiver == "x" and alerting.receivers[0].type == "webhook"


# ------------------------------------------------------------------------- durations

@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0), ("1w", 604800.0),
    ("500ms", 0.5), ("1h30m", 5400.0), ("1h 30m 15s", 5415.0), ("1.5h", 5400.0),
    ("90", 90.0), (12, 12.0), (0.25, 0.25), ("0s", 0.0), (" 5m ", 300.0), ("2m500ms", 120.5),
])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "5", "5x", "5 minutes", "-5s", "-1", "1h-30m",
                                  "5m3", "inf", "nan", None, True, [5], "1e400"])
def test_parse_duration_rejects(text) -> None:
    if text == "5":
        assert parse_duration(text) == 5.0
        return
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_window() -> None:
    assert parse_window("5m") == WindowSpec(kind="time", size=300.0)
    assert parse_window("10000 records") == WindowSpec(kind="count", size=10000.0)
    assert parse_window("1 record", 3.0) == WindowSpec(kind="count", size=1.0,
                                                       allowed_lateness=3.0)
    assert parse_window(60) == WindowSpec(kind="time", size=60.0)
    for bad in ("0s", "0 records", "ten records", "5 minutes", "records", 0):
        with pytest.raises(ValueError, match="window"):
            parse_window(bad)


def test_predicate_in_spec_equals_direct_parse(spec) -> None:
    s = spec.model("fraud").slices[5]
    assert s.predicate == parse_predicate(s.where)
