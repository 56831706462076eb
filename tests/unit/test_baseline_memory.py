"""The profile build holds its reference whole: its text features share one string object
per value (monitor/runtime/baseline.py), and the profile is the same as without sharing."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.core.types import RecordBatch
from monitor.runtime import baseline
from monitor.runtime.baseline import _shared_strings, build_baselines
from slices.load import load_spec


def _batch(features: dict[str, np.ndarray]) -> RecordBatch:
    n = len(next(iter(features.values())))
    o, f = np.full(n, "m", object), np.zeros(n)
    return RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f,
                       label=o, outcome=np.zeros(n, np.int8), features=dict(features))


def _reference(tmp_path, table: pa.Table, features: str, slices: str, drift: str = ""):
    """``(data, spec)``: ``table`` as a Parquet file and a spec of one model ``m`` over it."""
    data = tmp_path / "ref.parquet"
    pq.write_table(table, data)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""version: 1
source: {{type: file, path: {data}}}
models:
  - name: m
    task: binary
    window: 1d
    metrics: [count]
    features: {{{features}}}
    slices: [{slices}]
    drift: {{profile: {tmp_path / 'p.json'}{drift}}}
""", encoding="utf-8")
    return data, spec


def test_text_columns_share_one_object_per_value_and_keep_their_values():
    text = np.array(["a" + str(i % 3) for i in range(30)] + [None, float("nan")], dtype=object)
    mixed = np.array(["1", 1, True, 1.0, None], dtype=object)  # 1 == True == 1.0: kept as is
    nested = np.array([["x"], "y"], dtype=object)  # unhashable: kept as is
    nums = np.arange(4.0)
    out = _shared_strings(_batch({"t": text.copy(), "m": mixed.copy(), "l": nested.copy(),
                                  "n": nums}))
    t = out.features["t"]
    assert t[:30].tolist() == text[:30].tolist() and len({id(v) for v in t[:30]}) == 3
    assert t[30] is None and isinstance(t[31], float) and np.isnan(t[31])
    assert [type(v) for v in out.features["m"]] == [type(v) for v in mixed]
    assert out.features["l"].tolist() == nested.tolist()
    assert out.features["n"] is nums


def test_the_profile_is_the_same_with_shared_strings(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 3000
    table = pa.table({"model": ["m"] * n, "timestamp": 1.78e9 + np.arange(n, dtype=float),
                      "prediction.score": rng.random(n),
                      "features.x": rng.normal(size=n),
                      "features.c": rng.choice(["a", "b", "c", "d"], n).tolist(),
                      "features.d": rng.choice(["u", "v"], n).tolist()})
    data, spec = _reference(tmp_path, table, "x: numeric, c: categorical, d: categorical",
                            "{overall: true}")

    def profile(path, share: bool) -> dict:
        if not share:
            monkeypatch.setattr(baseline, "_shared_strings", lambda b: b)
        build_baselines(load_spec(str(spec)), [str(data)], str(path))
        out = json.loads(path.read_text(encoding="utf-8"))
        out.pop("created", None)
        return out

    assert profile(tmp_path / "shared.json", True) == profile(tmp_path / "plain.json", False)


def test_record_keys_of_records_without_id_and_class_equal_the_general_hash():
    import pandas as pd

    from monitor.core.prepare import _text_hashes, record_keys

    nones = np.full(500, None, dtype=object)
    general = pd.util.hash_array(pd.Series(nones, dtype=object).astype(str).to_numpy(object))
    assert (_text_hashes(nones) == general).all()
    mixed = np.array([None, "a", 1, 1.0, True, None], dtype=object)
    assert (_text_hashes(mixed) == pd.util.hash_array(
        pd.Series(mixed, dtype=object).astype(str).to_numpy(object))).all()
    n = 6
    f = np.arange(n, dtype=float)
    b = _batch({"x": f})
    b = RecordBatch(time=f, model=b.model, version=b.model, id=np.full(n, "", object),
                    score=f / 10, pred_class=np.full(n, None, object), value=f,
                    label=b.model, outcome=b.outcome, features={})
    keys = record_keys(b)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == n


def test_the_profile_is_the_same_with_bucket_codes_in_blocks(tmp_path, monkeypatch):
    """The build codes its reference a block of records at a time (``EdgeGrid.BLOCK``), and
    fresh reservoirs read the batch's matrix itself: the stored profile is the one of a single
    pass, per slice too (non-finite values and an object-typed numeric column included)."""
    from monitor.core.kernels import EdgeGrid, _edge_grid

    rng = np.random.default_rng(1)
    n = 5000
    x = rng.normal(size=n)
    x[rng.random(n) < 0.03] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    mixed = [None if v < 0.02 else ("junk" if v < 0.04 else float(v * 10))
             for v in rng.random(n)]
    table = pa.table({"model": ["m"] * n, "timestamp": 1.78e9 + np.arange(n, dtype=float),
                      "prediction.score": rng.random(n),
                      "features.x": x, "features.y": rng.exponential(size=n),
                      "features.z": pa.array([str(v) if isinstance(v, float) else v
                                              for v in mixed]),
                      "features.c": rng.choice(["a", "b", "c", "d"], n).tolist()})
    data, spec = _reference(
        tmp_path, table, "x: numeric, y: numeric, z: numeric, c: categorical",
        "{overall: true}, {feature_keys: [c]}, {buckets: {y: [0.5, 1, 2]}}", ", per_slice: true")

    def profile(path, block: int) -> str:
        monkeypatch.setattr(EdgeGrid, "BLOCK", block)
        _edge_grid.cache_clear()
        build_baselines(load_spec(str(spec)), [str(data)], str(path))
        out = json.loads(path.read_text(encoding="utf-8"))
        out.pop("created", None)
        return json.dumps(out)

    one = profile(tmp_path / "one.json", 1 << 30)
    assert len(json.loads(one)["slices"]) > 5
    assert profile(tmp_path / "blocks.json", 97) == one


def test_pack_equals_concat_and_lays_the_drift_columns_out_as_rows_of_one_matrix():
    """:func:`pack` gives ``concat``'s columns (a feature absent from a batch, a column float
    in one batch and text in another, tags), the float64 ones rows of one matrix with the
    named features first, then the score."""
    from monitor.core.packed import pack, rows_of_one
    from monitor.core.records import concat

    def batch(n, feats, tags=()):
        b = _batch(feats)
        f = np.arange(n, dtype=float) + n
        return RecordBatch(time=f, model=b.model, version=b.version, id=b.id, score=f / 100,
                           pred_class=b.pred_class, value=f, label=b.label,
                           outcome=b.outcome, features=b.features, tag_names=tuple(tags),
                           tag_rows=np.arange(len(tags), dtype=np.int64),
                           tag_codes=np.arange(len(tags), dtype=np.int32))

    def parts():
        return [batch(3, {"x": np.array([1.0, 2, 3]), "m": np.array([1.0, 2, 3]),
                          "c": np.array(["a", None, "b"], object)}, ("t1",)),
                batch(2, {"x": np.array([4.0, 5]), "m": np.array(["u", 7], object)},
                      ("t2", "t1")),
                batch(0, {"x": np.zeros(0)})]

    want, got = concat(parts()), pack(parts(), first=("x",))
    for name in ("time", "model", "version", "id", "score", "pred_class", "value", "label",
                 "outcome", "tag_rows", "tag_codes"):
        a, b = getattr(want, name), getattr(got, name)
        assert (a.dtype, a.tolist()) == (b.dtype, b.tolist()), name
    assert want.tag_names == got.tag_names
    assert list(want.features) == list(got.features)
    for name, col in want.features.items():
        assert (col.dtype, col.tolist()) == (got.features[name].dtype,
                                             got.features[name].tolist()), name
    x = rows_of_one([got.features["x"], got.score])
    assert x is not None and np.shares_memory(x, got.score) and x.tolist() == [
        got.features["x"].tolist(), got.score.tolist()]
    assert rows_of_one([got.score, got.features["x"]]) is None  # not in the matrix's order
    assert rows_of_one([got.features["x"].copy()]) is None


def test_multivariate_column_statistics_equal_numpy_on_the_whole_matrix():
    """The fit's mean, imputation and scale are taken column by column: the bits of numpy's
    axis-0 reductions of the (column-contiguous) n × d matrix."""
    rng = np.random.default_rng(5)
    x = np.asfortranarray(rng.lognormal(0, 3, (20_000, 4)) * rng.choice([-1.0, 1.0], (20_000, 4)))
    x[rng.random(x.shape) < 0.05] = np.nan
    assert (np.array([np.nanmean(x[:, j]) for j in range(4)]).tobytes()
            == np.nanmean(x, axis=0).tobytes())
    y = np.nan_to_num(x)
    assert np.array([y[:, j].mean() for j in range(4)]).tobytes() == y.mean(axis=0).tobytes()
    assert np.array([y[:, j].std() for j in range(4)]).tobytes() == y.std(axis=0).tobytes()


def test_the_profile_is_the_same_packed_and_with_residuals_in_blocks(tmp_path, monkeypatch):
    """The packed reference (the drift matrix read in place) and the multivariate errors a
    block at a time give the profile of a plain concatenation and one pass, per slice too."""
    import monitor.drift.features as features
    import monitor.drift.multivariate as mv

    rng = np.random.default_rng(2)
    n = 6000
    x = rng.normal(size=n)
    x[rng.random(n) < 0.02] = np.nan
    table = pa.table({"model": ["m"] * n, "timestamp": 1.78e9 + np.arange(n, dtype=float),
                      "prediction.score": rng.random(n),
                      "features.x": x, "features.y": rng.exponential(size=n) + x,
                      "features.c": rng.choice(["a", "b", "c", "d"], n).tolist()})
    data, spec = _reference(tmp_path, table, "x: numeric, y: numeric, c: categorical",
                            "{overall: true}, {feature_keys: [c]}", ", per_slice: true")

    seen = []
    monkeypatch.setattr(baseline, "FileSource", _small_batches(seen))

    def profile(path) -> str:
        build_baselines(load_spec(str(spec)), [str(data)], str(path))
        out = json.loads(path.read_text(encoding="utf-8"))
        out.pop("created", None)
        return json.dumps(out)

    new = profile(tmp_path / "new.json")
    assert len(json.loads(new)["slices"]) == 5 and "multivariate" in json.loads(new)
    assert seen  # read 1000 records at a time: six batches packed
    monkeypatch.setattr(mv, "RESIDUAL_BLOCK", 97)
    assert profile(tmp_path / "blocks.json") == new
    monkeypatch.setattr(baseline, "Packer", _Concatenated)
    monkeypatch.setattr(features, "rows_of_one", lambda rows: None)
    monkeypatch.setattr(mv, "RESIDUAL_BLOCK", 1 << 30)
    assert profile(tmp_path / "plain.json") == new


class _Concatenated:
    """The reference as a plain ``concat`` of the decoded batches (what Packer replaced)."""

    def __init__(self, capacity, first=()):
        self.parts = []

    def add(self, batch):
        self.parts.append(batch)

    def finish(self):
        from monitor.core.records import concat

        return concat(self.parts)


def _small_batches(seen):
    from monitor.ingest.file import FileSource

    class Small(FileSource):
        def __init__(self, paths, batch_size=0, **kw):
            super().__init__(paths, batch_size=1000, **kw)
            seen.append(self)

    return Small


def test_the_packer_equals_concat_copied_in_or_collecting():
    """:class:`Packer` gives ``concat``'s batch whether it copies the batches in (a known
    row count), turns back to collecting (a batch of other columns, more rows than said) or
    collects from the start (no row count); the drift rows stay rows of one matrix."""
    from monitor.core.packed import Packer, rows_of_one
    from monitor.core.records import concat

    def parts(odd: bool):
        out = []
        for i in range(4):
            f = np.arange(5.0) + 10 * i
            feats = {"x": f * 2, "c": np.array(list("abcab"), object)}
            if odd and i == 2:
                feats["c"] = f  # numbers where text was: concat makes the column object
            b = _batch(feats)
            out.append(RecordBatch(time=f, model=b.model, version=b.version, id=b.id,
                                   score=f / 100, pred_class=b.pred_class, value=f,
                                   label=b.label, outcome=b.outcome, features=b.features,
                                   tag_names=("t",), tag_rows=np.array([i % 5]),
                                   tag_codes=np.zeros(1, np.int32)))
        return out

    for odd, capacity in ((False, 20), (False, 30), (True, 20), (False, 12), (False, None)):
        want = concat(parts(odd))
        packer = Packer(capacity, first=("x",))
        for b in parts(odd):
            packer.add(b)
        got = packer.finish()
        for name in ("time", "model", "score", "value", "outcome", "tag_rows", "tag_codes"):
            a, b = getattr(want, name), getattr(got, name)
            assert (a.dtype, a.tolist()) == (b.dtype, b.tolist()), (name, odd, capacity)
        assert want.tag_names == got.tag_names and list(want.features) == list(got.features)
        for name, col in want.features.items():
            assert (col.dtype, col.tolist()) == (got.features[name].dtype,
                                                 got.features[name].tolist())
        x = rows_of_one([got.features["x"], got.score])
        assert x is not None and x.tolist() == [got.features["x"].tolist(), got.score.tolist()]
        assert not x.flags.writeable


def test_the_packer_keeps_the_decoders_text_codes_over_the_whole_column():
    """Text columns coded by the decoder (``slices.codes.known``) come out of the packer
    coded too: pandas' ``factorize`` of the whole column (first appearance over every batch),
    one object per value; a batch without codes leaves that column uncoded, values intact."""
    import pandas as pd

    from monitor.core.packed import Packer
    from monitor.core.records import concat
    from slices.codes import coded, known

    def text(cells, register=True):
        col = np.array(cells, dtype=object)
        if register:
            codes, uniques = pd.factorize(col)
            known(col, codes, np.asarray(uniques, dtype=object))
        return col

    def parts(plain_at=None):
        cells = [["b", None, "a", "b"], ["c", "a", None, "c"], [None, None, "d", "b"]]
        return [_batch({"c": text(["".join(v) if v else v for v in c], i != plain_at),
                        "one": text(["u"] * 4), "none": text([None] * 4),
                        "x": np.arange(4.0)}) for i, c in enumerate(cells)]

    for plain_at in (None, 1):
        want = concat(parts(plain_at)).features["c"]
        packer = Packer(12, first=("x",))
        for b in parts(plain_at):
            packer.add(b)
        held = packer.finish()
        got = held.features["c"]
        assert got.tolist() == want.tolist()
        if plain_at is None:  # one value in every cell: a view of it, coded
            for name, value, code in (("one", "u", 0), ("none", None, -1)):
                col = held.features[name]
                assert col.tolist() == [value] * 12 and col.strides == (0,)
                assert not col.flags.writeable and coded(col)[0].tolist() == [code] * 12
        found = coded(got)
        if plain_at is not None:
            assert found is None
            continue
        codes, uniques = found
        assert codes.dtype == np.int8  # a byte a cell; the cells made at each read:
        again = held.features["c"]
        assert again is not got and again.tolist() == got.tolist() and not again.flags.writeable
        assert {k: v.tolist() for k, v in dict(held.features).items()} == {
            k: v.tolist() for k, v in held.features.items()} and "c" in held.features
        want_codes, want_uniques = pd.factorize(want)
        assert codes.tolist() == want_codes.tolist()
        assert uniques.tolist() == want_uniques.tolist()
        assert len({id(v) for v in got if v is not None}) == len(uniques)


def test_the_build_allocates_arrow_from_glibc_and_a_replay_from_jemalloc(tmp_path):
    """``baseline build`` reads once through Arrow, then never again: Arrow allocates from
    glibc there (handed back between phases; jemalloc kept the read's pages to the end), and
    from jemalloc in a replay. A pool the user set is kept. Each in a fresh interpreter (the
    pool is chosen before pyarrow loads)."""
    import os
    import subprocess
    import sys

    n = 200
    table = pa.table({"model": ["m"] * n, "timestamp": 1.78e9 + np.arange(n, dtype=float),
                      "prediction.score": np.linspace(0, 1, n), "features.x": np.arange(float(n))})
    data, spec = _reference(tmp_path, table, "x: numeric", "{overall: true}")
    code = ("import sys; from monitor import cli; rc = cli.main(sys.argv[1:]); "
            "import pyarrow; print(rc, pyarrow.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}

    def pool(*args: str, **extra: str) -> str:
        out = subprocess.run([sys.executable, "-c", code, *args], env={**env, **extra},
                             capture_output=True, text=True, timeout=120, check=True)
        return out.stdout.split()[-2:]

    build = ("baseline", "build", "-c", str(spec), "--data", str(data), "-o",
             str(tmp_path / "p.json"), "-q")
    run = ("run", "-c", str(spec), "-i", str(data), "--listen", "", "-q")
    assert pool(*build) == ["0", "system"]
    assert pool(*run) == ["0", "jemalloc"]
    assert pool(*build, ARROW_DEFAULT_MEMORY_POOL="jemalloc") == ["0", "jemalloc"]
