"""Arrow tables (Parquet, CSV) decoded straight from their columns give exactly what the row
path gives (the batch turned into a pandas frame, rows un-flattened, decoded record by record:
``Decoder.decode_frame``): on regular tables, which must take the column path, and on odd
ones (nulls, NaN, wrong types, bad times, JSON-list tag text), which must fall back for that
batch and keep every reject reason and raw payload. Both layouts: nested struct columns and
flat dotted column names."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from monitor.ingest.decode import Decoder
from monitor.ingest.decode_arrow import ArrowDecoder
from slices.spec import SchemaSpec
from tests.unit.test_decode_reference import SCHEMAS, SETTINGS, assert_same

FEATURE_TYPES = {"amount": "numeric", "country": "categorical", "declared_only": "numeric",
                 "zip": "numeric"}
KW = [{}, {"default_model": "fraud", "known_models": ["fraud"]},
      {"default_model": "fraud", "feature_types": FEATURE_TYPES, "max_future": 3600.0,
       "probability_models": ["fraud"]}]


def layouts(rows: list[dict], how: str) -> pa.Table:
    """``rows`` as a table: ``nested`` (struct columns), ``flat`` (dotted names, through
    pandas), or ``mixed`` (``prediction`` flat, the rest nested)."""
    if how == "nested":
        return pa.Table.from_pylist(rows)
    if how == "flat":
        return pa.Table.from_pandas(pd.json_normalize(rows), preserve_index=False)
    flat = [{**{k: v for k, v in r.items() if k != "prediction"},
             **{f"prediction.{k}": v for k, v in r["prediction"].items()}}
            if isinstance(r.get("prediction"), dict) else r for r in rows]
    return pa.Table.from_pylist(flat)


def both(spec: SchemaSpec, table: pa.Table | pa.RecordBatch, **kw: Any) -> ArrowDecoder:
    d = ArrowDecoder(spec, **kw)
    assert_same(d.decode_frame(table), Decoder(spec, **kw).decode_frame(table.to_pandas()))
    return d


KINDS = {
    "float": (pa.float64(), st.one_of(st.none(), st.floats(), st.floats(0, 1),
                                      st.floats(1e9, 2e9))),
    "float32": (pa.float32(), st.one_of(st.none(), st.floats(0, 1, width=32))),
    "int": (pa.int64(), st.one_of(st.none(), st.integers(-2**63, 2**63 - 1),
                                  st.integers(0, 2 * 10**12), st.integers(0, 3))),
    "str": (pa.string(), st.one_of(st.none(), st.text(max_size=6), st.sampled_from(
        ["fraud", "US", "ok", "timeout", "OK", "2026-01-01T00:00:00Z", "2026-01-01",
         "yesterday", '["a", "b"]', "[oops", ' ["x"]', "[1]", "1.5", "a"]))),
    "bool": (pa.bool_(), st.one_of(st.none(), st.booleans())),
    "ts": (None, st.one_of(st.none(), st.datetimes(dt.datetime(1600, 1, 1),
                                                   dt.datetime(2300, 1, 1)))),
    "date": (pa.date32(), st.one_of(st.none(), st.dates(dt.date(1990, 1, 1)))),
    "list": (pa.list_(pa.string()), st.one_of(st.none(), st.lists(st.one_of(
        st.none(), st.sampled_from(["a", "b"])), max_size=3))),
    "listint": (pa.list_(pa.int64()), st.one_of(st.none(), st.lists(st.one_of(
        st.none(), st.integers(0, 3)), max_size=3))),
    "null": (pa.null(), st.none()),
}
GROUPS = {"": ["model", "timestamp", "prediction_id", "model_version", "label", "outcome",
               "tags", "where", "y"],
          "prediction": ["score", "class", "value"], "features": ["amount", "country", "zip"],
          "meta": ["model", "ts", "id"], "out": ["p", "v", "c"], "x": ["amt", "a"],
          "ctx": ["country"]}


@st.composite
def hostile_tables(draw) -> pa.Table:
    """Columns of random Arrow types (nulls, NaN, out-of-range times, JSON-list text…) for
    the roles of the default and custom schemas; each group flat (dotted names) or a struct
    column (whole cells null at times)."""
    n = draw(st.integers(1, 8))
    cols: dict[str, pa.Array] = {}
    for group, leaves in GROUPS.items():
        fields = {}
        for leaf in leaves:
            if not draw(st.integers(0, 3)):
                continue
            kind = draw(st.sampled_from(sorted(KINDS)))
            kind_type, values = KINDS[kind]
            if kind == "ts":
                kind_type = pa.timestamp(draw(st.sampled_from(["s", "ms", "us", "ns"])),
                                         draw(st.sampled_from([None, "UTC", "Europe/Berlin"])))
            vals = [draw(values) for _ in range(n)]
            try:
                fields[leaf] = pa.array(vals, kind_type)
            except (pa.ArrowInvalid, OverflowError):
                fields[leaf] = pa.nulls(n, kind_type)
        if not fields:
            continue
        if group and draw(st.booleans()):
            mask = pa.array([draw(st.integers(0, 4)) == 0 for _ in range(n)])
            cols[group] = pa.StructArray.from_arrays(list(fields.values()), list(fields),
                                                     mask=mask)
        else:
            cols.update({f"{group}.{k}" if group else k: v for k, v in fields.items()})
    assume(cols)
    return pa.table(cols)


@SETTINGS
@given(schema=st.sampled_from(sorted(SCHEMAS)), kw=st.sampled_from(KW), table=hostile_tables())
def test_hostile_tables_decode_as_the_row_path_does(schema, kw, table):
    both(SCHEMAS[schema], table, **kw)


# ---- regular tables: every row kept by the per-record rules ---------------------------------
iso = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+01:00",
                       "2026-03-04T05:06:07.123456Z"])
regular_value = st.one_of(st.floats(-1e6, 1e6), st.integers(-10**6, 10**6))


@st.composite
def regular_rows(draw) -> list[dict]:
    n = draw(st.integers(1, 30))
    kind = draw(st.sampled_from(["iso", "epoch", "ms", "native", "aware"]))
    amount = draw(st.sampled_from([st.floats(-1e6, 1e6), st.integers(-10**6, 10**6)]))
    label = draw(st.sampled_from([st.integers(0, 1), st.one_of(st.none(), st.integers(0, 1)),
                                  st.one_of(st.none(), st.sampled_from(["a", "b"]))]))
    ids = draw(st.sampled_from([st.text(max_size=8), st.integers(0, 10**9)]))
    tags = draw(st.sampled_from(["list", "json", "one", "none"]))
    out = []
    for _ in range(n):
        sec = draw(st.integers(10**9, 2 * 10**9))
        when: Any = {"iso": draw(iso), "epoch": sec, "ms": sec * 1000 + draw(st.integers(0, 999)),
                     "native": dt.datetime.fromtimestamp(sec, dt.UTC).replace(tzinfo=None),
                     "aware": dt.datetime.fromtimestamp(sec, dt.UTC)}[kind]
        rec = {"model": "fraud", "model_version": draw(st.sampled_from(["v1", "v2"])),
               "prediction_id": draw(ids), "timestamp": when,
               "features": {"amount": draw(amount),
                            "country": draw(st.one_of(st.none(), st.sampled_from(["US", "BR"]))),
                            "zip": draw(st.one_of(st.none(), st.integers(0, 99999)))},
               "prediction": {"score": draw(st.floats(0, 1))}, "label": draw(label),
               "outcome": draw(st.sampled_from(["ok", "timeout", "error", "fallback"])),
               "ctx": {"ua": draw(st.text(max_size=12)), "n": draw(regular_value)}}
        picked = draw(st.lists(st.sampled_from(["a", "b", "new_user"]), max_size=3))
        if tags == "list":
            rec["tags"] = picked
        elif tags == "json":
            rec["tags"] = " " * draw(st.integers(0, 1)) + str(picked).replace("'", '"')
        elif tags == "one":
            rec["tags"] = draw(st.sampled_from(["a", "b"]))
        out.append(rec)
    return out


@SETTINGS
@given(rows=regular_rows(), how=st.sampled_from(["nested", "flat", "mixed"]),
       kw=st.sampled_from(KW[1:]))
def test_regular_tables_take_the_column_path_and_agree(rows, how, kw):
    table = layouts(rows, how)
    d = both(SchemaSpec(), table, **{**kw, "max_future": None})
    assert d.fast_blocks == 1 and d.slow_blocks == 0
    d = both(SchemaSpec(), table.to_batches()[0], **{**kw, "max_future": None})
    assert d.fast_blocks == 1


IRREGULAR = {  # a column that the row path treats differently from a plain one
    "null time": {"timestamp": [1.7e9, None]},
    "NaN score in a struct": {"prediction": [{"score": 0.5}, {"score": float("nan")}]},
    "string score": {"prediction.score": ["0.5", "x"]},
    "bad iso time": {"timestamp": ["2026-01-01T00:00:00Z", "yesterday"]},
    "bad JSON tags": {"tags": ['["a"]', "[oops"]},
    "unknown model": {"model": ["fraud", "other"]},
    "same name twice": None,
    "name and prefix": {"prediction": [{"score": 0.1}, {"score": 0.2}],
                        "prediction.score": [0.3, 0.4]},
}


@pytest.mark.parametrize("name", sorted(IRREGULAR))
def test_each_odd_column_falls_back_and_agrees(name):
    base = {"model": ["fraud", "fraud"], "timestamp": [1.7e9, 1.7e9 + 1],
            "prediction.score": [0.1, 0.2], "features.amount": [1.0, 2.0]}
    cols = {**base, **(IRREGULAR[name] or {})}
    if "prediction" in cols and name != "name and prefix":
        del cols["prediction.score"]
    if IRREGULAR[name] is None:
        arrays = [pa.array(v) for v in base.values()] + [pa.array([1.0, 2.0])]
        table = pa.Table.from_arrays(arrays, names=[*base, "features.amount"])
    else:
        table = pa.table(cols)
    d = both(SchemaSpec(), table, known_models=["fraud"], default_model="fraud")
    assert d.slow_blocks == 1


def test_nulls_in_a_flat_model_column_are_the_single_model():
    table = pa.table({"model": ["fraud", None], "timestamp": [1.7e9, 1.7e9],
                      "prediction.score": [0.1, 0.2]})
    d = both(SchemaSpec(), table, default_model="fraud")
    assert d.fast_blocks == 1
