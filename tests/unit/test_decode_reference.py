"""The columnar decoder gives exactly what the per-record decoder it replaced gave.

``_ReferenceDecoder`` below is that decoder, verbatim (renamed; it keeps its own copy of
``parse_times`` as ``old_parse_times``). Random valid and invalid records — every reject
reason, odd types, absent vs null, big ints, bad lines — go through both, and every column,
dtype, value type, reject reason, detail and raw payload must agree.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.types import OUTCOME_CODES, RecordBatch
from monitor.ingest.decode import Decoder
from slices.spec import SchemaSpec
from tests.reference_decoder import _ReferenceDecoder

ABSENT = object()
SCHEMAS = {
    "default": SchemaSpec(),
    "custom": SchemaSpec(model="meta.model", time="meta.ts", id="meta.id", score="out.p",
                         value="out.v", pred_class="out.c", features="x", label="y",
                         feature_paths={"country": "ctx.country", "amount": "x.amt"}),
    "no_features_path": SchemaSpec(features="", feature_paths={"city": "where"}),
    "shared_leaf": SchemaSpec(label="prediction", tags="features.tags"),
}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _reference_decode(schema: SchemaSpec, lines: Sequence[bytes | str], **kw: Any):
    """The old decoder's ``decode_lines``."""
    return _ReferenceDecoder(schema, **kw).decode_lines(lines)


def canon(value: Any) -> str:
    """A repr that tells 1 from 1.0 from "1" from True, and NaN equal to NaN."""
    return repr(value)


def assert_same_batch(new: RecordBatch, old: RecordBatch) -> None:
    for name in ("time", "model", "version", "id", "score", "pred_class", "value", "label",
                 "outcome", "tag_rows", "tag_codes"):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert canon(a.tolist()) == canon(b.tolist()), name
    assert new.tag_names == old.tag_names
    assert list(new.features) == list(old.features)
    for k in old.features:
        a, b = new.features[k], old.features[k]
        assert a.dtype == b.dtype and canon(a.tolist()) == canon(b.tolist()), k


def assert_same(new: tuple, old: tuple) -> None:
    (nb, nr), (ob, orj) = new, old
    assert_same_batch(nb, ob)
    assert canon([(r.reason, r.raw, r.detail) for r in nr]) == \
        canon([(r.reason, r.raw, r.detail) for r in orj])


# ---- random records ----------------------------------------------------------------------
big_ints = st.sampled_from([2**63, 2**64 - 1, 2**64, 2**70, -(2**63) - 1, -(2**63)])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), big_ints,
                    st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.text(max_size=6), st.sampled_from(["US", "BR", "12", "1.5", "oops"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)
times = st.one_of(st.integers(-10**13, 10**13), st.floats(-1e14, 1e14), big_ints,
                  st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+01:00",
                                   "2026-01-01", "yesterday", "", "2026-13-01T00:00:00Z"]),
                  st.booleans(), st.none(), st.just([1]))
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 5),
                    big_ints, st.none(), st.booleans(), st.sampled_from(["high", "0.5"]))
features = st.one_of(
    st.dictionaries(st.sampled_from(["amount", "country", "zip", "flag", "tags", "amt", "x"]),
                    st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=5),
    json_values)
tags = st.one_of(st.lists(st.one_of(st.sampled_from(["a", "b", "new_user"]), scalars),
                          max_size=3), st.sampled_from(["a", "b"]), scalars)


@st.composite
def records(draw) -> Any:
    """A record in the default or the custom schema's layout (every path exists): each field
    usually valid (so that most records are kept and their columns compared), sometimes odd,
    null or absent; now and then not an object at all."""

    def field(good: st.SearchStrategy, odd: st.SearchStrategy) -> Any:
        k = draw(st.integers(0, 5))
        return draw(good) if k >= 2 else (draw(odd) if k == 1 else ABSENT)

    score = st.floats(0, 1)
    pred = draw(st.one_of(
        st.fixed_dictionaries({"score": score}, optional={"class": scalars, "value": numbers}),
        st.fixed_dictionaries({}, optional={"score": numbers, "class": scalars,
                                            "value": numbers}), json_values))
    good_time = st.one_of(st.floats(0, 2e9), st.integers(0, 2 * 10**12),
                          st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+01:00"]))
    rec = {
        "model": field(st.just("fraud"), st.one_of(st.sampled_from(["m2", "other"]), scalars)),
        "model_version": field(st.just("v1"), scalars), "prediction_id": field(scalars, scalars),
        "timestamp": field(good_time, times), "features": field(features, json_values),
        "prediction": pred, "label": field(json_values, json_values),
        "tags": field(tags, tags),
        "outcome": field(st.just("ok"), st.one_of(st.sampled_from(
            ["OK", "timeout", "Error", "fallback", "exploded"]), scalars)),
        # the custom schema's places, and the extra single-feature paths
        "meta": field(st.fixed_dictionaries({"model": st.just("fraud"), "ts": good_time},
                                            optional={"id": scalars}),
                      st.fixed_dictionaries({}, optional={
                          "model": st.sampled_from(["fraud", "m2", "x"]), "ts": times,
                          "id": scalars})),
        "out": field(st.fixed_dictionaries({"p": score}, optional={"v": numbers, "c": scalars}),
                     st.one_of(st.fixed_dictionaries({}, optional={
                         "p": numbers, "v": numbers, "c": scalars}), scalars)),
        "x": field(features, json_values), "y": field(json_values, json_values),
        "ctx": field(st.fixed_dictionaries({}, optional={"country": scalars}), scalars),
        "where": field(scalars, scalars),
    }
    rec = {k: v for k, v in rec.items() if v is not ABSENT}
    return rec if draw(st.integers(0, 9)) else draw(json_values)


bad_lines = st.sampled_from([b"{", b"", b"  \n", b"\n", b"[1, 2]\n", b"null", b'"s"', b"NaN",
                             b'{"score": NaN}', b"\xff{}", b"{} {}", b"1, 2", "{\"a\": 1}",
                             b'{"model": "fraud", "model": 3, "timestamp": 1, '
                             b'"prediction": {"score": 0.1}}', b"\xef\xbb\xbf{}",
                             b'{"timestamp": 18446744073709551616, "prediction": {"score": 1}}'])


def dumps(record: Any) -> bytes:
    """JSON text of a record (the stdlib writes ints beyond 64 bits, which orjson refuses)."""
    return json.dumps(record, ensure_ascii=False).encode()


lines = st.lists(st.one_of(records().map(lambda r: dumps(r) + b"\n"),
                           records().map(lambda r: json.dumps(r)), bad_lines), max_size=25)
options = st.fixed_dictionaries({
    "default_model": st.sampled_from([None, "fraud"]),
    "known_models": st.sampled_from([None, ["fraud", "m2"], []]),
    "feature_types": st.sampled_from([None, {"amount": "numeric", "country": "categorical",
                                             "declared_only": "numeric", "zip": "numeric"}]),
})


# ---- the comparisons ---------------------------------------------------------------------
@SETTINGS
@given(schema=st.sampled_from(sorted(SCHEMAS)), kw=options, batch=lines)
def test_lines_decode_as_the_reference_does(schema, kw, batch):
    spec = SCHEMAS[schema]
    assert_same(Decoder(spec, **kw).decode_lines(batch), _reference_decode(spec, batch, **kw))


@SETTINGS
@given(schema=st.sampled_from(sorted(SCHEMAS)), kw=options, n=st.integers(1, 20),
       data=st.data())
def test_clean_batches_take_the_fast_paths_and_agree(schema, kw, n, data):
    """Batches without odd values (the common case) — the fast paths — agree too."""
    good = [{"model": "fraud", "model_version": "v1", "prediction_id": f"p{i}",
             "timestamp": data.draw(st.one_of(st.floats(0, 2e9), st.integers(0, 2 * 10**12))),
             "features": {"amount": data.draw(st.floats(0, 1e4)), "country": "US",
                          "zip": data.draw(st.integers(0, 99999))},
             "prediction": {"score": data.draw(st.floats(0, 1))}, "label": i % 2,
             "tags": data.draw(st.lists(st.sampled_from(["a", "b"]), max_size=2)),
             "outcome": "ok"} for i in range(n)]
    raw = [orjson.dumps(r) for r in good]
    spec = SCHEMAS[schema]
    assert_same(Decoder(spec, **kw).decode_lines(raw), _reference_decode(spec, raw, **kw))


class Score(float):
    """A float subclass (as numpy's float64 is)."""


class Tag(str):
    """A str subclass (as numpy's str_ is)."""


ODD_VALUES = [np.float64(0.25), np.int64(3), Score(0.5), math.nan, math.inf, -math.inf, (1, 2),
              "tag", np.str_("US"), np.str_("fraud"), np.str_("ok"), Tag("timeout"), True, 12.0,
              OUTCOME_CODES, None, [np.str_("a"), 1], np.bool_(True)]
ODD_ROLES = ["timestamp", "label", "model", "tags", "model_version", "prediction_id", "outcome"]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_each_odd_value_in_each_place_decodes_as_the_reference_does(value):
    places = [{role: value} for role in ODD_ROLES] + [
        {"features": {"amount": value}}, {"features": {"country": value}},
        {"prediction": {"score": value}}, {"prediction": {"class": value}},
        {"prediction": {"value": value}}, {"features": value}, {"prediction": value}]
    recs = [base(**place) for place in places]
    for kw in ({"known_models": ["fraud"]}, {"feature_types": {"amount": "numeric"}},
               {"feature_types": {"country": "categorical", "amount": "categorical"}}):
        for batch in ([r] for r in recs):
            assert_same(Decoder(SchemaSpec(), **kw).decode_records(batch),
                        _ReferenceDecoder(SchemaSpec(), **kw).decode_records(batch))
        assert_same(Decoder(SchemaSpec(), **kw).decode_records(recs),
                    _ReferenceDecoder(SchemaSpec(), **kw).decode_records(recs))


@SETTINGS
@given(kw=options, batch=st.lists(records(), max_size=15), data=st.data())
def test_python_records_with_odd_types_decode_as_the_reference_does(kw, batch, data):
    """``decode_records`` sees any Python objects: subclasses, numpy scalars, NaN, tuples."""
    odd = st.sampled_from(ODD_VALUES)
    roles = ODD_ROLES
    out = []
    for r in batch:
        if isinstance(r, dict) and data.draw(st.booleans()):
            r = dict(r)
            for role in data.draw(st.lists(st.sampled_from(roles), max_size=3)):
                r[role] = data.draw(odd)
            r["features"] = {"amount": data.draw(odd), "country": data.draw(odd)}
            r["prediction"] = data.draw(st.sampled_from([dict, OrderedDict]))(
                {"score": data.draw(odd), "class": data.draw(odd)})
            wrap = data.draw(st.sampled_from([dict, OrderedDict,
                                              lambda d: defaultdict(int, d)]))
            r = wrap(r)
        out.append(r)
    spec = SchemaSpec()
    assert_same(Decoder(spec, **kw).decode_records(out),
                _ReferenceDecoder(spec, **kw).decode_records(out))


@SETTINGS
@given(kw=options, batch=st.lists(records(), max_size=12))
def test_frames_decode_as_the_reference_does(kw, batch):
    rows = [r for r in batch if isinstance(r, dict)]
    frame = pd.json_normalize(rows) if rows else pd.DataFrame()
    spec = SchemaSpec()
    assert_same(Decoder(spec, **kw).decode_frame(frame),
                _ReferenceDecoder(spec, **kw).decode_frame(frame))


@SETTINGS
@given(batch=st.lists(st.one_of(records().map(dumps), bad_lines), max_size=20))
def test_label_lines_decode_as_the_reference_does(batch):
    for spec in (SchemaSpec(), SchemaSpec(label_id="meta.id", label_value="y",
                                          label_time="meta.ts")):
        new, new_rej = Decoder(spec).decode_label_lines(batch)
        old, old_rej = _ReferenceDecoder(spec).decode_label_lines(batch)
        for k in ("id", "label", "time"):
            assert new[k].dtype == old[k].dtype and canon(new[k].tolist()) == canon(old[k].tolist())
        assert canon([(r.reason, r.raw, r.detail) for r in new_rej]) == \
            canon([(r.reason, r.raw, r.detail) for r in old_rej])


def base(**kw: Any) -> dict:
    rec = {"model": "fraud", "model_version": "v1", "prediction_id": "p1", "timestamp": 100,
           "features": {"amount": 12.5, "country": "US"}, "prediction": {"score": 0.7},
           "label": 1, "tags": ["a"], "outcome": "ok"}
    rec.update(kw)
    return {k: v for k, v in rec.items() if v is not ABSENT}


EVERY_REASON = [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (orjson.dumps(base(model=ABSENT)), "missing_field:model"),
    (orjson.dumps(base(timestamp=ABSENT)), "missing_field:time"),
    (orjson.dumps(base(timestamp="yesterday")), "bad_time"),
    (orjson.dumps(base(prediction={"score": "high"})), "wrong_type:score"),
    (orjson.dumps(base(prediction={"value": [1]})), "wrong_type:value"),
    (orjson.dumps(base(model="other")), "unknown_model"),
    (orjson.dumps(base(outcome="exploded")), "bad_outcome"),
    (orjson.dumps(base(prediction={})), "missing_prediction"),
    (orjson.dumps(base(features=[1, 2])), "wrong_type:features"),
]


@pytest.mark.parametrize(("raw", "reason"), EVERY_REASON)
def test_every_reject_reason_agrees_with_the_reference(raw, reason):
    kw = {"known_models": ["fraud"]}
    good = [orjson.dumps(base(prediction_id=f"p{i}")) for i in range(3)]
    batch = [good[0], raw, good[1], raw, good[2]]
    new = Decoder(SchemaSpec(), **kw).decode_lines(batch)
    assert_same(new, _reference_decode(SchemaSpec(), batch, **kw))
    assert [r.reason for r in new[1]] == [reason, reason]
    assert len(new[0]) == 3


@pytest.mark.parametrize("role", ["score", "value"])
def test_nan_and_inf_numbers_agree_with_the_reference(role):
    recs = [base(prediction={role: v}) for v in (math.nan, math.inf, -math.inf, 0.5)]
    new = Decoder(SchemaSpec()).decode_records(recs)
    assert_same(new, _ReferenceDecoder(SchemaSpec()).decode_records(recs))
    assert [r.reason for r in new[1]] == [f"nan_{role}"] * 3


def test_gc_state_is_restored():
    import gc
    d = Decoder(SchemaSpec())
    d.decode_lines([orjson.dumps(base())])
    assert gc.isenabled()
    gc.disable()
    try:
        d.decode_lines([orjson.dumps(base())])
        assert not gc.isenabled()
    finally:
        gc.enable()
