"""Bad values in records: far-future and unrepresentable times, out-of-range scores, null
models — each rejected with its reason and counted, never an exception, never reaching the
windows."""

from __future__ import annotations

import datetime as dt
import time

import orjson
import pandas as pd
import pytest

from monitor.ingest.decode import Decoder
from monitor.ingest.decode_models import decoder_for
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.errors import SpecError
from slices.load import load_spec_text
from slices.spec import SchemaSpec

SPEC = """
source: {max_future: 1h}
models:
  - name: fraud
    task: binary
    window: 1m
  - name: price
    task: regression
    window: 1m
"""
NOW = time.time()


def rec(t, score=0.5, model="fraud", **kw) -> bytes:
    return orjson.dumps({"model": model, "timestamp": t, "prediction": {"score": score}, **kw})


def daemon() -> Daemon:
    return Daemon(load_spec_text(SPEC))


def test_one_far_future_record_does_not_silence_the_model():
    d = daemon()
    year_3000 = dt.datetime(3000, 1, 1, tzinfo=dt.UTC).timestamp()
    d.process(Chunk("lines", [rec(NOW - 600), rec(year_3000), rec(NOW + 7200)]))
    d.process(Chunk("lines", [rec(NOW - 590), rec(NOW - 500)]))
    assert d.tracker.bad == {"future_time": 2}
    assert sum(d.tracker.late.values()) == 0
    assert d.tracker.records["fraud"] == 3
    assert d.pipelines["fraud"].windows.watermark < NOW


@pytest.mark.parametrize(("raw", "reason"), [
    ("2300-01-01T00:00:00Z", "future_time"),  # beyond max_future (and pandas' ns range)
    ("1500-01-01T00:00:00Z", "bad_time"),  # before pandas' ns range
    ("9999-99-99T00:00:00Z", "bad_time"),
    (1e300, "future_time"),
    (-1e300, "bad_time"),
    (-2e10, "bad_time"),  # epoch seconds in the year 1336
])
def test_times_outside_the_range_are_rejected_on_the_line_path(raw, reason):
    batch, rejects = decoder_for(load_spec_text(SPEC)).decode_lines(
        [rec(raw), rec(NOW), rec(raw), rec("2026-01-01T00:00:00Z")])
    assert [r.reason for r in rejects] == [reason, reason]
    assert len(batch) == 2


def test_unrepresentable_times_without_a_future_bound_are_bad_time():
    d = Decoder(SchemaSpec(), default_model="fraud")
    for raw in ("2300-01-01T00:00:00Z", "1500-01-01T00:00:00Z", 1e300, 2e10):
        batch, rejects = d.decode_lines([rec(raw), rec(100)])
        assert [r.reason for r in rejects] == ["bad_time"] and len(batch) == 1, raw


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), -float("inf"), 10**30])
def test_non_finite_and_huge_epoch_numbers_from_records(raw):
    d = Decoder(SchemaSpec(), default_model="fraud", max_future=3600)
    batch, rejects = d.decode_records([{"timestamp": raw, "prediction": {"score": 0.1}}])
    assert len(batch) == 0 and rejects[0].reason in {"bad_time", "future_time"}


def test_native_timestamps_in_a_frame_are_read():
    d = Decoder(SchemaSpec(), default_model="fraud", max_future=3600)
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T00:00:00",
                                                       "2026-01-01T00:01:00"]).as_unit("s"),
                          "prediction.score": [0.1, 0.2]})
    batch, rejects = d.decode_frame(frame)
    assert rejects == []
    assert batch.time.tolist() == [pd.Timestamp("2026-01-01", tz="UTC").timestamp(),
                                   pd.Timestamp("2026-01-01T00:01:00Z").timestamp()]
    aware = frame.assign(timestamp=frame["timestamp"].dt.tz_localize("Europe/Berlin"))
    batch, _ = d.decode_frame(aware)
    assert batch.time[0] == pd.Timestamp("2025-12-31T23:00:00Z").timestamp()


def test_probability_scores_outside_0_1_are_rejected_but_not_regression_values():
    d = daemon()
    d.process(Chunk("lines", [rec(NOW, 7.5), rec(NOW, -3), rec(NOW, 1.0), rec(NOW, 0.0),
                              rec(NOW, 7.5, model="price"), rec(NOW, -3, model="price")]))
    assert d.tracker.bad == {"score_out_of_range": 2}
    assert d.tracker.records == {"fraud": 2, "price": 2}


def test_a_null_model_is_rejected_even_with_a_single_model():
    d = Decoder(SchemaSpec(), default_model="fraud", known_models=["fraud"])
    batch, rejects = d.decode_lines([rec(100, model=None), b'{"timestamp": 100, '
                                     b'"prediction": {"score": 0.1}}'])
    assert [r.reason for r in rejects] == ["null_model"]
    assert batch.model.tolist() == ["fraud"]


def test_every_value_check_reaches_the_decoder_of_a_per_model_schema():
    spec = load_spec_text(SPEC.replace("task: binary", "task: binary\n    schema: {score: p}"))
    _, rejects = decoder_for(spec).decode_lines([
        orjson.dumps({"model": "fraud", "timestamp": NOW + 86400, "p": 0.5}),
        orjson.dumps({"model": "fraud", "timestamp": NOW, "p": 2.0})])
    assert [r.reason for r in rejects] == ["future_time", "score_out_of_range"]


@pytest.mark.parametrize(("source", "problem"), [
    ("max_future: -5", "2:15: source.max_future: max_future must be a duration"),
    ("max_future: 0s", "2:15: source.max_future: max_future must be a duration above zero"),
    ("max_future: forever", "2:15: source.max_future: max_future must be a duration"),
    ("max_record_bytes: 3", "2:21: source.max_record_bytes: max_record_bytes must be an "
                            "integer in [64, 1073741824]"),
    ("max_record_bytes: 1.5e6", "2:21: source.max_record_bytes: max_record_bytes must be"),
    ("dead_letter_max_bytes: big", "2:26: source.dead_letter_max_bytes: "
                                   "dead_letter_max_bytes must be an integer >= 4096"),
    ("dead_letter_max_bytes: 5000", "2:26: source.dead_letter_max_bytes: "
                                    "dead_letter_max_bytes must be at least max_record_bytes"),
])
def test_validate_rejects_nonsensical_source_limits_with_their_place(source, problem):
    with pytest.raises(SpecError) as err:
        load_spec_text(f"source:\n  {source}\nmodels: [{{name: fraud, task: binary}}]\n", "s")
    assert str(err.value.problems[0]).startswith(f"s:{problem}")
