"""Text columns straight to codes (issue 13): the Arrow decoder registers each text column's
codes and distinct values with it (``slices.codes.known``). Checked here on nasty strings:
the registered codes are pandas' ``factorize`` of the cells, both decoders give the same
batch, and what the core derives from codes (drift category codes, record keys) is what it
derives from plain object columns."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.core.prepare import Preparer, record_keys
from monitor.core.types import RecordBatch
from monitor.drift.summary import CategoricalSummary
from monitor.ingest.decode import Decoder
from monitor.ingest.decode_arrow import ArrowDecoder, _text_objects
from monitor.ingest.file import FileSource, _text_columns
from slices import codes as sc
from slices.spec import ModelSpec, SchemaSpec
from tests.unit.test_decode_reference import assert_same

NASTY = ["", "é", "☃ snow", "x" * 5000, "null", "None", "1", "1.0", "0", " ", "NaN", "true",
         "US", "\u0000", "日本"]
ROLES = ("model", "version", "id", "pred_class", "label")


def _plain(col: np.ndarray) -> np.ndarray:
    """The same cells as a new, unregistered array of distinct objects."""
    out = np.empty(col.shape[0], dtype=object)
    out[:] = [v if not isinstance(v, str) else "".join(list(v)) for v in col.tolist()]
    return out


def assert_codes_true(batch: RecordBatch, expect_known: tuple[str, ...] = ()) -> None:
    """Every registered column's codes are pandas' on its cells; ``expect_known``: columns
    that must be registered."""
    cols = {**{r: getattr(batch, r) for r in ROLES}, **batch.features}
    for name in expect_known:
        assert sc._known(cols[name]) is not None, name
    for name, col in cols.items():
        if sc._known(col) is None:
            continue
        plain = _plain(col)
        for sentinel in (True, False):
            codes, uniques = sc.factorize(col, use_na_sentinel=sentinel)
            want_codes, want_uniques = pd.factorize(plain, use_na_sentinel=sentinel)
            np.testing.assert_array_equal(codes, want_codes, err_msg=name)
            assert codes.dtype == want_codes.dtype
            assert [u if u == u else "nan" for u in uniques.tolist()] == \
                [u if u == u else "nan" for u in want_uniques.tolist()], name
        np.testing.assert_array_equal(sc.isna(col), pd.isna(plain), err_msg=name)
        assert not col.flags.writeable, name


def _records(rng: np.random.Generator, n: int, pool: list[str] = NASTY) -> list[dict]:
    out = []
    for i in range(n):
        r: dict = {"timestamp": 1_700_000_000 + i, "prediction": {"score": 0.5}}
        for key, where in (("c", "features"), ("d", "features")):
            k = rng.integers(0, len(pool) + 2)
            if k < len(pool):
                r.setdefault(where, {})[key] = pool[k]
            elif k == len(pool):
                r.setdefault(where, {})[key] = None  # null; the last k: absent
        for key in ("model_version", "label", "prediction_id"):
            k = rng.integers(0, len(pool) + 2)
            if k < len(pool):
                r[key] = pool[k]
            elif k == len(pool):
                r[key] = None
        if rng.random() < 0.5:
            r["prediction"]["class"] = pool[rng.integers(0, len(pool))]
        r.setdefault("features", {})["n"] = float(i)
        out.append(r)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_nasty_strings_json_lines(seed):
    rng = np.random.default_rng(seed)
    lines = [orjson.dumps(r) for r in _records(rng, 400)]
    kw = {"default_model": "fraud", "feature_types": {"n": "numeric"}}
    fast = ArrowDecoder(SchemaSpec(), **kw)
    got = fast.decode_lines(lines)
    assert fast.fast_blocks == 1
    assert_same(got, Decoder(SchemaSpec(), **kw).decode_lines(lines))
    assert_codes_true(got[0], ("model", "version", "label", "c", "d"))


@pytest.mark.parametrize("seed", range(3))
def test_nasty_strings_tables_and_parquet_dictionaries(seed):
    rng = np.random.default_rng(10 + seed)
    table = pa.Table.from_pylist(_records(rng, 400))
    kw = {"default_model": "fraud", "feature_types": {"n": "numeric"}}
    for frame in (table, _dictionaries(table)):
        fast = ArrowDecoder(SchemaSpec(), **kw)
        got = fast.decode_frame(frame)
        assert fast.fast_blocks == 1
        assert_same(got, Decoder(SchemaSpec(), **kw).decode_frame(table.to_pandas()))
        assert_codes_true(got[0], ("model", "version", "label"))


def test_parquet_text_read_as_dictionaries(tmp_path):
    """FileSource reads Parquet's top-level text of small dictionaries as dictionaries (not
    ids): a batch's dictionary is its row group's (unused entries, first appearance
    elsewhere)."""
    rng = np.random.default_rng(7)
    rows = _records(rng, 6000, [v for v in NASTY if len(v) < 100])
    for i, r in enumerate(rows):
        r["prediction_id"] = f"id-{i}"
    path = tmp_path / "p.parquet"
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, row_group_size=2500)
    assert _text_columns(pq.ParquetFile(path)) == ["model_version", "label"]
    kw = {"default_model": "fraud", "feature_types": {"n": "numeric"}}
    fast = ArrowDecoder(SchemaSpec(), **kw)
    at = chunks = 0
    for chunk in FileSource([str(path)], batch_size=1000).chunks():
        frame = chunk.payload
        assert pa.types.is_dictionary(frame.schema.field("label").type)
        got = fast.decode_frame(frame)
        n = frame.num_rows
        want = Decoder(SchemaSpec(), **kw).decode_frame(table.slice(at, n).to_pandas())
        assert_same(got, want)
        assert_codes_true(got[0], ("model", "version", "label", "c", "d"))
        at, chunks = at + n, chunks + 1
    assert at == 6000 and fast.fast_blocks == chunks


def _dictionaries(table: pa.Table) -> pa.Table:
    """Top-level text columns as Arrow dictionaries (Parquet's ``read_dictionary``), their
    dictionaries in another order than the cells' first appearance, with unused entries."""
    cols = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_string(col.type):
            values = sorted(set(col.drop_null().to_pylist()) | {"unused"}, reverse=True)
            index = {v: i for i, v in enumerate(values)}
            col = pa.DictionaryArray.from_arrays(
                pa.array([None if v is None else index[v] for v in col.to_pylist()],
                         pa.int32()), pa.array(values))
        cols[name] = col
    return pa.table(cols)


def test_a_category_seen_first_in_a_later_block_and_many_distinct_values():
    d = ArrowDecoder(SchemaSpec(), default_model="m")
    summary = CategoricalSummary(["US", "é", ""])
    seen = []
    for block, values in enumerate((["US", "é", None] * 100,
                                    ["BR", "US", None, "", "日本"] * 60,
                                    [f"v{i}" for i in range(70_000)] + [None, "US"])):
        n = len(values)
        table = pa.table({"timestamp": np.arange(n, dtype=np.float64) + 1.7e9,
                          "prediction.score": np.full(n, 0.5),
                          "features.c": pa.array(values, pa.string())})
        batch, rejects = d.decode_frame(table)
        assert not rejects and d.fast_blocks == block + 1
        col = batch.features["c"]
        assert_codes_true(batch, ("c",))
        np.testing.assert_array_equal(summary.category_codes(col),
                                      summary.category_codes(_plain(col)))
        seen.append(sc.factorize(col)[1].tolist())
    assert seen[1] == ["BR", "US", "", "日本"]
    assert len(seen[2]) == 70_001  # past 2**16 distinct values


def _old_record_keys(batch: RecordBatch) -> np.ndarray:
    """record_keys as it was before the codes (pandas on every cell)."""
    ids = batch.id
    no_id = pd.isna(ids) | (ids == "")
    key = pd.util.hash_array(np.where(no_id, "", ids).astype(object))
    if no_id.any():
        rows = np.flatnonzero(no_id)
        parts = [pd.util.hash_array(np.asarray(col)[rows]) for col in
                 (batch.time, batch.score, batch.value)]
        parts.append(pd.util.hash_array(pd.Series(batch.pred_class[rows], dtype=object)
                                        .astype(str).to_numpy(object)))
        combined = np.zeros(rows.shape[0], np.uint64)
        with np.errstate(over="ignore"):
            for part in parts:
                combined = (combined * np.uint64(1099511628211)) ^ part
        key[rows] = combined
    return key


@pytest.mark.parametrize("seed", range(2))
def test_record_keys_are_the_same_for_the_same_records(seed):
    rng = np.random.default_rng(20 + seed)
    lines = [orjson.dumps(r) for r in _records(rng, 600)]
    fast, _ = ArrowDecoder(SchemaSpec(), default_model="m").decode_lines(lines)
    slow, _ = Decoder(SchemaSpec(), default_model="m").decode_lines(lines)
    want = _old_record_keys(slow)
    np.testing.assert_array_equal(record_keys(fast), want)
    np.testing.assert_array_equal(record_keys(slow), want)
    mixed = np.array([None, "", "a", 1, 1.0, True, "1", np.nan, "a"] * 40, dtype=object)
    n = mixed.shape[0]
    f = rng.random(n)
    batch = RecordBatch(time=f, model=mixed, version=mixed, id=mixed, score=f,
                        pred_class=mixed, value=f, label=mixed, outcome=np.zeros(n, np.int8))
    np.testing.assert_array_equal(record_keys(batch), _old_record_keys(batch))


def test_multiclass_codes_per_distinct_value_as_per_cell():
    rng = np.random.default_rng(3)
    pool = [*NASTY, None, "b", "a"]
    for classes in ((), ("a", "é", "")):
        per_value = Preparer(ModelSpec("m", "multiclass", classes=classes))
        per_cell = Preparer(ModelSpec("m", "multiclass", classes=classes))
        for block in range(3):
            values = [pool[i] for i in rng.integers(0, len(pool) - 4 * (block == 0), 500)]
            col = _text_objects(pa.array(values, pa.string()))
            assert sc.coded(col) is not None
            np.testing.assert_array_equal(per_value.codes(col), per_cell.codes(_plain(col)))
            assert per_value.classes == per_cell.classes
