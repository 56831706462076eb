"""The custom collector: Prometheus naming conventions, values, and stale-series expiry."""

from __future__ import annotations

import re

import orjson
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SLICE_METRIC_HELP, SlicewatchCollector, slice_metric_name
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text
from slices.vocab import METRICS_BY_TASK

SPEC = """
server: {stale_after_windows: %d}
models:
  - name: m
    task: binary
    window: 1m
    features: {country: categorical}
    slices: [{overall: true}, {feature_keys: [country]}]
"""


def rec(t, country, score=0.8, label=1, outcome="ok"):
    return orjson.dumps({"model": "m", "model_version": "v1", "prediction_id": f"{t}{country}",
                         "timestamp": t, "features": {"country": country},
                         "prediction": {"score": score} if outcome == "ok" else {},
                         "label": label, "outcome": outcome})


def scrape(daemon) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def test_names_follow_prometheus_conventions():
    daemon = Daemon(load_spec_text(SPEC % 3), dead_letter=DeadLetter(None))
    daemon.run([Chunk("lines", [rec(1, "US"), rec(2, "BR", outcome="timeout"), b"{"])])
    families, text = scrape(daemon)
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            assert re.fullmatch(r"slicewatch_[a-z0-9_]+", name), name
            assert ":" not in name
            assert not name.endswith("_count") or kind != "gauge"
    for fam in families.values():
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples), fam.name
    assert families["slicewatch_bad_records"].samples[0].labels == {"reason": "invalid_json"}
    outcomes = {s.labels["outcome"]: s.value for s in families["slicewatch_predictions"].samples
                if s.name.endswith("_total")}
    assert outcomes == {"ok": 1.0, "timeout": 1.0}
    acc = {s.labels["slice"]: s.value for s in families["slicewatch_slice_accuracy"].samples}
    assert acc == {"overall": 1.0, "country=US": 1.0}  # the timed-out record has no score
    fail = {s.labels["slice"]: s.value for s in families["slicewatch_slice_failure_rate"].samples}
    assert fail == {"overall": 0.5, "country=US": 0.0, "country=BR": 1.0}


def test_every_metric_has_help_text():
    names = {m for ms in METRICS_BY_TASK.values() for m in ms}
    assert names <= set(SLICE_METRIC_HELP)
    assert slice_metric_name("count") == "slicewatch_slice_records"


def test_series_of_a_vanished_slice_are_dropped_after_n_windows():
    daemon = Daemon(load_spec_text(SPEC % 2), dead_letter=DeadLetter(None))
    daemon.process(Chunk("lines", [rec(1, "US"), rec(2, "BR")]))
    for minute in range(1, 5):  # BR stops sending; US goes on
        daemon.process(Chunk("lines", [rec(60 * minute + 1, "US")]))
        families, _ = scrape(daemon)
        slices = {s.labels["slice"] for s in families["slicewatch_slice_records"].samples}
        closed = minute  # windows closed so far
        # seen in window 1; dropped once 2 windows in a row (2 and 3) went without it
        assert ("country=BR" in slices) == (closed <= 2), (minute, slices)
    assert "country=US" in slices
