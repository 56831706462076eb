"""Slice assignment: crosses, buckets, predicates, tags, __other__ and refresh, state."""

from __future__ import annotations

import bisect
import json
from collections import Counter

import numpy as np
import pytest

from slices.assign import SliceAssigner, SliceCodes, ValueVocab, distinct_values
from slices.load import load_spec_text
from slices.predicate import evaluate, parse_predicate
from slices.spec import MISSING, OTHER, ModelSpec, SliceSpec


class Batch:
    def __init__(self, n: int, tags: list[set[str]] | None = None, **cols: np.ndarray):
        self.n, self.cols, self.tag_sets = n, cols, tags or [set()] * n

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> np.ndarray | None:
        return self.cols.get(name)

    def has_tag(self, tag: str) -> np.ndarray:
        return np.array([tag in t for t in self.tag_sets], dtype=bool)


def labels_of(sc: SliceCodes) -> list[str | None]:
    return [sc.labels[c] if c >= 0 else None for c in sc.codes.tolist()]


def model(*slices: SliceSpec) -> ModelSpec:
    return ModelSpec("m", "binary", slices=slices)


def fk(*keys: str, max_values: int = 50) -> SliceSpec:
    return SliceSpec(",".join(keys), "feature_keys", keys=keys, max_values=max_values)


def test_overall() -> None:
    (sc,) = SliceAssigner(model(SliceSpec("overall", "overall"))).assign(Batch(3))
    assert labels_of(sc) == ["overall"] * 3 and sc.codes.dtype == np.int32


def test_feature_keys_single_with_missing_and_numbers() -> None:
    b = Batch(6, country=np.array(["US", None, "CA", "US", np.nan, "FR"], dtype=object),
              hour=np.array([3.0, 2.5, np.nan, 3.0, 0.0, -1.0]))
    a = SliceAssigner(model(fk("country"), fk("hour")))
    country, hour = a.assign(b)
    assert labels_of(country) == ["country=US", f"country={MISSING}", "country=CA",
                                  "country=US", f"country={MISSING}", "country=FR"]
    assert labels_of(hour) == ["hour=3", "hour=2.5", f"hour={MISSING}", "hour=3", "hour=0",
                               "hour=-1"]


def test_cross_matches_python_reference() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    c = np.array(rng.choice(["US", "CA", "FR", None], n), dtype=object)
    d = np.array(rng.choice(["ios", "android", "web"], n), dtype=object)
    h = np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float))
    (sc,) = SliceAssigner(model(fk("country", "device", "hour"))).assign(
        Batch(n, country=c, device=d, hour=h))
    expected = [f"country={x or MISSING},device={y},hour="
                f"{MISSING if np.isnan(z) else int(z)}" for x, y, z in zip(c, d, h, strict=True)]
    assert labels_of(sc) == expected
    assert len(sc.labels) == len(set(expected))


def test_codes_stable_across_batches() -> None:
    a = SliceAssigner(model(fk("country")))
    (first,) = a.assign(Batch(3, country=np.array(["US", "CA", "US"], object)))
    before = list(first.labels)
    (second,) = a.assign(Batch(4, country=np.array(["FR", "CA", "US", None], object)))
    assert second.labels[:len(before)] == before
    assert labels_of(second) == ["country=FR", "country=CA", "country=US",
                                 f"country={MISSING}"]
    assert second.codes[1] == first.codes[1] and second.codes[2] == first.codes[0]


def test_absent_column_is_all_missing() -> None:
    a = SliceAssigner(model(fk("nope"), SliceSpec("b", "buckets", keys=("nope",),
                                                  buckets=(0.0,))))
    k, b = a.assign(Batch(2))
    assert labels_of(k) == [f"nope={MISSING}"] * 2
    assert labels_of(b) == [f"nope={MISSING}"] * 2


def test_buckets_edges_and_outer_buckets() -> None:
    edges = (0.0, 10.0, 100.0, 1000.5)
    x = np.array([-5, 0, 9.99, 10, 99, 100, 1000.5, 1e9, np.nan, -0.0, 1000.4])
    (sc,) = SliceAssigner(model(SliceSpec("amount", "buckets", keys=("amount",),
                                          buckets=edges))).assign(Batch(len(x), amount=x))
    names = ["(-inf,0)", "[0,10)", "[10,100)", "[100,1000.5)", "[1000.5,+inf)"]
    expected = [f"amount={MISSING}" if np.isnan(v) else
                "amount=" + names[bisect.bisect_right(edges, v)] for v in x]
    assert labels_of(sc) == expected
    assert sc.labels == [f"amount={s}" for s in names] + [f"amount={MISSING}"]


def test_buckets_on_object_column_coerce_numbers() -> None:
    x = np.array(["5", 50, None, "abc", 5.0], dtype=object)
    (sc,) = SliceAssigner(model(SliceSpec("a", "buckets", keys=("a",), buckets=(0.0, 10.0)))
                          ).assign(Batch(5, a=x))
    assert labels_of(sc) == ["a=[0,10)", "a=[10,+inf)", f"a={MISSING}", f"a={MISSING}",
                             "a=[0,10)"]


def test_feature_values() -> None:
    spec = SliceSpec("country=US,hour=3", "feature_values", keys=("country", "hour"),
                     values={"country": "US", "hour": 3})
    b = Batch(4, country=np.array(["US", "US", "CA", None], object),
              hour=np.array([3, "3", 3.0, 3], object))
    (sc,) = SliceAssigner(model(spec)).assign(b)
    assert labels_of(sc) == ["country=US,hour=3", "country=US,hour=3", None, None]


def test_where_slice_uses_predicate() -> None:
    text = 'amount > 500 and country in ("US", "CA") and "new_user" in tags'
    spec = SliceSpec("big", "where", where=text, predicate=parse_predicate(text))
    rng = np.random.default_rng(3)
    n = 500
    b = Batch(n, amount=rng.uniform(0, 1000, n),
              country=np.array(rng.choice(["US", "CA", "FR"], n), object),
              tags=[{"new_user"} if rng.random() < 0.5 else set() for _ in range(n)])
    (sc,) = SliceAssigner(model(spec)).assign(b)
    mask = evaluate(spec.predicate, b)
    assert mask.any() and not mask.all()
    assert labels_of(sc) == ["big" if m else None for m in mask]
    # a where slice built without the parsed predicate parses its text
    (sc2,) = SliceAssigner(model(SliceSpec("big", "where", where=text))).assign(b)
    np.testing.assert_array_equal(sc2.codes, sc.codes)


def test_tags_one_codes_per_tag_and_multi_membership() -> None:
    spec = SliceSpec("tags", "tags", tags=("new_user", "returning"))
    b = Batch(4, tags=[{"new_user"}, {"new_user", "returning"}, set(), {"other"}])
    new, ret = SliceAssigner(model(spec)).assign(b)
    assert new.spec is spec and ret.spec is spec
    assert labels_of(new) == ["tag=new_user", "tag=new_user", None, None]
    assert labels_of(ret) == [None, "tag=returning", None, None]


def test_max_values_folds_into_other_first_come() -> None:
    a = SliceAssigner(model(fk("country", max_values=2)))
    (sc,) = a.assign(Batch(5, country=np.array(["FR", "US", "CA", "FR", None], object)))
    assert labels_of(sc) == ["country=FR", "country=US", f"country={OTHER}", "country=FR",
                             f"country={MISSING}"]


def test_cross_bounds_each_key() -> None:
    a = SliceAssigner(model(fk("a", "b", max_values=1)))
    (sc,) = a.assign(Batch(3, a=np.array(["x", "y", "y"], object),
                           b=np.array(["p", "p", "q"], object)))
    assert labels_of(sc) == ["a=x,b=p", f"a={OTHER},b=p", f"a={OTHER},b={OTHER}"]


def test_refresh_reranks_to_most_frequent() -> None:
    rng = np.random.default_rng(5)
    a = SliceAssigner(model(fk("v", max_values=3)))
    seen: Counter[str] = Counter()
    weights = np.array([1, 2, 4, 8, 16, 32, 64], float)
    values = np.array([f"v{i}" for i in range(7)], dtype=object)
    for _ in range(5):
        col = rng.choice(values, 400, p=weights / weights.sum())
        seen.update(col.tolist())
        a.assign(Batch(400, v=col))
    top = {v for v, _ in seen.most_common(3)}
    a.refresh()
    (sc,) = a.assign(Batch(7, v=values))
    got = labels_of(sc)
    assert {x.split("=")[1] for x in got} - {OTHER} == top
    assert got.count(f"v={OTHER}") == 4


def test_sketch_stays_bounded_and_keeps_heavy_hitters() -> None:
    vocab = ValueVocab(max_values=5)
    rng = np.random.default_rng(9)
    truth: Counter[str] = Counter()
    for _ in range(40):
        heavy = rng.choice(["h1", "h2", "h3"], 300)
        noise = np.array([f"n{i}" for i in rng.integers(0, 100_000, 700)])
        batch = np.concatenate([heavy, noise]).astype(object)
        truth.update(batch.tolist())
        codes, keys = distinct_values(batch, len(batch))
        vocab.observe(keys, np.bincount(codes, minlength=len(keys)))
        assert len(vocab.counts) <= 50 and len(vocab.admitted) <= 5
    vocab.refresh()
    assert {"h1", "h2", "h3"} <= set(vocab.admitted)
    # space-saving counts overestimate, never underestimate, what they keep
    assert all(vocab.counts[k] >= truth[k] for k in ("h1", "h2", "h3"))


def test_state_round_trip_through_json() -> None:
    m = model(fk("country", max_values=2), fk("a", "b", max_values=3),
              SliceSpec("overall", "overall"))
    rng = np.random.default_rng(2)

    def batch(n: int) -> Batch:
        return Batch(n, country=np.array(rng.choice(list("ABCDE"), n), object),
                     a=np.array(rng.choice(list("xyzw"), n), object),
                     b=rng.integers(0, 5, n).astype(float))

    a = SliceAssigner(m)
    for _ in range(3):
        a.assign(batch(100))
    a.refresh()
    a.assign(batch(50))
    state = json.loads(json.dumps(a.to_state()))
    b = SliceAssigner.from_state(m, state)
    assert b.to_state() == a.to_state()
    nxt = batch(200)
    for x, y in zip(a.assign(nxt), b.assign(nxt), strict=True):
        np.testing.assert_array_equal(x.codes, y.codes)
        assert x.labels == y.labels


def test_from_state_ignores_removed_slices_and_shrinks() -> None:
    a = SliceAssigner(model(fk("c", max_values=3)))
    a.assign(Batch(3, c=np.array(["x", "y", "z"], object)))
    state = {**a.to_state(), "gone": {"labels": ["q"]}}
    b = SliceAssigner.from_state(model(fk("c", max_values=1)), state)
    (sc,) = b.assign(Batch(2, c=np.array(["x", "y"], object)))
    assert labels_of(sc) == ["c=x", f"c={OTHER}"]


def test_groups() -> None:
    sc = SliceCodes(SliceSpec("s", "overall"), np.array([1, -1, 0, 1], np.int32), ["a", "b"])
    assert [(lab, rows.tolist()) for lab, rows in sc.groups()] == [("a", [2]), ("b", [0, 3])]


def test_loaded_spec_assigns_and_carries_min_size() -> None:
    spec = load_spec_text("""\
models:
  - name: fraud
    task: binary
    features: {amount: numeric, country: categorical}
    slices:
      - overall: true
      - feature_keys: [country]
        max_values: 1
        min_size: 10
      - buckets: {amount: [0, 100]}
        min_size: 5
      - name: big
        where: amount >= 100
        critical: true
      - tags: [vip]
""")
    m = spec.models[0]
    assert [s.min_size for s in m.slices] == [0, 10, 5, 0, 0]
    b = Batch(3, amount=np.array([50.0, 150.0, np.nan]),
              country=np.array(["US", "CA", "US"], object), tags=[{"vip"}, set(), set()])
    out = SliceAssigner(m).assign(b)
    assert [labels_of(sc) for sc in out] == [
        ["overall"] * 3,
        ["country=US", f"country={OTHER}", "country=US"],
        ["amount=[0,100)", "amount=[100,+inf)", f"amount={MISSING}"],
        [None, "big", None],
        ["tag=vip", None, None],
    ]
    assert out[1].spec.min_size == 10 and out[3].spec.critical


def test_record_batch_implements_columns() -> None:
    from monitor.core.types import RecordBatch
    n = 3
    f = np.zeros(n)
    o = np.full(n, None, dtype=object)
    rb = RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f, label=o,
                     outcome=np.zeros(n, np.int8),
                     features={"country": np.array(["US", "CA", None], object)},
                     tag_names=("vip",), tag_rows=np.array([1]), tag_codes=np.array([0],
                                                                                    np.int32))
    a = SliceAssigner(model(fk("country"), SliceSpec("tags", "tags", tags=("vip",))))
    country, vip = a.assign(rb)
    assert labels_of(country) == ["country=US", "country=CA", f"country={MISSING}"]
    assert labels_of(vip) == [None, "tag=vip", None]


def test_value_vocab_rejects_bad_max_values() -> None:
    with pytest.raises(ValueError, match="max_values must be an integer >= 1; got 0"):
        ValueVocab(0)


def test_large_batch_crosses_and_buckets() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    b = Batch(n, country=np.array(rng.choice(["US", "CA", "FR", "DE", "GB"], n), object),
              device=np.array(rng.choice(["ios", "android"], n), object),
              amount=rng.lognormal(3, 1, n))
    a = SliceAssigner(model(fk("country", "device"), SliceSpec(
        "amount", "buckets", keys=("amount",), buckets=(1.0, 10.0, 100.0))))
    out = a.assign(b)
    assert sum(1 for _ in out[0].groups()) == 10
    assert (out[0].codes >= 0).all() and (out[1].codes >= 0).all()
    bucket_sizes = np.bincount(out[1].codes, minlength=len(out[1].labels))
    want = np.bincount(np.searchsorted([1.0, 10.0, 100.0], b.column("amount"), side="right"),
                       minlength=4)
    assert sorted(bucket_sizes[bucket_sizes > 0].tolist()) == sorted(want.tolist())
