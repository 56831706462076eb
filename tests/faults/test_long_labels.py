"""Label values over the exporter's 1024-character bound (a record's 100 kB feature value as
a slice, a 5 000-character version) are cut the same way in the results history and in the
alert database (start, length, digest: two long values stay two keys), and counted; they
were kept whole: a 100 kB slice label in every line and alert of its windows."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import jsonschema
import orjson

from monitor.cli import main
from monitor.core.labels import MAX_LABEL_CHARS
from monitor.outputs.alerting import AlertStage

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/results.schema.json")
                    .read_text())

SPEC = """
version: 1
schema: {time: ts, score: score, label: label, features: features, version: v}
source: {type: file, path: data.jsonl}
models:
  - name: m
    task: binary
    window: 60 records
    metrics: [count, accuracy]
    features: {c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
alerts:
  - {name: acc, model: m, metric: accuracy, threshold: {lower: 0.99}}
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/"}]
"""

BIG_A, BIG_B = "x" * 100_000, "x" * 99_999 + "y"  # the same first 99 999 characters


def _data() -> bytes:
    values = [BIG_A, BIG_B, "a"]
    return b"".join(orjson.dumps({
        "ts": 1_700_000_000 + i, "score": 0.3, "label": i % 2,
        "v": "V" * 5000 if i < 120 else "v1", "features": {"c": values[i % 3]}}) + b"\n"
        for i in range(240))


def test_long_label_values_are_cut_and_counted_in_the_history_and_the_alert_db(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "data.jsonl").write_bytes(_data())
    cut_alerts = []
    stage_call = AlertStage.__call__

    def watched(self, window, results):
        stage_call(self, window, results)
        cut_alerts.append(self.labels_cut)

    monkeypatch.setattr(AlertStage, "__call__", watched)
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["run", "-c", "spec.yaml", "--listen", "", "--results", "h.jsonl",
                     "--alerts-db", "a.db", "-q"])
    assert code == 0, err.getvalue()
    lines = [orjson.loads(x) for x in (tmp_path / "h.jsonl").read_bytes().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in lines:
        validator.validate(line)
        assert len(orjson.dumps(line)) < 12 * MAX_LABEL_CHARS, str(line)[:300]
    results = [x for x in lines if x.get("type", "result") == "result"]
    slices = {x["slice"] for x in results}
    long = sorted(s for s in slices if "characters, sha256" in s)
    assert len(long) == 2 and all(len(s) <= MAX_LABEL_CHARS for s in long), slices
    assert all(s.startswith("c=xxxx") and "…[100002 characters, sha256 " in s for s in long)
    versions = {x["version"] for x in results}
    assert "v1" in versions and any(v.startswith("VVV") and "…[5000 characters" in v
                                    for v in versions), versions
    # every value cut here counted (alert lines come cut by the alert stage, counted there)
    expected = sum("characters, sha256" in x[k] for x in lines for k in ("slice", "version")
                   if x.get("type") != "alert" and isinstance(x.get(k), str))
    run = next(x for x in lines if x.get("type") == "run")
    assert run["labels_cut"] == expected > 0, (run, expected)
    # the alert database holds the cut labels, and the alert stage counted them
    with sqlite3.connect(tmp_path / "a.db") as db:
        alerts = [a for (a,) in db.execute("SELECT alert FROM alert_state")]
    assert alerts and max(map(len, alerts)) < 12 * MAX_LABEL_CHARS
    assert any("characters, sha256" in a for a in alerts)
    assert cut_alerts and cut_alerts[-1] > 0
