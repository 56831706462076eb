"""Mergeable per-window summaries of one column: fixed-bin histograms, moments, a reservoir.

Memory is bounded by bins and the reservoir size, never by records. Every summary follows the
accumulator protocol of :mod:`monitor.metrics.base`: ``update``, ``merge`` (associative; exact
for counts, to float rounding for moments, *in distribution* for the reservoir), ``to_state`` /
``from_state`` (plain JSON-able data, including the random generator's state so a restart
continues the same random stream).

Numeric bins (``edges`` e_0 < … < e_B, from a reference profile)::

    bucket 0          (-inf, e_0)        underflow (also -inf)
    bucket i, 1..B-1  [e_{i-1}, e_i)
    bucket B          [e_{B-1}, e_B]     (last interior bin is closed)
    bucket B+1        (e_B, +inf)        overflow (also +inf)
    missing           NaN / None         (not in ``counts``)

>>> s = NumericSummary([0.0, 1.0, 2.0], sample_size=3, seed=0)
>>> s.update(np.array([-1.0, 0.0, 1.0, 2.0, 3.0, np.nan]))
>>> s.counts.tolist(), s.missing, s.n, s.mean
([1, 1, 2, 1], 1, 5, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from monitor.drift.errors import DriftError
from slices.spec import MISSING, OTHER

# numpy's hypergeometric sampler needs ngood + nbad below this; above it we use the binomial
# limit of the hypergeometric (the difference is O(k / n) and n is then > 1e9).
_HYPERGEOM_MAX = 10**9 - 1


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """PCG64 state as JSON-safe data (its 128-bit integers as decimal strings)."""
    s = rng.bit_generator.state
    return {"bit_generator": s["bit_generator"],
            "state": {k: str(v) for k, v in s["state"].items()},
            "has_uint32": int(s["has_uint32"]), "uinteger": int(s["uinteger"])}


def _rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    if state["bit_generator"] != "PCG64":
        raise DriftError(f"random generator {state['bit_generator']!r} is not supported "
                         "(expected PCG64)")
    bg = np.random.PCG64()
    bg.state = {"bit_generator": "PCG64",
                "state": {k: int(v) for k, v in state["state"].items()},
                "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}
    return np.random.Generator(bg)


class Reservoir:
    """A uniform random sample without replacement of at most ``k`` values of a stream.

    Invariant: after seeing ``n`` values, ``values`` is a uniformly random ``min(k, n)``-subset
    of them. ``update(x)`` first reduces the batch to a uniform ``k``-subset of itself, then
    merges it like another reservoir. Merging samples A (size ``n_a`` seen) and B (``n_b``):
    the number of A-items in a uniform ``k``-subset of A ∪ B is hypergeometric,
    ``m ~ H(n_a, n_b, k)``; take a uniform ``m``-subset of A's sample and a uniform
    ``(k - m)``-subset of B's. Given the invariant for A and B this is exactly a uniform
    ``k``-subset of A ∪ B, so the result does not depend on how the stream was split (in
    distribution; the concrete draw depends on the random stream).
    """

    def __init__(self, k: int = 1000, seed: int | Sequence[int] = 0):
        if k < 1:
            raise DriftError(f"reservoir size k must be >= 1, got {k}")
        self.k = int(k)
        self.n = 0
        self.values = np.empty(0, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def update(self, x: np.ndarray) -> None:
        m = int(x.shape[0])
        if m == 0:
            return
        if m > self.k:
            x = x[self.rng.choice(m, self.k, replace=False)]
        self._absorb(np.asarray(x, dtype=np.float64), m)

    def merge(self, other: Reservoir) -> None:
        if other.k != self.k:
            raise DriftError(f"cannot merge reservoirs of size {self.k} and {other.k}")
        if other.n:
            self._absorb(other.values, other.n)

    def _absorb(self, sample: np.ndarray, n_b: int) -> None:
        n_a, k = self.n, self.k
        if n_a + n_b <= k:
            self.values = np.concatenate([self.values, sample])
        else:
            if n_a + n_b <= _HYPERGEOM_MAX:
                m = int(self.rng.hypergeometric(n_a, n_b, k)) if n_a else 0
            else:
                m = int(self.rng.binomial(k, n_a / (n_a + n_b)))
            m = min(m, self.values.shape[0], k)
            m = max(m, k - sample.shape[0])
            keep_a = self.rng.choice(self.values.shape[0], m, replace=False)
            keep_b = self.rng.choice(sample.shape[0], k - m, replace=False)
            self.values = np.concatenate([self.values[keep_a], sample[keep_b]])
        self.n = n_a + n_b

    def to_state(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "values": self.values.tolist(),
                "rng": _rng_state(self.rng)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Reservoir:
        r = cls(state["k"])
        r.n = int(state["n"])
        r.values = np.asarray(state["values"], dtype=np.float64)
        r.rng = _rng_from_state(state["rng"])
        return r


class NumericSummary:
    """Histogram over fixed edges + moments (Chan et al.) + min/max + reservoir of one column.

    ``n``/``mean``/``m2``/``min``/``max`` and the reservoir cover finite values only; ``±inf``
    count in ``nonfinite`` and land in the under/overflow buckets; NaN/None count as
    ``missing``. Object arrays are coerced with ``pandas.to_numeric``; values that are present
    but not numbers count as ``mismatches`` (and as missing for the distribution).
    """

    kind: ClassVar[str] = "numeric"

    def __init__(self, edges: Sequence[float] | np.ndarray, sample_size: int = 1000,
                 seed: int | Sequence[int] = 0):
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or np.any(np.diff(self.edges) <= 0) or \
                not np.all(np.isfinite(self.edges)):
            raise DriftError(f"bin edges must be finite and strictly increasing, got "
                             f"{self.edges.tolist()[:8]}")
        self.counts = np.zeros(self.edges.shape[0] + 1, dtype=np.int64)
        self.missing = 0
        self.nonfinite = 0
        self.mismatches = 0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = np.inf
        self.max = -np.inf
        self.reservoir = Reservoir(sample_size, seed)

    # --- derived ---
    @property
    def total(self) -> int:
        """Records seen, including missing ones."""
        return int(self.counts.sum()) + self.missing

    @property
    def present(self) -> int:
        """Non-missing records (finite or ±inf): the mass of the histogram."""
        return int(self.counts.sum())

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values (NaN when none)."""
        return float(np.sqrt(self.m2 / self.n)) if self.n else float("nan")

    @property
    def sample(self) -> np.ndarray:
        return self.reservoir.values

    def binned(self) -> np.ndarray:
        """Counts of the non-missing values per bucket (underflow, bins…, overflow)."""
        return self.counts

    def same_bins(self, other: Any) -> bool:
        return isinstance(other, NumericSummary) and np.array_equal(self.edges, other.edges)

    # --- protocol ---
    def update(self, values: np.ndarray) -> None:
        x = np.asarray(values)
        if x.dtype.kind not in "fiub":
            present = ~pd.isna(x)
            x = pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").to_numpy(np.float64)
            self.mismatches += int(np.count_nonzero(present & np.isnan(x)))
        else:
            x = x.astype(np.float64, copy=False)
        nan = np.isnan(x)
        self.missing += int(np.count_nonzero(nan))
        x = x[~nan]
        if x.shape[0] == 0:
            return
        idx = np.searchsorted(self.edges, x, side="right")
        if self.edges.shape[0]:
            idx[x == self.edges[-1]] = self.edges.shape[0] - 1
        self.counts += np.bincount(idx, minlength=self.counts.shape[0])
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite += int(np.count_nonzero(~finite))
            x = x[finite]
        if x.shape[0] == 0:
            return
        mean_b = float(x.mean())
        self._combine(x.shape[0], mean_b, float(np.square(x - mean_b).sum()),
                      float(x.min()), float(x.max()))
        self.reservoir.update(x)

    def _combine(self, n_b: int, mean_b: float, m2_b: float, min_b: float, max_b: float) -> None:
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.n = n
        self.min = min(self.min, min_b)
        self.max = max(self.max, max_b)

    def merge(self, other: NumericSummary) -> None:
        if not self.same_bins(other):
            raise DriftError("cannot merge numeric summaries with different bin edges")
        self.counts += other.counts
        self.missing += other.missing
        self.nonfinite += other.nonfinite
        self.mismatches += other.mismatches
        if other.n:
            self._combine(other.n, other.mean, other.m2, other.min, other.max)
        self.reservoir.merge(other.reservoir)

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "edges": self.edges.tolist(), "counts": self.counts.tolist(),
                "missing": self.missing, "nonfinite": self.nonfinite,
                "mismatches": self.mismatches, "n": self.n, "mean": self.mean, "m2": self.m2,
                "min": self.min if self.n else None, "max": self.max if self.n else None,
                "reservoir": self.reservoir.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NumericSummary:
        s = cls(state["edges"], sample_size=state["reservoir"]["k"])
        s.counts = np.asarray(state["counts"], dtype=np.int64)
        if s.counts.shape[0] != s.edges.shape[0] + 1:
            raise DriftError(f"numeric summary state has {s.counts.shape[0]} counts for "
                             f"{s.edges.shape[0]} edges (expected edges + 1)")
        s.missing, s.nonfinite = int(state["missing"]), int(state["nonfinite"])
        s.mismatches, s.n = int(state["mismatches"]), int(state["n"])
        s.mean, s.m2 = float(state["mean"]), float(state["m2"])
        s.min = np.inf if state["min"] is None else float(state["min"])
        s.max = -np.inf if state["max"] is None else float(state["max"])
        s.reservoir = Reservoir.from_state(state["reservoir"])
        return s

    def empty_like(self, seed: int | Sequence[int] = 0) -> NumericSummary:
        return NumericSummary(self.edges, self.reservoir.k, seed)


class _Unhashable(str):
    """``repr`` of an unhashable value (list, dict) found in a categorical column."""


def category_keys(uniques: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Normalise distinct non-missing values to string keys, flagging type mismatches.

    ``str`` stays itself; bools, integers and integral floats → ``str(int(v))`` (so ``True``,
    ``1``, ``1.0`` and ``"1"`` are one category — Python hashes them alike); anything else
    (non-integral floats, lists, dicts, …) is a type mismatch and keyed by ``repr``.
    Runs once per *distinct* value of a batch, not per record.
    """
    keys: list[str] = []
    bad = np.zeros(len(uniques), dtype=bool)
    for i, u in enumerate(uniques):
        if isinstance(u, _Unhashable):
            keys.append(str(u))
            bad[i] = True
        elif isinstance(u, str):
            keys.append(u)
        elif _integral(u):
            keys.append(str(int(u)))
        else:
            keys.append(repr(u))
            bad[i] = True
    return keys, bad


def _integral(u: Any) -> bool:
    if isinstance(u, int | np.integer | np.bool_):
        return True
    return isinstance(u, float | np.floating) and bool(np.isfinite(u)) and float(u).is_integer()


def factorize(values: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(codes, keys, mismatch)``: codes into ``keys`` (-1 = missing) for a categorical column."""
    arr = np.asarray(values)
    try:
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): key them by their repr
        missing = pd.isna(arr) if arr.dtype == object else np.zeros(arr.shape[0], bool)
        as_text = np.array([_Unhashable(repr(v)) if isinstance(v, list | dict | set) else v
                            for v in arr], dtype=object)
        as_text[missing] = None
        codes, uniques = pd.factorize(as_text, use_na_sentinel=True)
    keys, bad = category_keys(np.asarray(uniques, dtype=object))
    return np.asarray(codes, dtype=np.int64), keys, bad


class CategoricalSummary:
    """Counts over a fixed vocabulary (the reference's top values) + ``__other__`` + missing.

    ``counts[i]`` counts ``vocabulary[i]``; ``counts[-1]`` counts everything else (unseen or
    rare values, and type mismatches). ``missing`` counts None/NaN; ``mismatches`` counts values
    whose type is not a category (see :func:`category_keys`).
    """

    kind: ClassVar[str] = "categorical"

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = tuple(str(v) for v in vocabulary)
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise DriftError("categorical vocabulary has duplicate values")
        if OTHER in self.vocabulary or MISSING in self.vocabulary:
            raise DriftError(f"categorical vocabulary may not contain {OTHER} or {MISSING}")
        self._index = {v: i for i, v in enumerate(self.vocabulary)}
        self.counts = np.zeros(len(self.vocabulary) + 1, dtype=np.int64)
        self.missing = 0
        self.mismatches = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.missing

    @property
    def present(self) -> int:
        return int(self.counts.sum())

    @property
    def other(self) -> int:
        return int(self.counts[-1])

    def binned(self) -> np.ndarray:
        """Counts of the non-missing values per category (vocabulary…, ``__other__``)."""
        return self.counts

    def same_bins(self, other: Any) -> bool:
        return isinstance(other, CategoricalSummary) and self.vocabulary == other.vocabulary

    def update(self, values: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Count ``values``; ``missing`` optionally marks extra records as missing."""
        values = np.asarray(values)
        if missing is not None:
            self.missing += int(np.count_nonzero(missing))
            values = values[~missing]
        codes, keys, bad = factorize(values)
        per_unique = np.bincount(codes[codes >= 0], minlength=len(keys))
        self.missing += int(np.count_nonzero(codes < 0))
        other = len(self.vocabulary)
        target = np.array([self._index.get(k, other) if not b else other
                           for k, b in zip(keys, bad, strict=True)], dtype=np.int64)
        if len(keys):
            self.counts += np.bincount(target, weights=per_unique,
                                       minlength=other + 1).astype(np.int64)
            self.mismatches += int(per_unique[bad].sum())

    def merge(self, other: CategoricalSummary) -> None:
        if not self.same_bins(other):
            raise DriftError("cannot merge categorical summaries with different vocabularies")
        self.counts += other.counts
        self.missing += other.missing
        self.mismatches += other.mismatches

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocabulary": list(self.vocabulary),
                "counts": self.counts.tolist(), "missing": self.missing,
                "mismatches": self.mismatches}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalSummary:
        s = cls(state["vocabulary"])
        s.counts = np.asarray(state["counts"], dtype=np.int64)
        if s.counts.shape[0] != len(s.vocabulary) + 1:
            raise DriftError(f"categorical summary state has {s.counts.shape[0]} counts for "
                             f"{len(s.vocabulary)} values (expected values + 1)")
        s.missing, s.mismatches = int(state["missing"]), int(state["mismatches"])
        return s

    def empty_like(self, seed: int | Sequence[int] = 0) -> CategoricalSummary:
        return CategoricalSummary(self.vocabulary)


Summary = NumericSummary | CategoricalSummary


def summary_from_state(state: dict[str, Any]) -> Summary:
    kind = state.get("kind")
    if kind == "numeric":
        return NumericSummary.from_state(state)
    if kind == "categorical":
        return CategoricalSummary.from_state(state)
    raise DriftError(f"unknown summary kind {kind!r} (expected 'numeric' or 'categorical')")
