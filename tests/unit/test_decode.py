"""Decoding: schema paths, time formats, tags, features, and every reject reason."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest

from monitor.ingest.decode import Decoder, parse_times
from slices.spec import SchemaSpec


def line(**kw) -> bytes:
    rec = {"model": "fraud", "model_version": "v1", "prediction_id": "p1", "timestamp": 100,
           "features": {"amount": 12.5, "country": "US"}, "prediction": {"score": 0.7},
           "label": 1, "tags": ["a"], "outcome": "ok"}
    rec.update(kw)
    return orjson.dumps({k: v for k, v in rec.items() if v is not ...})


def decoder(**kw) -> Decoder:
    return Decoder(SchemaSpec(), known_models=["fraud"], **kw)


def test_roles_become_columns():
    batch, rejects = decoder().decode_lines([line(), line(prediction_id="p2", timestamp=160)])
    assert rejects == []
    assert len(batch) == 2
    assert batch.id.tolist() == ["p1", "p2"]
    assert batch.time.tolist() == [100.0, 160.0]
    assert batch.score.tolist() == [0.7, 0.7]
    assert batch.features["amount"].dtype == np.float64
    assert batch.features["country"].tolist() == ["US", "US"]
    assert batch.has_tag("a").tolist() == [True, True]
    assert batch.has_tag("b").tolist() == [False, False]


def test_custom_paths_and_feature_paths():
    schema = SchemaSpec(model="m", time="meta.ts", score="out.p", features="x",
                        feature_paths={"country": "ctx.country"}, id="meta.id")
    raw = orjson.dumps({"m": "fraud", "meta": {"ts": "2026-01-01T00:00:00Z", "id": 7},
                        "out": {"p": 0.1}, "x": {"amount": 3}, "ctx": {"country": "BR"}})
    batch, rejects = Decoder(schema).decode_lines([raw])
    assert rejects == []
    assert batch.time[0] == pd.Timestamp("2026-01-01T00:00:00Z").timestamp()
    assert batch.id.tolist() == ["7"]
    assert batch.features["country"].tolist() == ["BR"]
    assert batch.features["amount"].tolist() == [3.0]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (line(timestamp=...), "missing_field:time"),
    (line(timestamp="yesterday"), "bad_time"),
    (line(prediction={"score": "high"}), "wrong_type:score"),
    (line(prediction={"score": float("nan")}).replace(b"null", b"NaN"), "invalid_json"),
    (line(model="other"), "unknown_model"),
    (line(outcome="exploded"), "bad_outcome"),
    (line(prediction={}), "missing_prediction"),
    (line(features=[1, 2]), "wrong_type:features"),
    (line(prediction={"score": True}), "wrong_type:score"),
])
def test_each_bad_record_is_rejected_with_its_reason(raw, reason):
    batch, rejects = decoder().decode_lines([line(), raw, line(prediction_id="p3")])
    assert len(batch) == 2, "good records around a bad one are kept"
    assert [r.reason for r in rejects] == [reason]


def test_nan_score_from_records_is_rejected():
    batch, rejects = decoder().decode_records([{"timestamp": 1, "model": "fraud",
                                                "prediction": {"score": math.nan}}])
    assert len(batch) == 0
    assert [r.reason for r in rejects] == ["nan_score"]


def test_failed_prediction_without_score_is_kept():
    batch, rejects = decoder().decode_lines([line(prediction={}, outcome="timeout")])
    assert rejects == []
    assert batch.outcome.tolist() == [2]
    assert np.isnan(batch.score[0])


def test_missing_model_uses_the_single_model_or_is_rejected():
    raw = line(model=...)
    batch, _ = Decoder(SchemaSpec(), default_model="fraud").decode_lines([raw])
    assert batch.model.tolist() == ["fraud"]
    batch, rejects = Decoder(SchemaSpec(), known_models=["a", "b"]).decode_lines([raw])
    assert len(batch) == 0 and rejects[0].reason == "missing_field:model"


def test_parse_times_formats():
    got = parse_times([0, 1.5, 1_700_000_000_000, "1970-01-01T00:00:10Z",
                       "1970-01-01T01:00:10+01:00", "nope", None])
    assert got[:5].tolist() == [0.0, 1.5, 1_700_000_000.0, 10.0, 10.0]
    assert np.isnan(got[5]) and np.isnan(got[6])


def test_feature_types_declared_and_inferred():
    lines = [line(features={"amount": "12", "zip": 10115, "flag": True}),
             line(features={"amount": "oops", "zip": "10117"})]
    batch, _ = decoder(feature_types={"amount": "numeric"}).decode_lines(lines)
    assert batch.features["amount"][0] == 12.0 and np.isnan(batch.features["amount"][1])
    assert batch.features["zip"].tolist() == ["10115", "10117"]  # mixed → categorical
    assert batch.features["flag"].tolist() == ["true", None]


def test_frame_with_dotted_columns():
    frame = pd.DataFrame({"model": ["fraud"], "timestamp": [5.0], "prediction.score": [0.3],
                          "features.city": ["oslo"], "features.km": [2.5], "label": [np.nan]})
    batch, rejects = decoder().decode_frame(frame)
    assert rejects == []
    assert batch.score.tolist() == [0.3]
    assert batch.features["city"].tolist() == ["oslo"]
    assert batch.label.tolist() == [None]


def test_take_keeps_tags_aligned():
    lines = [line(prediction_id=str(i), tags=["x"] if i % 2 else ["y", "x"]) for i in range(6)]
    batch, _ = decoder().decode_lines(lines)
    part = batch.take(np.array([5, 0, 2]))
    assert part.id.tolist() == ["5", "0", "2"]
    assert part.has_tag("y").tolist() == [False, True, True]
    assert part.has_tag("x").tolist() == [True, True, True]


def test_label_records():
    lines = [orjson.dumps({"prediction_id": "p1", "label": 1, "timestamp": 5}), b"{",
             orjson.dumps({"label": 0})]
    labels, rejects = decoder().decode_label_lines(lines)
    assert labels["id"].tolist() == ["p1"] and labels["time"].tolist() == [5.0]
    assert sorted(r.reason for r in rejects) == ["invalid_json", "missing_field:id"]
