"""Reference profiles: edges, build from a frame, JSON round trip, versioning, slices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.drift.errors import ProfileError
from monitor.drift.features import LABEL, PREDICTION
from monitor.drift.profile import (
    FORMAT_VERSION,
    Profile,
    build_profile,
    load_profile,
    numeric_edges,
    save_profile,
    top_values,
)
from monitor.drift.summary import CategoricalSummary, NumericSummary
from slices.spec import DriftSpec, FeatureSpec, ModelSpec


def test_numeric_edges_are_deduplicated_quantiles():
    rng = np.random.default_rng(0)
    x = rng.normal(size=10_000)
    edges = numeric_edges(np.concatenate([x, [np.nan, np.inf]]), bins=10)
    assert edges.tolist() == pytest.approx(np.quantile(x, np.linspace(0, 1, 11)).tolist())
    counts = np.histogram(x, edges)[0]
    assert counts.min() >= 999 and counts.max() <= 1001  # ~equal mass
    heavy = np.concatenate([np.zeros(7000), rng.exponential(size=3000)])
    e = numeric_edges(heavy, bins=10)
    assert np.all(np.diff(e) > 0) and e[0] == 0.0 and e[-1] == heavy.max()


def test_discrete_data_gets_one_bin_per_value():
    x = np.array([0, 1, 1, 3, 3, 3, 7], dtype=float)
    edges = numeric_edges(x, bins=10)
    assert edges.tolist() == [0.0, 0.5, 2.0, 5.0, 7.0]
    s = NumericSummary(edges)
    s.update(x)
    assert s.counts.tolist() == [0, 1, 2, 3, 1, 0]
    const = numeric_edges(np.full(5, 4.0))
    s = NumericSummary(const)
    s.update(np.array([4.0, 4.0, 3.0, 5.0]))
    assert s.counts.tolist() == [1, 2, 1]
    assert numeric_edges(np.array([np.nan])).shape == (0,)


def test_top_values_rank_by_frequency_then_value():
    x = np.array(["b", "a", "c", "a", "b", "d", None, 1, "1"], dtype=object)
    assert top_values(x, 3) == ["1", "a", "b"]


def _frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.lognormal(size=n),
        "age": rng.integers(18, 30, n).astype(float),
        "country": rng.choice(["de", "fr", "us", None], n, p=[0.5, 0.3, 0.15, 0.05]),
        "score": rng.random(n),
        "label": rng.choice(["fraud", "ok"], n),
        "region": rng.choice(["north", "south"], n),
    })


MODEL = ModelSpec("fraud", "binary", positive_label="fraud",
                  features=(FeatureSpec("amount"), FeatureSpec("age"),
                            FeatureSpec("country", "categorical")),
                  drift=DriftSpec(enabled=True))


def test_build_profile_from_a_dataframe():
    df = _frame()
    p = build_profile(MODEL, df, source="train.parquet", bins=15, sample_size=200, seed=3,
                      model_version="v7", slices=df["region"].to_numpy())
    assert (p.model, p.task, p.model_version, p.source) == ("fraud", "binary", "v7",
                                                            "train.parquet")
    assert set(p.overall) == {"amount", "age", "country", PREDICTION, LABEL}
    amount = p.overall["amount"]
    assert isinstance(amount, NumericSummary) and amount.edges.shape[0] == 16
    assert amount.n == 3000 and amount.mean == pytest.approx(df["amount"].mean())
    assert amount.sample.shape[0] == 200
    age = p.overall["age"]
    assert age.edges.shape[0] == 13  # 12 distinct ages → 12 bins
    assert age.counts[1:-1].tolist() == df["age"].value_counts().sort_index().tolist()
    country = p.overall["country"]
    assert isinstance(country, CategoricalSummary)
    assert country.vocabulary == ("de", "fr", "us") and country.missing == df["country"].isna(
    ).sum()
    label = p.overall[LABEL]
    by_key = dict(zip(label.vocabulary, label.counts.tolist(), strict=False))
    assert by_key == {"0": (df["label"] == "ok").sum(), "1": (df["label"] == "fraud").sum()}
    assert isinstance(p.overall[PREDICTION], NumericSummary)
    assert set(p.slices) == {"north", "south"}
    north = p.slices["north"]["amount"]
    assert north.same_bins(amount) and north.n == (df["region"] == "north").sum()
    merged = p.slices["north"].copy()
    merged.merge(p.slices["south"])
    assert merged["country"].counts.tolist() == country.counts.tolist()
    assert p.for_slice("north")[1] == "slice" and p.for_slice("west")[1] == "overall"


@pytest.mark.parametrize("every", [np.arange(3000), np.ones(3000, bool)])
def test_a_slice_of_every_row_reads_the_columns_in_place_with_the_same_profile(every,
                                                                               monkeypatch):
    """An ``overall: true`` slice (every row, in order) folds the columns themselves, not a
    copy made by ``take``: the profile is the same, bit for bit, as through the copy."""
    from monitor.drift import profile as profile_module

    df = _frame()
    slices = {"overall": every, "big": df["amount"].to_numpy() > 1}
    kwargs = dict(source="s", bins=15, sample_size=200, seed=3, slices=slices)
    direct = build_profile(MODEL, df, **kwargs).to_dict()
    assert profile_module._every_row(every, 3000)
    assert not profile_module._every_row(np.arange(2999), 3000)
    assert not profile_module._every_row(np.arange(3000)[::-1], 3000)
    monkeypatch.setattr(profile_module, "_every_row", lambda rows, n: False)
    copied = build_profile(MODEL, df, **kwargs).to_dict()
    for d in (direct, copied):
        d.pop("created")
    assert json.dumps(direct) == json.dumps(copied)
    assert direct["slices"]["overall"]["summaries"]["amount"]["n"] == 3000


def test_profile_json_round_trip_and_file(tmp_path):
    df = _frame(seed=1)
    p = build_profile(MODEL, df, source="train.csv", slices={"big": df["amount"] > 1})
    text = p.to_json()
    data = json.loads(text)
    assert data["format_version"] == FORMAT_VERSION and data["created"].endswith("+00:00")
    again = Profile.from_json(text)
    assert again.to_dict() == p.to_dict()
    path = tmp_path / "profile.json"
    save_profile(p, path)
    assert load_profile(path).to_dict() == p.to_dict()
    # windows built from a loaded profile use the same bins
    assert load_profile(path).window_summaries()["amount"].same_bins(p.overall["amount"])


def test_profile_errors_name_the_problem(tmp_path):
    text = build_profile(MODEL, _frame(200), source="x").to_json()
    data = json.loads(text)
    data["format_version"] = 99
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=r"p\.json: profile format_version 99 is not supported"):
        load_profile(path)
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "missing.json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.from_json("{")
    del data["overall"]
    data["format_version"] = FORMAT_VERSION
    with pytest.raises(ProfileError, match="missing the field 'overall'"):
        Profile.from_json(json.dumps(data))
    undeclared = ModelSpec("m", "binary", drift=DriftSpec(enabled=True, features=("nope",)))
    with pytest.raises(ProfileError, match="drift feature 'nope' is not declared"):
        build_profile(undeclared, _frame(10), source="x")
    with pytest.raises(ProfileError, match="has no rows"):
        build_profile(MODEL, _frame(0), source="empty.csv")


def _same(a, b):
    """Equal values of equal types, floats bit for bit, dict keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a.hex() == b.hex() if isinstance(a, float) else a == b


def test_profile_text_is_parsed_as_json_loads_parses_it():
    from monitor.drift.profile import _loads

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)
    floats = [float(x) for x in bits[np.isfinite(bits)]]
    floats += [5e-324, -0.0, 0.1, 1.7976931348623157e308]
    text = build_profile(MODEL, _frame(seed=2), source="x").to_json()
    for t in (text, json.dumps({"b": floats, "a": [1, "é", None, True]})):
        assert _same(_loads(t), json.loads(t))
    # what orjson refuses goes to json.loads: the same objects, or the same error
    for t in ('[-9223372036854775808, 18446744073709551615]', '["\\ud800"]', "[NaN, Infinity]"):
        assert _same(_loads(t), json.loads(t))
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        _loads("{")


def test_multiclass_and_regression_targets():
    rng = np.random.default_rng(4)
    n = 500
    mc = ModelSpec("m", "multiclass", classes=("a", "b", "c"), features=(FeatureSpec("x"),),
                   drift=DriftSpec(enabled=True))
    p = build_profile(mc, {"x": rng.normal(size=n), "predicted": rng.choice(["a", "b"], n),
                           "label": rng.choice(["a", "c"], n)}, source="s")
    pred = p.overall[PREDICTION]
    assert set(pred.vocabulary) == {"a", "b"} and pred.counts[:2].sum() == n
    assert pred.counts[0] >= pred.counts[1]  # most frequent first
    assert set(p.overall[LABEL].vocabulary) == {"a", "c"}
    reg = ModelSpec("r", "regression", features=(FeatureSpec("x"),),
                    drift=DriftSpec(enabled=True, label=False))
    q = build_profile(reg, {"x": rng.normal(size=n), "predicted": rng.normal(3, 1, n)},
                      source="s")
    assert set(q.overall) == {"x", PREDICTION}
    assert q.overall[PREDICTION].mean == pytest.approx(3, abs=0.2)
