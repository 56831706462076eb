"""5000 model versions do not blow up ``/metrics``: versions over ``max_versions`` fold into
``__other__``, every family is cut to the series budget, what is left out is counted, and
series with a version label expire like slice series. Scraped over real HTTP."""

from __future__ import annotations

import logging
import urllib.request

import orjson
from prometheus_client.parser import text_string_to_metric_families

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.wiring import serve
from slices.load import load_spec_text

SPEC = """
server: {listen: "127.0.0.1:0", stale_after_windows: 2%(server)s}
models:
  - name: m
    task: binary
    window: 1m
    allowed_lateness: 0s
    %(versions)s
    features: {country: categorical}
    slices: [{overall: true}, {feature_keys: [country]}]
"""
VERSIONS = 5000


def stream(n_versions: int = VERSIONS, windows: int = 3, first: int = 0) -> list[Chunk]:
    """Every version in every window, 2 records each (one per country)."""
    chunks = []
    for w in range(windows):
        lines = [orjson.dumps({"model": "m", "model_version": f"v{v}",
                               "prediction_id": f"{w}-{v}-{c}", "timestamp": (first + w) * 60
                               + (v % 59), "features": {"country": c},
                               "prediction": {"score": (v % 10) / 10}, "label": v % 2})
                 for v in range(n_versions) for c in ("US", "BR")]
        chunks.append(Chunk("lines", lines))
    return chunks


def get(server) -> tuple[str, dict]:
    with urllib.request.urlopen(server.address + "/metrics", timeout=60) as resp:
        text = resp.read().decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def scrape(daemon: Daemon) -> tuple[str, dict]:
    server = serve(daemon, "127.0.0.1:0")
    try:
        return get(server)
    finally:
        server.stop()


def run(spec_text: str, chunks: list[Chunk]) -> Daemon:
    daemon = Daemon(load_spec_text(spec_text), dead_letter=DeadLetter(None))
    daemon.run(chunks, flush_at_end=False)
    return daemon


def versions_on(families: dict) -> set[str]:
    return {s.labels["version"] for f in families.values() for s in f.samples
            if "version" in s.labels}


def test_5000_versions_fold_into_max_versions_and_other(caplog):
    caplog.set_level(logging.WARNING)
    daemon = run(SPEC % {"server": "", "versions": ""}, stream())  # default max_versions: 10
    text, families = scrape(daemon)
    versions = versions_on(families)
    assert "__other__" in versions and len(versions) <= 11, sorted(versions)
    series = sum(len(f.samples) for f in families.values())
    assert series < 2000, series
    assert len(text) < 400_000, len(text)
    folded = families["slicewatch_versions_folded"].samples[0].value
    assert folded == daemon.tracker.records["m"] - sum(
        v for (m, ver, _), v in daemon.tracker.outcomes.items() if ver != "__other__")
    assert folded > 0.9 * 3 * 2 * VERSIONS
    assert [r.message.count("max_versions") for r in caplog.records] == [1]


def test_every_family_is_cut_to_the_budget_and_the_rest_counted(caplog):
    caplog.set_level(logging.WARNING)
    # no interval families: the counts below assume the page budget is shared by the
    # metric families alone
    daemon = run(SPEC % {"server": ", max_series_per_family: 300, max_series: 3000",
                         "versions": "max_versions: 5000\n    confidence: false"},
                 stream(n_versions=1000, windows=2))
    server = serve(daemon, "127.0.0.1:0")
    try:
        _, families = get(server)
        _, again = get(server)  # the same series left out again are not counted twice
    finally:
        server.stop()
    counted = {s.labels["family"]: s.value
               for s in families["slicewatch_series_dropped"].samples}
    own = ("slicewatch_series_dropped", "slicewatch_http_connections_dropped")  # not budgeted
    assert all(len(f.samples) <= 300 for n, f in families.items() if n not in own), \
        {n: len(f.samples) for n, f in families.items()}
    assert sum(len(f.samples) for n, f in families.items() if n not in own) <= 3000
    assert counted["slicewatch_slice_info"] == 3 * 1000 - 300  # overall, US, BR each
    assert counted["slicewatch_predictions"] == 1000 - 300  # outcome ok only
    assert {s.labels["family"]: s.value
            for s in again["slicewatch_series_dropped"].samples} == counted
    budget_lines = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert len(budget_lines) == 1, budget_lines  # once, not per family or per scrape
    assert "slicewatch_slice_info" in budget_lines[0]


def test_series_of_versions_that_stop_expire():
    spec_text = SPEC % {"server": "", "versions": "max_versions: 100"}
    daemon = Daemon(load_spec_text(spec_text), dead_letter=DeadLetter(None))
    daemon.run(stream(n_versions=50, windows=2), flush_at_end=False)
    assert len(versions_on(scrape(daemon)[1])) == 50
    daemon.run(stream(n_versions=3, windows=4, first=2), flush_at_end=False)
    _, families = scrape(daemon)
    assert versions_on(families) == {"v0", "v1", "v2"}
    assert {s.labels["version"] for s in families["slicewatch_predictions"].samples} == \
        {"v0", "v1", "v2"}


def test_a_huge_feature_value_or_version_is_not_a_huge_label():
    """A record within max_record_bytes may carry a 100 kB feature value or version: its
    series are left out of /metrics (each label value at most MAX_LABEL_CHARS) and counted
    in slicewatch_series_dropped_total; the other series stay."""
    from monitor.export.collector import MAX_LABEL_CHARS

    lines = [orjson.dumps({"model": "m", "model_version": version, "prediction_id": f"{i}",
                           "timestamp": i, "features": {"country": country},
                           "prediction": {"score": 0.5}, "label": i % 2})
             for i, (version, country) in enumerate([("v1", "US"), ("v1", "x" * 100_000),
                                                     ("y" * 50_000, "US")])]
    daemon = run(SPEC % {"server": "", "versions": ""}, [Chunk("lines", lines)])
    daemon.flush()
    text, fams = scrape(daemon)
    assert len(text) < 100_000, len(text)
    labels = [v for f in fams.values() for s in f.samples for v in s.labels.values()]
    assert max(map(len, labels)) <= MAX_LABEL_CHARS
    assert any(s.labels.get("slice") == "country=US" and s.labels.get("version") == "v1"
               for s in fams["slicewatch_slice_records"].samples)
    dropped = {s.labels["family"]: s.value for s in fams["slicewatch_series_dropped"].samples}
    assert dropped.get("slicewatch_slice_records", 0) >= 3, dropped  # 2 of y…, 1 of x…
