"""Discovery through the daemon (issue 17): the spec block and its errors, discovered
slices in the results history, on /metrics and on the table, a pasted name selecting the
same records, and a restart from the daemon's state giving the same discoveries."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SlicewatchCollector
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.outputs.results import ResultsWriter, read_discovered
from monitor.outputs.table import TablePrinter
from monitor.runtime.daemon import Daemon
from slices.errors import SpecError
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {country: categorical, device: categorical, plan: categorical, amount: numeric}
    slices: [{overall: true}, {feature_keys: [country]}]
    discovery: {top_k: 3, horizon: 3, min_support: 40%s}
"""


def records(n, start, seed, *, planted=True):
    """One minute of records; ``planted``: country=BR & amount in [100,500) errs 50 %."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        country = str(rng.choice(["US", "BR", "DE", "FR"], p=[0.4, 0.2, 0.2, 0.2]))
        amount = float(rng.exponential(120))
        bad = planted and country == "BR" and 100 <= amount < 500
        score = float(rng.random())
        label = int(rng.random() < score)
        if rng.random() < (0.5 if bad else 0.08):
            label = 1 - int(score >= 0.5)  # a misclassified record
        else:
            label = int(score >= 0.5)
        out.append({"model": "m", "prediction_id": f"{seed}-{i}",
                    "timestamp": start + i * 60.0 / n,
                    "features": {"country": country, "device": str(rng.choice(["web", "ios"])),
                                 "plan": str(rng.choice(["free", "pro", "team"])),
                                 "amount": amount},
                    "prediction": {"score": score}, "label": label})
    return out


def chunks(recs, size=700):
    lines = [orjson.dumps(r) for r in recs]
    return [Chunk("lines", lines[i:i + size]) for i in range(0, len(lines), size)]


def stream(windows=4, planted=True):
    return [r for w in range(windows) for r in records(3000, w * 60.0, w, planted=planted)]


def spec(extra=""):
    return load_spec_text(SPEC % extra)


def run(spec_, recs, **kw):
    windows = []
    daemon = Daemon(spec_, dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: windows.append(w), *kw.get("listeners", ())])
    daemon.run(chunks(recs))
    return daemon, windows


@pytest.fixture(scope="module")
def planted_windows():
    """The closed windows of one run over ``stream(4)`` with the amount buckets; read only
    (the discovery test and the restart test's uninterrupted run)."""
    return run(spec(", buckets: {amount: [20, 100, 500]}"), stream(4))[1]


def test_the_planted_conjunction_is_discovered_and_handed_on(planted_windows):
    windows = planted_windows
    assert len(windows) == 4
    for w in windows:
        top = [d for d in w.discovered if d.scope == "window"]
        assert top[0].slice == "country=BR,amount=[100,500)", top[:2]
        assert top[0].where == 'country == "BR" and amount >= 100 and amount < 500'
        assert len(top) <= 3
    horizon = [d for d in windows[-1].discovered if d.scope == "horizon"]
    assert horizon[0].slice == "country=BR,amount=[100,500)"
    assert horizon[0].window_start == 60.0 and horizon[0].window_end == 240.0
    assert horizon[0].records > max(d.records for w in windows for d in w.discovered
                                    if d.scope == "window" and d.rank == 1)


def test_nothing_is_discovered_without_a_degradation():
    _, windows = run(spec(", buckets: {amount: [20, 100, 500]}"), stream(planted=False))
    assert [w.discovered for w in windows] == [()] * 4


def test_a_pasted_discovered_slice_selects_the_same_records():
    recs = stream(1)
    _, windows = run(spec(", buckets: {amount: [20, 100, 500]}"), recs)
    found = windows[0].discovered[0]
    pasted = SPEC.replace("slices: [{overall: true}, {feature_keys: [country]}]",
                          f"slices: [{{overall: true}}, {{name: '{found.slice}', "
                          f"where: '{found.where}'}}]") % ""
    results = []
    daemon = Daemon(load_spec_text(pasted), dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: results.extend(rs)])
    daemon.run(chunks(recs))
    mine = [r for r in results if r.slice == found.slice]
    assert len(mine) == 1 and mine[0].count == found.records  # every record is labelled


def test_results_history_metrics_and_table_show_them(tmp_path):
    path = tmp_path / "history.jsonl"
    out = io.StringIO()
    writer = ResultsWriter(str(path))
    table = TablePrinter({"m": "binary"}, out=out)
    daemon, _ = run(spec(", buckets: {amount: [20, 100, 500]}"), stream(2),
                    listeners=[writer, table])
    writer.close()
    lines = read_discovered(str(path))
    assert {d["scope"] for d in lines} == {"window", "horizon"}
    first = next(d for d in lines if d["scope"] == "window" and d["rank"] == 1)
    assert first["slice"] == "country=BR,amount=[100,500)" and first["p_adjusted"] <= 0.05
    assert "discovered #1 country=BR,amount=[100,500)" in out.getvalue()
    registry = CollectorRegistry()
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(registry).decode())}
    samples = families["slicewatch_discovered_slice_error"].samples
    assert 1 <= len(samples) <= 3
    top = next(s for s in samples if s.labels["rank"] == "1")
    assert top.labels == {"model": "m", "version": "", "rank": "1",
                          "slice": "country=BR,amount=[100,500)"}
    assert 0.3 < top.value < 0.7
    records = families["slicewatch_discovered_slice_records"].samples
    assert {s.labels["slice"] for s in records} == {s.labels["slice"] for s in samples}


def test_a_restart_from_state_discovers_exactly_what_one_run_does(planted_windows):
    recs = stream(4)
    whole = planted_windows  # the uninterrupted run over the same records
    cut = len(recs) // 2 + 123  # mid-window
    got = []
    first = Daemon(spec(", buckets: {amount: [20, 100, 500]}"), dead_letter=DeadLetter(None),
                   listeners=[lambda w, rs: got.append(w)])
    first.run(chunks(recs[:cut]), flush_at_end=False)
    state = orjson.loads(orjson.dumps(first.state()))
    second = Daemon(spec(", buckets: {amount: [20, 100, 500]}"), dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: got.append(w)])
    second.load_state(state)
    second.run(chunks(recs[cut:]))
    assert [w.discovered for w in got] == [w.discovered for w in whole]


def test_labels_joined_later_discover_exactly_what_inline_labels_do():
    """Records waiting for their label are not coded at arrival (only those with a known
    error are); joined later, they count as if their label had come with them."""
    text = SPEC.replace("window: 1m", "window: 1m\n    label_delay: 10m") % ""
    recs = stream(3)
    _, inline = run(load_spec_text(text), recs)
    parts = []
    for i in range(0, len(recs), 700):  # odd records' labels trail by one chunk
        part = recs[i:i + 700]
        parts.append(Chunk("lines", [orjson.dumps({k: v for k, v in r.items()
                                                   if k != "label" or j % 2 == 0})
                                     for j, r in enumerate(part)]))
        parts.append(Chunk("lines", [orjson.dumps({"prediction_id": r["prediction_id"],
                                                   "label": r["label"],
                                                   "timestamp": r["timestamp"] + 1})
                                     for j, r in enumerate(part) if j % 2], stream="labels"))
    windows = []
    daemon = Daemon(load_spec_text(text), dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: windows.append(w)])
    daemon.run(parts)
    assert [w.discovered for w in windows] == [w.discovered for w in inline]
    assert any(w.discovered for w in inline)


def test_a_restart_remembers_the_slices_discovered_lately_for_alerting():
    """The slices of window 1 that window 2 (no degradation) no longer holds are handed on
    as absent, across a restart between the two: the memory is in the daemon state."""
    recs = [r for w, planted in enumerate([True, True, False, True])
            for r in records(3000, w * 60.0, w, planted=planted)]
    _, whole = run(spec(), recs)
    assert whole[2].discovered_absent and not [d for d in whole[2].discovered
                                               if d.scope == "window"]
    assert {s for _, s in whole[2].discovered_absent} >= {
        d.slice for d in whole[1].discovered if d.scope == "window"}
    got = []
    first = Daemon(spec(), dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(w)])
    first.run(chunks(recs[:6100]), flush_at_end=False)  # window 2 begun
    state = orjson.loads(orjson.dumps(first.state()))
    second = Daemon(spec(), dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(w)])
    second.load_state(state)
    second.run(chunks(recs[6100:]))
    assert [(w.discovered, w.discovered_absent) for w in got] == [
        (w.discovered, w.discovered_absent) for w in whole]


@pytest.mark.parametrize("block, message", [
    ("{top_k: 0}", "top_k must be an integer in [1, 50]; got 0"),
    ("{max_level: 3}", "max_level must be an integer in [1, 2]; got 3"),
    ("{features: [amount]}", "numeric feature 'amount' needs bucket edges"),
    ("{features: [contry]}", "feature 'contry' is not declared"),
    ("{error: absolute_error}", "error must be one of 'misclassification', 'log_loss'"),
    ("{fdr: 1.5}", "fdr must be a number in (0, 1); got 1.5"),
    ("{buckets: {amount: [5, 1]}}", "amount edges must be 1 to 64 increasing"),
    ("{topk: 3}", "topk"),
])
def test_bad_discovery_blocks_are_located_errors(block, message):
    text = SPEC.replace("discovery: {top_k: 3, horizon: 3, min_support: 40%s}",
                        f"discovery: {block}")
    with pytest.raises(SpecError) as err:
        load_spec_text(text, "s.yaml")
    shown = str(err.value)
    assert message in shown and "s.yaml:8:" in shown and "models[0].discovery" in shown


def test_discovery_needs_the_overall_slice():
    text = (SPEC % "").replace("slices: [{overall: true}, ", "slices: [")
    with pytest.raises(SpecError, match="add the '- overall: true' slice"):
        load_spec_text(text, "s.yaml")


def test_discovered_lines_match_the_results_schema(tmp_path):
    import json
    from pathlib import Path

    import jsonschema
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                         "results.schema.json").read_text())
    path = tmp_path / "history.jsonl"
    writer = ResultsWriter(str(path))
    run(spec(", buckets: {amount: [20, 100, 500]}"), stream(2), listeners=[writer])
    writer.close()
    lines = read_discovered(str(path))
    assert lines
    validator = jsonschema.Draft202012Validator(schema)
    for line in lines:
        validator.validate(line)
    assert not validator.is_valid({**lines[0], "scope": "forever"})


def test_the_html_report_lists_the_discovered_slices(tmp_path):
    from monitor.outputs.report import write_report
    path = tmp_path / "history.jsonl"
    writer = ResultsWriter(str(path))
    run(spec(", buckets: {amount: [20, 100, 500]}"), stream(3), listeners=[writer])
    writer.close()
    out = tmp_path / "report.html"
    write_report(str(path), str(out))
    page = out.read_text()
    assert "<h3>Discovered slices</h3>" in page
    row = page[page.index("<table class='discovered'>"):]
    assert "<tr><td>country=BR,amount=[100,500)</td><td></td><td>3</td><td>1</td>" in row
    assert "country == &quot;BR&quot; and amount &gt;= 100" in row
