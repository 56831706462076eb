"""CSV files read a batch at a time by Arrow give exactly what the row-by-row path gives
(``FileSource(arrow=False)``: each row checked, ``pandas.read_csv`` over the batch, rows
decoded record by record): the same chunks, positions, records, columns, rejects and dead
letters, on random files with bad rows, blank lines, null markers, quoted fields, numbers
pandas reads but Arrow would not, JSON-list tag cells."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monitor.ingest.csvblocks import (
    CsvBatch,
    Pushback,
    pandas_typed,
    parse_block,
    read_lines,
    regular,
)
from monitor.ingest.decode import Decoder
from monitor.ingest.decode_arrow import ArrowDecoder
from monitor.ingest.file import FileSource
from slices.spec import SchemaSpec
from tests.unit.test_decode_reference import SETTINGS, assert_same

HEADER = ["model", "timestamp", "prediction_id", "prediction.score", "label", "tags",
          "features.amount", "features.country", "features.zip", "features.flag"]
KW = {"default_model": "fraud", "known_models": ["fraud"],
      "feature_types": {"amount": "numeric", "country": "categorical"}}

regular_cell = {
    "model": st.just("fraud"),
    "timestamp": st.one_of(st.integers(10**9, 2 * 10**9).map(str),
                           st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"])),
    "prediction_id": st.one_of(st.integers(0, 10**6).map(str), st.text("abc", max_size=4)),
    "prediction.score": st.floats(0, 1).map(repr),
    "label": st.sampled_from(["0", "1", "", "a"]),
    "tags": st.sampled_from(["", "a", "new_user", '"[""a"", ""b""]"', '"[]"']),
    "features.amount": st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-99, 99).map(str),
                                 st.just("")),
    "features.country": st.sampled_from(["US", "BR", "", "NA", "None"]),
    "features.zip": st.one_of(st.integers(0, 99999).map(str), st.just("")),
    "features.flag": st.sampled_from(["true", "False", "TRUE", ""]),
}
odd_cell = st.sampled_from([
    "", "+1", " 1", "1 ", "inf", "-Infinity", "12345678901234567890", "1e400", "0x1F",
    "yesterday", "[oops", '"[1]"', '"x""y"', '"a,b"', '"multi\nline"', "n/a", "<NA>", "1.5",
    "-0", "007", ".5", "5.", "1E5", "True", "é", "2026-13-01T00:00:00Z", "-"])
odd_line = st.sampled_from([b"\n", b"  \n", b"1,2\n", b"\xff,\xfe\n", b'a,"b\n', b"\r\n",
                            b",,,,,,,,,,,\n", b"x" * 300 + b"\n"])


@st.composite
def csv_files(draw) -> bytes:
    n = draw(st.integers(1, 25))
    out = [",".join(HEADER).encode() + b"\n"]
    for _ in range(n):
        if not draw(st.integers(0, 12)):
            out.append(draw(odd_line))
            continue
        cells = [draw(regular_cell[name]) if draw(st.integers(0, 15)) else draw(odd_cell)
                 for name in HEADER]
        out.append(",".join(cells).encode() + b"\n")
    data = b"".join(out)
    if draw(st.booleans()):
        data = data.rstrip(b"\n")  # a last line without newline
    return data


def chunks_decoded(path: Path, *, arrow: bool, batch_size: int) -> list[Any]:
    decoder = ArrowDecoder(SchemaSpec(), **KW) if arrow else Decoder(SchemaSpec(), **KW)
    out = []
    for c in FileSource([str(path)], batch_size=batch_size, max_record_bytes=256,
                        arrow=arrow).chunks():
        if c.kind == "lines":
            out.append(("lines", c.position, decoder.decode_lines(c.payload)))
        else:
            out.append(("frame", c.position, decoder.decode_frame(c.payload)))
    return out


@SETTINGS
@given(data=csv_files(), batch_size=st.integers(1, 12))
def test_csv_through_arrow_decodes_as_the_row_path_does(tmp_path_factory, data, batch_size):
    path = tmp_path_factory.mktemp("csv") / "a.csv"
    path.write_bytes(data)
    new = chunks_decoded(path, arrow=True, batch_size=batch_size)
    old = chunks_decoded(path, arrow=False, batch_size=batch_size)
    assert [(k, p) for k, p, _ in new] == [(k, p) for k, p, _ in old]
    for (_, _, a), (_, _, b) in zip(new, old, strict=True):
        assert_same(a, b)


def test_a_regular_csv_file_is_read_by_arrow_and_decoded_from_columns(tmp_path):
    rows = [f"fraud,{10**9 + i},p{i},0.{i % 10},{i % 2},a,{i}.5,US,{i},true"
            for i in range(100)]
    path = tmp_path / "a.csv"
    path.write_text(",".join(HEADER) + "\n" + "\n".join(rows) + "\n")
    chunks = list(FileSource([str(path)], batch_size=30).chunks())
    assert [len(c.payload) for c in chunks] == [30, 30, 30, 10]
    assert all(isinstance(c.payload, CsvBatch) for c in chunks)
    d = ArrowDecoder(SchemaSpec(), **KW)
    batches = [d.decode_frame(c.payload) for c in chunks]
    assert d.fast_blocks == 4 and all(not rejects for _, rejects in batches)
    assert batches[0][0].features["amount"][:2].tolist() == [0.5, 1.5]


def test_blocks_are_whole_lines_and_give_back_the_rest():
    src = Pushback(io.BytesIO(b"a\nb\nc\nd"))
    assert read_lines(src, 2) == (b"a\nb\n", True)
    assert src.readline(10) == b"c\n"
    assert read_lines(src, 5) == (b"d", True)
    assert read_lines(src, 5) == (b"", True)


def test_what_arrow_must_not_read():
    assert regular(b'1,"a,b"\n2,"c""d"\n', 100)
    for bad in (b"1,2\n\n3,4\n", b"1,2\r3,4\n", b'1,"a\nb"\n', b'1,a"b\n', b"\xff\n",
                b"1," + b"x" * 200 + b"\n"):
        assert not regular(bad, 100), bad
    text = parse_block(b"1,True\n,false\n", ["a", "b"])
    assert [pandas_typed(text.column(k).combine_chunks()).to_pylist() for k in "ab"] == [
        [1.0, None], [True, False]]
