"""The native JSON reader (``native/``, :mod:`monitor.ingest.native_block`) builds exactly
the table Apache Arrow's JSON reader builds — schema, field order, every value bit for bit —
or declines the block; never another table. Checked on generated blocks (hypothesis: nested
objects, lists, keys that change type, numbers at the edges of int64 and float64, strings
with escapes and dates, duplicate keys, junk), with and without a given schema, and on the
bench's records, which it must take."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pj
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ingest import native_block
from monitor.ingest.arrow_block import Irregular, learned, read_block
from monitor.ingest.native_block import native_table

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

OFF = os.environ.get("SLICEWATCH_NATIVE") == "0"
# SLICEWATCH_FUZZ_EXAMPLES=20000 for a long run (each generated test's examples × that / 300)
SCALE = int(os.environ.get("SLICEWATCH_FUZZ_EXAMPLES", "300")) / 300
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
needs_native = pytest.mark.skipif(OFF, reason="SLICEWATCH_NATIVE=0: the native reader is off")


def test_the_native_reader_is_built():
    """``make install`` builds it (cargo); only SLICEWATCH_NATIVE=0 may leave it out."""
    if OFF:
        assert not native_block.available()
        return
    assert native_block._native is not None, "slicewatch_native not built: make install"
    assert native_block.available()


def arrow_table(block: bytes, schema: pa.Schema | None = None) -> pa.Table | None:
    try:
        return pj.read_json(io.BytesIO(block),
                            read_options=pj.ReadOptions(block_size=len(block) + 64,
                                                        use_threads=False),
                            parse_options=pj.ParseOptions(explicit_schema=schema,
                                                          unexpected_field_behavior="infer"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def same(native: pa.Table, arrow: pa.Table) -> None:
    """Same schema (names, order, types) and the same values; floats by ``repr`` (bits:
    -0.0 is not 0.0)."""
    assert native.schema.equals(arrow.schema), (native.schema, arrow.schema)
    assert repr(native.to_pylist()) == repr(arrow.to_pylist())
    native.validate(full=True)


KEYS = st.sampled_from(["a", "b", "c", "x.y", "é", "k\\n", "timestamp"])
INTS = st.one_of(st.integers(-10, 10), st.integers(-2**63, 2**63 - 1),
                 st.sampled_from([2**63 - 1, -2**63, 2**63, 2**64, 10**20, -10**20, 2**53 + 1]))
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-1e400", "5e-324", "2.2250738585072011e-308", "1E2", "1e-2",
                     "-0", "-0.0", "0.0", "1.7976931348623157e308", "123456789012345678901234",
                     "0.1000000000000000055511151231257827", "9007199254740993.0"]))
STRINGS = st.one_of(
    st.text(max_size=8).map(lambda s: json.dumps(s)),
    st.text(max_size=4).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(['"2024-01-01"', '"2024-01-01T00:00:00"', '"1999"', '"12:00:00"',
                     '"\\u0000x"', '"\\ud83d\\ude00"', '"\\ud800"', '"a\\"b"']))
SCALARS = st.one_of(st.just("null"), st.sampled_from(["true", "false"]), INTS.map(str),
                    FLOAT_TEXT, STRINGS)


def objects(depth: int) -> st.SearchStrategy[str]:
    values = st.one_of(SCALARS, st.lists(SCALARS, max_size=3).map(lambda v: f"[{','.join(v)}]"))
    if depth:
        values = st.one_of(values, objects(depth - 1),
                           st.lists(objects(0), max_size=2).map(lambda v: f"[{','.join(v)}]"))
    pairs = st.lists(st.tuples(KEYS, values), min_size=1, max_size=4,
                     unique_by=lambda kv: kv[0])  # duplicate keys: the junk lines have them
    return pairs.map(lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in kv) + "}")


LINES = st.one_of(objects(2), objects(2), objects(2),
                  st.sampled_from(["", " ", "{", "null", "[1]", '{"a": 1} x', '{"a": 1}{"a": 2}',
                                   '{"a": NaN}', '{"a": Infinity}', '\t{"a": 1}\r',
                                   '{"a": 1, "a": 2}', '{"a": {}}']))


@needs_native
@settings(max_examples=int(400 * SCALE), **FUZZ)
@given(st.lists(LINES, min_size=1, max_size=6), st.booleans())
def test_a_generated_block_is_arrow_s_table_or_declined(lines, final_newline):
    block = ("\n".join(lines) + ("\n" if final_newline else "")).encode()
    native = native_table(block)
    if native is None:
        return
    arrow = arrow_table(block)
    assert arrow is not None, f"native read a block Arrow refuses: {block!r}"
    same(native, arrow)


KINDS = {
    "int": st.integers(-2**63, 2**63 - 1).map(str),
    "float": st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda x: repr(x) != "-0.0").map(repr),
    "text": st.text(max_size=6).filter(lambda t: not t[:4].isdigit()).map(json.dumps),
    "bool": st.sampled_from(["true", "false"]),
    "tags": st.lists(st.text(max_size=3).map(json.dumps), max_size=3).map(
        lambda v: f"[{','.join(v)}]"),
    "struct": st.fixed_dictionaries({"x": st.floats(-1e6, 1e6).filter(
        lambda x: repr(x) != "-0.0")}).map(lambda d: f'{{"x": {d["x"]!r}, "y": "u"}}'),
}


@st.composite
def regular_blocks(draw) -> bytes:
    """Lines of one shape, as a model's log has them: each key one kind (or null), keys in
    any order, some absent."""
    kinds = draw(st.dictionaries(KEYS, st.sampled_from(sorted(KINDS)), min_size=1))
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        keys = draw(st.permutations(sorted(kinds)))[:draw(st.integers(1, len(kinds)))]
        values = [draw(st.one_of(KINDS[kinds[k]], st.just("null"))) for k in keys]
        pairs = (f"{json.dumps(k)}: {v}" for k, v in zip(keys, values, strict=True))
        lines.append("{" + ", ".join(pairs) + "}")
    return "\n".join(lines).encode()


@needs_native
@settings(max_examples=int(300 * SCALE), **FUZZ)
@given(regular_blocks())
def test_a_regular_block_is_read_natively_as_arrow_reads_it(block):
    native = native_table(block)
    assert native is not None, native_block._native.irregular_reason(block)
    same(native, arrow_table(block))
    schema = learned(native.schema)
    if schema is not None:
        again = native_table(block, schema)
        assert again is not None
        same(again, arrow_table(block, schema))


@needs_native
@settings(max_examples=int(300 * SCALE), **FUZZ)
@given(regular_blocks(), st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3)),
                                  min_size=1, max_size=4))
def test_damaged_bytes_are_declined_or_read_as_arrow_reads_them(block, damage):
    """Bytes cut, replaced or inserted anywhere in a regular block (invalid UTF-8, a cut
    escape, a stray quote…): declined, or Arrow's table; never an exception."""
    data = bytearray(block)
    for at, junk in damage:
        at %= len(data) + 1
        data[at:at + len(junk) % 2] = junk  # replace a byte, or insert
    data = bytes(data)
    native = native_table(data)
    if native is not None:
        arrow = arrow_table(data)
        assert arrow is not None, f"native read a block Arrow refuses: {data!r}"
        same(native, arrow)


@needs_native
@settings(max_examples=int(300 * SCALE), **FUZZ)
@given(st.lists(objects(2), min_size=1, max_size=4), st.lists(LINES, min_size=1, max_size=4))
def test_with_the_types_learned_from_the_block_before(first, second):
    """As the decoder does: the next block read with the types of the one before."""
    before = arrow_table("\n".join(first).encode())
    schema = learned(before.schema) if before is not None else None
    block = "\n".join(second).encode()
    native = native_table(block, schema)
    if native is None:
        return
    arrow = arrow_table(block, schema)
    assert arrow is not None, f"native read a block Arrow refuses: {block!r} with {schema}"
    same(native, arrow)


@needs_native
@pytest.mark.parametrize("line", [
    b'{"a": [[1]]}', b'{"a": [{"b": 1}]}', b'{"a": 1, "a": 2}', b'{"t": "2024-01-01"}',
    b'{"a": -0}', b'{"a": 9223372036854775808}', b'{"a": 1e400}', b'{"a": NaN}', b"null",
    b'{"a": 1} {"b": 2}', b'{"a": {}}', b'{"a": "\\ud800"}', b'{"a": [null, true]}',
])
def test_what_it_declines(line):
    assert native_table(line + b'\n{"a": 1}') is None


@needs_native
def test_a_value_that_changes_kind_is_declined():
    assert native_table(b'{"a": 1}\n{"a": "x"}') is None
    assert native_table(b'{"a": 1}\n{"a": 2.5}') is not None  # int64 → double, as Arrow
    assert native_table(b'{"a": 2.5}', pa.schema([("a", pa.int64())])) is None


@needs_native
def test_the_bench_records_are_read_natively_and_equal_arrow_s():
    from ingest import make_records

    block = b"\n".join(make_records(3000, seed=5))
    native = native_table(block)
    assert native is not None
    same(native, arrow_table(block))
    again = native_table(block, learned(native.schema))  # the next block, types known
    assert again is not None
    same(again, arrow_table(block, learned(native.schema)))
    assert read_block(block.split(b"\n")).num_rows == 3000


@needs_native
def test_blank_lines_are_skipped_as_arrow_skips_them_and_the_caller_counts_lines():
    block = b'{"a": 1}\n\n  \r\n{"a": 2}\n'
    same(native_table(block), arrow_table(block))
    assert native_table(block).num_rows == 2
    with pytest.raises(Irregular):  # three lines given, two objects read
        read_block([b'{"a": 1}', b' ', b'{"a": 2}'])


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("SLICEWATCH_NATIVE", "0")
    assert native_table(b'{"a": 1}') is None
    assert read_block([b'{"a": 1}']).column("a").to_pylist() == [1]  # Arrow's reader
