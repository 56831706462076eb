"""``slicewatch init --from SAMPLE`` proposes a spec that passes validate, for nested and
flat JSON lines and for CSV, and that reads the sample's features and predictions."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from monitor.cli import main
from monitor.runtime.app import RunOptions, run
from monitor.runtime.demo import demo_records
from monitor.runtime.init_spec import InitError, propose_spec
from monitor.runtime.preflight import check
from slices.load import load_spec

REPO = Path(__file__).resolve().parents[2]


def nested_sample(path: Path) -> Path:
    records = next(iter(demo_records(1, 400)))
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def flat_sample(path: Path) -> Path:
    out = []
    for r in next(iter(demo_records(1, 400))):
        if "score" not in r["prediction"]:  # a failed prediction: no score to flatten
            continue
        flat = {"ts": r["timestamp"], "request_id": r["prediction_id"],
                "score": r["prediction"]["score"], "target": r["label"], **r["features"]}
        out.append(orjson.dumps(flat) + b"\n")
    path.write_bytes(b"".join(out))
    return path


def proposed(sample: Path, tmp_path: Path):
    spec_path = tmp_path / "spec.yaml"
    assert main(["init", "--from", str(sample), "-o", str(spec_path)]) == 0
    spec = load_spec(str(spec_path), probe=check)  # what validate checks
    assert not spec.warnings
    return spec_path, spec


def records_read(spec_path: Path) -> int:
    spec = load_spec(str(spec_path))
    return run(spec, RunOptions(listen="", quiet=True), out=io.StringIO()).records


def test_nested_jsonl(tmp_path):
    spec_path, spec = proposed(nested_sample(tmp_path / "s.jsonl"), tmp_path)
    m = spec.models[0]
    assert (m.name, m.task) == ("fraud", "binary")
    assert spec.schema.score == "prediction.score" and spec.schema.features == "features"
    assert {f.name: f.type for f in m.features} == {
        "account_age_days": "numeric", "amount": "numeric", "country": "categorical",
        "device": "categorical"}
    assert len(m.slices) >= 5  # overall, two categories, their cross, buckets, a tag
    assert records_read(spec_path) == 400


def test_flat_jsonl(tmp_path):
    spec_path, spec = proposed(flat_sample(tmp_path / "flat.jsonl"), tmp_path)
    assert spec.schema.time == "ts" and spec.schema.score == "score"
    assert spec.schema.label == "target" and spec.schema.id == "request_id"
    assert spec.schema.feature_paths["country"] == "country"
    names = {f.name for f in spec.models[0].features}
    assert names == {"amount", "account_age_days", "country", "device"}
    assert records_read(spec_path) == len((tmp_path / "flat.jsonl").read_bytes().splitlines())


def test_csv(tmp_path):
    sample = tmp_path / "pricing.csv"
    sample.write_bytes((REPO / "examples" / "pricing.csv").read_bytes())
    spec_path, spec = proposed(sample, tmp_path)
    m = spec.models[0]
    assert (m.name, m.task, spec.source.format) == ("pricing", "regression", "csv")
    assert spec.schema.value == "predicted_price"
    assert {f.name: f.type for f in m.features}["city"] == "categorical"
    assert records_read(spec_path) > 0


def test_spec_written_elsewhere_points_at_the_sample(tmp_path):
    sample = nested_sample(tmp_path / "s.jsonl")
    (tmp_path / "conf").mkdir()
    text = propose_spec(str(sample), spec_dir=str(tmp_path / "conf"))
    assert 'path: "../s.jsonl"' in text


def test_a_sample_without_time_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"score": 0.5}\n')
    with pytest.raises(InitError, match="no event time"):
        propose_spec(str(bad))
    assert main(["init", "--from", str(bad)]) == 1
    assert "no event time" in capsys.readouterr().err


def test_fields_no_role_reads_are_named(tmp_path):
    """The label under a name init does not know (pricing's ``paid_price``) and a feature
    outside the features mapping (fraud's ``ctx.country``) are named in a comment."""
    sample = tmp_path / "pricing.csv"
    sample.write_bytes((REPO / "examples" / "pricing.csv").read_bytes())
    text = propose_spec(str(sample))
    assert "  # no label found (tried label, target" in text
    assert "  # fields not read: paid_price (a label? set `label:`" in text
    text = propose_spec(str(REPO / "examples" / "fraud.jsonl"))
    assert "no label found" not in text  # and an empty 'prediction' (a timeout) is no field
    assert "  # fields not read: ctx.country (" in text
    assert "fields not read" not in propose_spec(str(flat_sample(tmp_path / "flat.jsonl")))
