"""Slice discovery in the core (issue 17): planted failures found first, broad degradation
and no degradation find nothing (within the FDR guarantee), exact merge and restart, tests
equal to scipy's, and the same top-k as the ``sliceline`` package on a fixed frame."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from monitor.discovery.coder import FeatureCoder
from monitor.discovery.counts import ConjunctionCounts
from monitor.discovery.search import (
    Settings,
    candidate_cells,
    discover,
    one_sided_pvalues,
)

FEATURES = ("country", "device", "plan", "channel")
VALUES = {"country": ["US", "BR", "DE", "FR", "IN"], "device": ["web", "ios", "android"],
          "plan": ["free", "pro", "team", "edu"], "channel": ["ads", "seo", "mail", "direct"]}
WEIGHTS = {"country": [0.4, 0.15, 0.15, 0.15, 0.15], "plan": [0.3, 0.3, 0.2, 0.2]}


def frame(rng, n, *, base=0.1, planted=None, planted_error=0.45, numeric=False):
    """Columns of ``n`` records and their 0/1 errors; ``planted``: {feature: value} whose
    records err at ``planted_error``."""
    cols = {f: rng.choice(VALUES[f], n, p=WEIGHTS.get(f)).astype(object) for f in FEATURES}
    rate = np.full(n, base)
    if planted:
        mask = np.ones(n, bool)
        for f, v in planted.items():
            mask &= cols[f] == v
        rate[mask] = planted_error
    if numeric:
        cols["amount"] = rng.exponential(100, n)
    return cols, (rng.random(n) < rate).astype(float)


def counts(cols, errors, coder=None, error="misclassification"):
    coder = coder or FeatureCoder(tuple(cols), {"amount": (20.0, 100.0, 500.0)})
    acc = ConjunctionCounts(coder, error)
    acc.add(coder.encode(cols), errors)
    return acc


# ---- planted, broad, null ----------------------------------------------------------------

def test_a_planted_conjunction_ranks_first_in_the_first_window_with_100_labelled_records():
    rng = np.random.default_rng(17)
    planted = {"country": "BR", "plan": "edu"}  # 0.15 × 0.2 = 3 % of records
    settings = Settings(top_k=5, min_support=50, fdr=0.05, alpha=0.95)
    first_with_100 = None
    for w, n in enumerate([1500, 2500, 3400, 3800, 5000]):
        cols, errors = frame(rng, n, planted=planted)
        share = np.mean((cols["country"] == "BR") & (cols["plan"] == "edu"))
        assert 0.02 <= share <= 0.05
        held = int(np.sum((cols["country"] == "BR") & (cols["plan"] == "edu")))
        found = discover(counts(cols, errors), settings)
        if held >= 100:
            first_with_100 = w if first_with_100 is None else first_with_100
            assert found and found[0].slice == "country=BR,plan=edu", (w, held, found[:2])
            assert found[0].where == 'country == "BR" and plan == "edu"'
            assert found[0].records == held
    assert first_with_100 is not None and first_with_100 > 0  # earlier ones held < 100


def test_broad_degradation_finds_nothing():
    rng = np.random.default_rng(3)
    settings = Settings(top_k=5, min_support=50, fdr=0.05)
    for _ in range(10):
        cols, errors = frame(rng, 4000, base=0.35)  # everything worse, equally
        assert discover(counts(cols, errors), settings) == []
    # the same stream with one slice worse is found (the check can fail)
    cols, errors = frame(rng, 4000, base=0.35, planted={"device": "web"}, planted_error=0.5)
    assert discover(counts(cols, errors), settings)[0].slice == "device=web"


def test_200_null_windows_stay_within_the_false_discovery_guarantee():
    """Under no degradation every hypothesis is null, and BH at level q then bounds the chance
    of any discovery in a window by q (as FWER, for independent or positively dependent
    tests). With q = 0.05 over 200 windows, more than the binomial 99.9 % quantile fails."""
    rng = np.random.default_rng(11)
    q = 0.05
    settings = Settings(top_k=5, min_support=30, fdr=q)
    with_any = sum(bool(discover(counts(*frame(rng, 2000, numeric=True)), settings))
                   for _ in range(200))
    assert with_any <= stats.binom.ppf(0.999, 200, q), with_any


# ---- statistics against scipy ---------------------------------------------------------------

def test_binary_pvalues_are_fishers_exact_test_one_sided():
    rng = np.random.default_rng(5)
    cols, errors = frame(rng, 1500, planted={"device": "web"}, planted_error=0.2)
    acc = counts(cols, errors)
    cells = candidate_cells(acc, 50)[:12]
    ours = one_sided_pvalues(acc, cells)
    for cell, p in zip(cells, ours, strict=True):
        n, e = int(acc.n[cell]), int(acc.e[cell])
        table = [[e, n - e], [int(acc.total_error) - e, int(acc.total) - n - (
            int(acc.total_error) - e)]]
        assert p == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue,
                                  rel=1e-9, abs=1e-300)


def test_continuous_pvalues_are_welchs_test_on_the_raw_errors():
    rng = np.random.default_rng(6)
    cols, _ = frame(rng, 1200)
    errors = np.abs(rng.normal(0, 1, 1200)) * np.where(cols["device"] == "web", 1.3, 1.0)
    acc = counts(cols, errors, error="absolute_error")
    cells = candidate_cells(acc, 50)[:12]
    ours = one_sided_pvalues(acc, cells)
    codes = acc.coder.encode(cols)
    lay = acc.layout
    for cell, p in zip(cells, ours, strict=True):
        block = lay.blocks[lay.block[cell]]
        mask = codes[block[0]] == lay.code_a[cell]
        if len(block) == 2:
            mask &= codes[block[1]] == lay.code_b[cell]
        ref = stats.ttest_ind(errors[mask], errors[~mask], equal_var=False,
                              alternative="greater").pvalue
        assert p == pytest.approx(ref, rel=1e-6)


# ---- merge and restart ----------------------------------------------------------------------

def _cells_by_name(acc):
    """{slice label: (n, e)} for every non-empty cell: comparable across coders."""
    from monitor.discovery.search import _name
    return {_name(acc, int(c))[0]: (acc.n[c], acc.e[c]) for c in np.flatnonzero(acc.n)}


def test_split_update_merge_equals_one_pass_exactly():
    rng = np.random.default_rng(8)
    cols, errors = frame(rng, 3000, numeric=True)
    whole = counts(cols, errors)
    coder = whole.coder
    parts = [ConjunctionCounts(coder, "misclassification") for _ in range(3)]
    for part, idx in zip(parts, np.array_split(np.arange(3000), 3), strict=True):
        part.add(coder.encode({f: c[idx] for f, c in cols.items()}), errors[idx])
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    assert np.array_equal(parts[0].n, whole.n) and np.array_equal(parts[0].e, whole.e)
    assert (parts[0].total, parts[0].total_error) == (whole.total, whole.total_error)


def test_counts_of_other_processes_merge_by_value_and_restart_exactly():
    rng = np.random.default_rng(9)
    cols, errors = frame(rng, 2000, numeric=True)
    whole = counts(cols, errors)
    # two processes see the halves in different orders: their codes differ
    a_idx, b_idx = np.arange(1000)[::-1], np.arange(1000, 2000)
    a = counts({f: c[a_idx] for f, c in cols.items()}, errors[a_idx])
    b = counts({f: c[b_idx] for f, c in cols.items()}, errors[b_idx])
    restored = ConjunctionCounts.from_state(a.to_state())
    assert _cells_by_name(restored) == _cells_by_name(a)
    restored.merge(ConjunctionCounts.from_state(b.to_state()))
    assert _cells_by_name(restored) == _cells_by_name(whole)
    assert discover(restored, Settings()) == discover(whole, Settings())


def test_counts_equal_a_record_by_record_count_for_both_error_kinds():
    """The one-``bincount`` update (cell and 0/1 error as one code) and the weighted one
    against a plain loop over records and blocks."""
    from monitor.discovery.search import _name
    rng = np.random.default_rng(12)
    cols, errors = frame(rng, 1500, numeric=True)
    cols["country"][::7] = None
    for error, errs in (("misclassification", errors), ("absolute_error", rng.random(1500))):
        acc = counts(cols, errs, error=error)
        codes = acc.coder.encode(cols)
        expect: dict[str, list[float]] = {}
        for r in range(1500):
            for block in acc.layout.blocks:
                name = ",".join(acc.coder.label(i, int(codes[i, r])) for i in block)
                cell = expect.setdefault(name, [0.0, 0.0])
                cell[0] += 1
                cell[1] += errs[r]
        got = {_name(acc, int(c))[0]: [acc.n[c], acc.e[c]] for c in np.flatnonzero(acc.n)}
        assert got.keys() == expect.keys()
        for name, (n, e) in expect.items():
            assert got[name][0] == n and got[name][1] == pytest.approx(e, abs=1e-9), name


def test_the_lookup_table_codes_exactly_as_factorizing_every_batch(monkeypatch):
    """Strings kept in a table across batches (admitted ones and, up to a bound, those coded
    ``__other__``); missing, non-string and overflowing values take the factorize path."""
    import monitor.discovery.coder as coder_mod
    rng = np.random.default_rng(13)
    pool = np.array([f"u{i}" for i in range(600)] + [None, np.nan, 3, 3.0, True, "3"],
                    dtype=object)
    batches = [{"user": pool[rng.integers(0, len(pool), 800)],
                "plan": rng.choice(["free", "pro", None], 800).astype(object)}
               for _ in range(6)]
    fast = FeatureCoder(("user", "plan"), {}, max_values=20)
    with monkeypatch.context() as m:
        m.setattr(coder_mod, "string_table_class", lambda: None)
        slow = FeatureCoder(("user", "plan"), {}, max_values=20)
        expected = [slow.encode(b) for b in batches]
    for batch, want in zip(batches, expected, strict=True):
        assert np.array_equal(fast.encode(batch), want)
    assert fast.values == slow.values
    assert fast._skip["user"] > 0 and not fast._skip.get("plan")  # user mostly misses
    assert len(fast._seen["user"]) == 20 + coder_mod.EXTRA_STRINGS  # bounded
    fast.load_state(slow.to_state())  # a restored vocabulary: the table is rebuilt
    assert np.array_equal(fast.encode(batches[0]), expected[0])


def test_state_with_a_cell_out_of_range_is_refused():
    rng = np.random.default_rng(1)
    state = counts(*frame(rng, 100)).to_state()
    state["cells"][0] = 10 ** 9
    with pytest.raises(ValueError, match="out of range"):
        ConjunctionCounts.from_state(state)


# ---- reference: the sliceline package ------------------------------------------------------

def test_top_k_and_scores_equal_sliceline_on_a_fixed_frame():
    sliceline = pytest.importorskip("sliceline")
    rng = np.random.default_rng(2021)
    cols, errors = frame(rng, 3000, planted={"country": "BR", "device": "web"},
                         planted_error=0.5)
    X = np.column_stack([cols[f] for f in FEATURES])
    ref = sliceline.Slicefinder(alpha=0.95, k=6, max_l=2, min_sup=40, verbose=False)
    ref.fit(X, errors)
    expected = []
    for row, st in zip(ref.top_slices_, ref.top_slices_statistics_, strict=True):
        label = ",".join(f"{f}={v}" for f, v in zip(FEATURES, row, strict=True)
                         if v is not None)
        expected.append((label, round(st["slice_score"], 9), int(st["slice_size"])))
    ours = discover(counts(cols, errors), Settings(top_k=6, min_support=40, fdr=1.0,
                                                   alpha=0.95))
    assert [(c.slice, round(c.score, 9), c.records) for c in ours] == expected


# ---- regression errors beyond float64 ----------------------------------------------------

def _regression_errors(rng, cols, error, wild):
    """Errors of predictions near the label, except the ``wild`` records' (1e200: their
    squares, and for ``squared_error`` the errors themselves, overflow float64)."""
    from monitor.core.metrics.base import ModelColumns
    from monitor.discovery.errors import record_errors
    n = wild.shape[0]
    y = rng.normal(10.0, 1.0, n)
    pred = np.where(wild, 1e200, y + rng.normal(0.0, 1.0, n))
    errors, rows = record_errors(error, ModelColumns(pred, pred, y, np.zeros(n, np.int8)))
    assert rows.shape[0] == n
    return errors


@pytest.mark.parametrize("error", ["absolute_error", "squared_error"])
def test_a_slice_of_predictions_at_1e200_is_found_without_a_warning(error):
    """Its errors count as ``ERROR_CAP``: sums and squares stay finite, so the slice is found
    first, with finite figures (the squares overflowed: RuntimeWarnings, then NaN p-values
    that hid it)."""
    from monitor.discovery.errors import ERROR_CAP
    rng = np.random.default_rng(21)
    cols, _ = frame(rng, 3000)
    wild = (cols["country"] == "BR") & (cols["plan"] == "edu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = _regression_errors(rng, cols, error, wild)
        assert errors.max() == ERROR_CAP and np.isfinite(errors).all()
        found = discover(counts(cols, errors, error=error), Settings(top_k=3))
    assert found[0].slice == "country=BR,plan=edu" and found[0].error == ERROR_CAP
    for c in found:
        assert all(math.isfinite(v) for v in (c.error, c.rest_error, c.score, c.p_value))
        assert c.p_adjusted <= 0.05 and c.score > 0


@pytest.mark.parametrize("error", ["absolute_error", "squared_error"])
def test_every_prediction_at_1e200_finds_no_slice(error):
    """A model gone wild on every record is a broad degradation: no slice is worse than the
    rest (and no NaN makes one look so)."""
    rng = np.random.default_rng(22)
    cols, _ = frame(rng, 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = _regression_errors(rng, cols, error, np.ones(3000, bool))
        assert discover(counts(cols, errors, error=error), Settings()) == []
