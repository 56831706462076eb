"""The Arrow fast path of ``ArrowDecoder.decode_lines`` gives exactly what the reference
per-record decoder gives, on regular blocks (which must take the fast path) and on hostile
ones (which must fall back for that block and keep every reject reason and raw payload)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.ingest.decode import Decoder
from monitor.ingest.decode_arrow import ArrowDecoder
from monitor.ingest.lines import plain_lines
from slices.spec import SchemaSpec
from tests.unit.test_decode_reference import (
    ABSENT,
    SCHEMAS,
    SETTINGS,
    _reference_decode,
    assert_same,
    bad_lines,
    base,
    lines,
    options,
)

FEATURE_TYPES = {"amount": "numeric", "country": "categorical", "declared_only": "numeric",
                 "zip": "numeric"}


def both(spec: SchemaSpec, batch: list, **kw: Any) -> ArrowDecoder:
    """Decode with the fast decoder and the reference; assert equal; the decoder."""
    d = ArrowDecoder(spec, **kw)
    assert_same(d.decode_lines(batch), _reference_decode(spec, batch, **kw))
    return d


@SETTINGS
@given(schema=st.sampled_from(sorted(SCHEMAS)), kw=options, batch=lines)
def test_hostile_blocks_decode_as_the_reference_does(schema, kw, batch):
    both(SCHEMAS[schema], batch, **kw)


# ---- regular records: varied, but each one kept by the per-record rules ---------------------
iso = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+01:00",
                       "2026-03-04T05:06:07.123456Z"])
# no ":,[" (a NaN token after these sends the block to the per-record path), no surrogates
TEXT = st.characters(blacklist_characters=":,[", blacklist_categories=["Cs"])
regular_value = st.one_of(st.floats(-1e6, 1e6), st.integers(-10**6, 10**6))


@st.composite
def regular_block(draw) -> tuple[list[bytes], bool]:
    """Lines every field of which the reference keeps; ``iso``: times are text."""
    n = draw(st.integers(1, 30))
    text_times = draw(st.booleans())
    int_label = draw(st.booleans())
    with_tags = draw(st.sampled_from(["list", "none", "string"]))
    extra = draw(st.sampled_from(["", "zip", "flag", "note"]))
    ids = draw(st.sampled_from([st.text(max_size=8), st.integers(0, 10**9)]))  # one type a block
    out = []
    for _i in range(n):
        feats = {"amount": draw(regular_value), "country": draw(st.sampled_from(["US", "BR"]))}
        if extra == "zip" or (extra and draw(st.booleans())):
            feats[extra] = {"zip": draw(st.integers(0, 99999)), "flag": draw(st.booleans()),
                            "note": draw(st.one_of(st.none(), st.text(max_size=5)))}[extra]
        rec = {"model": "fraud", "model_version": draw(st.sampled_from(["v1", "v2"])),
               "prediction_id": draw(ids),
               "timestamp": draw(iso) if text_times else draw(st.one_of(
                   st.floats(1e9, 2e9), st.integers(10**9, 2 * 10**9),
                   st.integers(10**12, 2 * 10**12))),
               "features": feats,
               "prediction": {"score": draw(st.floats(0, 1))},
               "label": (draw(st.integers(0, 1)) if int_label
                         else draw(st.one_of(st.none(), st.sampled_from(["a", "b"])))),
               "outcome": draw(st.sampled_from(["ok", "timeout", "error", "fallback"])),
               "ctx": {"ua": draw(st.text(TEXT, max_size=12)), "n": draw(regular_value)}}
        if with_tags == "list":
            rec["tags"] = draw(st.lists(st.sampled_from(["a", "b", "new_user"]), max_size=3))
        elif with_tags == "string":
            rec["tags"] = draw(st.sampled_from(["a", "b"]))
        out.append(orjson.dumps(rec) + b"\n")
    return out, text_times


@SETTINGS
@given(block=regular_block(), types=st.sampled_from([None, FEATURE_TYPES]))
def test_regular_blocks_take_the_fast_path_and_agree(block, types):
    batch, text_times = block
    kw = {"default_model": "fraud", "known_models": ["fraud"], "feature_types": types}
    d = both(SchemaSpec(), batch, **kw)
    if text_times:  # the first block of text times may learn to read them as text
        fast = d.fast_blocks
        assert_same(d.decode_lines(batch), _reference_decode(SchemaSpec(), batch, **kw))
        assert d.fast_blocks == fast + 1
    else:
        assert d.fast_blocks == 1


@SETTINGS
@given(block=regular_block(), bad=bad_lines, at=st.integers(0, 30))
def test_one_irregular_line_sends_only_its_block_to_the_per_record_path(block, bad, at):
    batch, text_times = block
    kw = {"default_model": "fraud", "known_models": ["fraud"], "feature_types": FEATURE_TYPES}
    d = ArrowDecoder(SchemaSpec(), **kw)
    if text_times:
        d.decode_lines(batch)
    hostile = [*batch[:at], bad, *batch[at:]]
    assert_same(d.decode_lines(hostile), _reference_decode(SchemaSpec(), hostile, **kw))
    fast = d.fast_blocks
    assert_same(d.decode_lines(batch), _reference_decode(SchemaSpec(), batch, **kw))
    assert d.fast_blocks == fast + 1


@SETTINGS
@given(blocks=st.lists(st.one_of(regular_block().map(lambda b: b[0]), lines), min_size=2,
                       max_size=5),
       types=st.sampled_from([None, FEATURE_TYPES]))
def test_one_decoder_over_blocks_of_changing_shape_agrees_block_by_block(blocks, types):
    """Each block is read with the types of the last one read through Arrow (a field's type
    changes, a field is absent from every line, junk): block by block the reference's."""
    kw = {"default_model": "fraud", "known_models": ["fraud"], "feature_types": types}
    d = ArrowDecoder(SchemaSpec(), **kw)
    for batch in blocks:
        assert_same(d.decode_lines(batch), _reference_decode(SchemaSpec(), batch, **kw))


@pytest.mark.parametrize("second", [
    {"label": ABSENT}, {"tags": ABSENT}, {"label": None}, {"label": "yes"}, {"label": 0.5},
    {"features": {"amount": 3, "country": "US"}}, {"features": {"country": "US"}},
    {"features": {"amount": 1.5, "country": "US", "zip": "x"}}, {"prediction": {}},
    {"ctx": ABSENT}, {"ctx": {"new": [1, 2]}}, {"prediction_id": 7}])
def test_a_block_unlike_the_one_before_agrees_with_the_reference(second):
    first = [orjson.dumps(base(prediction_id=f"p{i}", label=1, tags=["a"], ctx={"n": 1.5},
                               features={"amount": 1.5, "country": "US", "zip": 3,
                                         "undeclared": 2.5}))
             for i in range(3)]
    block = [json.dumps(base(**{"prediction_id": f"q{i}", **second})).encode()
             for i in range(3)]
    kw = {"default_model": "fraud", "feature_types": FEATURE_TYPES}
    d = ArrowDecoder(SchemaSpec(), **kw)
    for batch in (first, block, first, first):
        assert_same(d.decode_lines(batch), _reference_decode(SchemaSpec(), batch, **kw))
    assert d.fast_blocks >= 3


@pytest.mark.parametrize("token", [b"NaN", b"-NaN", b"Inf", b"-Inf", b"Infinity", b"[1, Inf]",
                                   b'{"a": -Infinity}', b"1e999"])
@pytest.mark.parametrize("where", ["amount", "ctx"])
def test_nan_and_infinity_tokens_are_refused_as_orjson_refuses_them(token, where):
    good = orjson.dumps(base(ctx={"n": 1.5}))
    bad = good.replace(b'"amount":12.5' if where == "amount" else b'"n":1.5',
                       (b'"amount":' if where == "amount" else b'"n":') + token)
    assert bad != good
    d = ArrowDecoder(SchemaSpec())
    for block in ([good, bad, good], [good, good], [bad]):
        assert_same(d.decode_lines(block), _reference_decode(SchemaSpec(), block))


@SETTINGS
@given(batch=lines, kw=options)
def test_a_files_block_decodes_as_its_lines_do(batch, kw):
    """A file's block handed on whole (:class:`Lines`: no split, no join) decodes as the same
    lines one by one, and as the reference decodes them."""
    block = b"".join(x if isinstance(x, bytes) else x.encode() + b"\n" for x in batch)
    whole = plain_lines(block, 1 << 20)
    if whole is None:
        return
    split = block.splitlines(keepends=True)
    assert whole == split and len(whole) == len(split)
    got = ArrowDecoder(SchemaSpec(), **kw).decode_lines(whole)
    assert_same(got, ArrowDecoder(SchemaSpec(), **kw).decode_lines(split))
    assert_same(got, _reference_decode(SchemaSpec(), split, **kw))


IRREGULAR = {  # one record, kept or rejected by the per-record rules, odd for Arrow
    "null model": base(model=None), "absent model": base(model=ABSENT),
    "unknown model": base(model="other"), "int model": base(model=3),
    "string score": base(prediction={"score": "0.5"}), "bool score": base(prediction={
        "score": True}), "score out of range": base(prediction={"score": 1.5}),
    "no prediction": base(prediction={}), "float label 1.0": base(label=1.0),
    "float id": base(prediction_id=2.0), "nested label": base(label={"a": 1}),
    "list feature": base(features={"amount": 1, "country": ["US"]}),
    "string amount": base(features={"amount": "12", "country": "US"}),
    "features not object": base(features="x"), "bad outcome": base(outcome="exploded"),
    "bad time": base(timestamp="yesterday"), "no time": base(timestamp=ABSENT),
    "far future": base(timestamp=4e9), "before 1677": base(timestamp=-1e10),
    "big int categorical": base(features={"amount": 1, "country": 10**17 + 1}),
    "extra key": base(features={"amount": 1, "country": "US", "new": [1]}),
}


@pytest.mark.parametrize("name", sorted(IRREGULAR))
@pytest.mark.parametrize("spec_kw", [{"known_models": ["fraud"]},
                                     {"default_model": "fraud", "max_future": 3600.0,
                                      "probability_models": ["fraud"],
                                      "feature_types": {"amount": "numeric"}}])
def test_each_irregular_record_agrees_with_the_reference(name, spec_kw):
    good = [orjson.dumps(base(prediction_id=f"p{i}")) for i in range(3)]
    block = [good[0], json.dumps(IRREGULAR[name]).encode(), good[1], good[2]]
    d = ArrowDecoder(SchemaSpec(), **spec_kw)
    new = d.decode_lines(block)
    if "max_future" in spec_kw:  # checks the reference predates: the per-record path's
        assert_same(new, Decoder(SchemaSpec(), **spec_kw).decode_lines(block))
    else:
        assert_same(new, _reference_decode(SchemaSpec(), block, **spec_kw))
    if new[1]:  # a reject is named by the per-record path
        assert d.slow_blocks == 1
    assert d.decode_lines(good)[1] == [] and d.fast_blocks >= 1


def test_text_that_arrow_would_read_as_a_timestamp_stays_text():
    block = [orjson.dumps(base(prediction_id=f"p{i}", features={"country": "2026-01-01"},
                               label="2026-01-01 10:00:00")) for i in range(3)]
    new = ArrowDecoder(SchemaSpec()).decode_lines(block)
    assert_same(new, _reference_decode(SchemaSpec(), block))
    assert new[0].features["country"].tolist() == ["2026-01-01"] * 3


def test_deep_nesting_falls_back_without_crashing():
    deep = b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    good = orjson.dumps(base())
    d = ArrowDecoder(SchemaSpec())
    batch, rejects = d.decode_lines([good, deep])
    assert len(batch) == 1 and [r.reason for r in rejects] == ["invalid_json"]
    assert d.slow_blocks == 1


def test_a_byte_order_mark_inside_a_string_keeps_the_fast_path():
    """U+FEFF in text is data (Arrow and orjson read it alike); found by hypothesis."""
    block = [orjson.dumps(base(prediction_id=f"p{i}\ufeff",
                               features={"amount": 1, "country": "\ufeffUS"}))
             for i in range(3)]
    d = ArrowDecoder(SchemaSpec())
    new = d.decode_lines(block)
    assert_same(new, _reference_decode(SchemaSpec(), block))
    assert d.fast_blocks == 1 and new[0].features["country"].tolist() == ["\ufeffUS"] * 3


@pytest.mark.parametrize("after", [b"{", b":", b","])
def test_a_byte_order_mark_between_tokens_is_rejected_as_the_reference_does(after):
    good = orjson.dumps(base(prediction_id="p0"))
    at = good.index(after) + 1
    bad = good[:at] + "\ufeff".encode() + good[at:]
    block = [good, bad]
    d = ArrowDecoder(SchemaSpec())
    new = d.decode_lines(block)
    assert_same(new, _reference_decode(SchemaSpec(), block))
    assert [r.reason for r in new[1]] == ["invalid_json"] and d.slow_blocks == 1
