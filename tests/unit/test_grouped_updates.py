"""One-pass updates of every group of a batch (``update_many``, ``update_groups``) equal the
per-group ``update`` on the group's records: counts exactly, sums and moments to rounding.

Groups come from several slice rules over one batch, so they overlap the way the daemon's do
(a record in one group per rule, some records in none)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.grouped import count_codes, layer_arrays, sum_values
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.registry import REGISTRY


def _batch(n: int, rng: np.random.Generator) -> ModelColumns:
    score = rng.random(n)
    score[rng.random(n) < 0.1] = np.nan
    predicted = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
    label = (rng.random(n) < 0.4).astype(float)
    label[rng.random(n) < 0.3] = np.nan
    outcome = rng.integers(0, 4, n).astype(np.int8)
    return ModelColumns(score, predicted, label, outcome)


def _groups(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Groups of three overlapping slice rules (3, 5 and 2 values), some rows unassigned."""
    out = []
    for values in (3, 5, 2):
        codes = rng.integers(-1, values, n)
        out += [np.flatnonzero(codes == v) for v in range(values)]
    return [g for g in out if g.shape[0]]


def test_layer_arrays_place_every_group_once_per_layer():
    rng = np.random.default_rng(0)
    groups = _groups(500, rng)
    codes, owners = layer_arrays(groups, 500)
    for g, rows in enumerate(groups):
        layer = [i for i in range(codes.shape[0]) if g in owners[i].tolist()]
        assert len(layer) == 1
        local = owners[layer[0]].tolist().index(g)
        assert np.array_equal(np.flatnonzero(codes[layer[0]] == local), rows)


def test_count_codes_and_sum_values_equal_per_group_bincount_and_sum():
    rng = np.random.default_rng(1)
    n = 400
    cols = _batch(n, rng)
    groups = _groups(n, rng)
    codes = rng.integers(0, 6, (2, n))
    values = rng.normal(size=(3, n))
    hist = count_codes(cols, groups, codes, 6)
    sums = sum_values(cols, groups, values)
    for g, rows in enumerate(groups):
        want = np.bincount(codes[:, rows].ravel(), minlength=6)
        assert hist[g].tolist() == want.tolist()
        assert sums[g] == pytest.approx(values[:, rows].sum(axis=1), rel=1e-12, abs=1e-12)


MANY = sorted(kind for kind, cls in REGISTRY.items() if hasattr(cls, "update_many"))


def _equal_states(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _equal_states(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _equal_states(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), path
    else:
        assert a == b, path


@pytest.mark.parametrize("kind", MANY)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300))
def test_update_many_equals_update_per_group(kind, seed, n):
    assert {"outcome_counts", "confusion", "score_moments", "score_histogram",
            "probabilistic_loss", "label_count"} <= set(MANY)
    rng = np.random.default_rng(seed)
    cols = _batch(n, rng)
    groups = _groups(n, rng)
    if not groups:
        return
    cls = REGISTRY[kind]
    many = [cls() for _ in groups]
    alone = [cls() for _ in groups]
    for _ in range(2):  # twice: the second pass merges into non-empty state
        if cls.needs_label:
            lab = cols.labelled()
            parts = [rows[lab[rows]] for rows in groups]
        else:
            parts = groups
        cls.update_many(cols, [(acc, rows) for acc, rows in zip(many, parts, strict=True)
                               if rows.shape[0]])
        for acc, rows in zip(alone, parts, strict=True):
            if rows.shape[0]:
                acc.update(cols.take(rows))
    for a, b in zip(many, alone, strict=True):
        _equal_states(a.to_state(), b.to_state())
        assert a.result() == pytest.approx(b.result(), rel=1e-9, nan_ok=True)
