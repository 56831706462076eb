"""Mergeable per-window summaries of one column: fixed-bin histograms, moments, a reservoir.

Memory is bounded by bins and the reservoir size, never by records. Every summary follows the
accumulator protocol of :mod:`monitor.core.metrics.base`: ``update``, ``merge`` (associative; exact
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

from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from monitor.drift.errors import DriftError
from slices.assign import factorize_once
from slices.spec import MISSING, OTHER


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


_COMPACT: ContextVar[dict[int, tuple[np.ndarray, array]] | None] = ContextVar(
    "compact_state", default=None)


@contextmanager
def compact_state() -> Iterator[None]:
    """Inside, ``to_state`` gives a reservoir's values and keys as ``array.array('d')``
    instead of lists (a checkpoint pickles them as bytes — not JSON, for checkpoints only)
    and a keys array shared by coordinated reservoirs once (pickle's memo keeps one copy).
    ``from_state`` reads both forms."""
    token = _COMPACT.set({})
    try:
        yield
    finally:
        _COMPACT.reset(token)


def _floats_out(a: np.ndarray) -> list[float] | array:
    memo = _COMPACT.get()
    if memo is None:
        return a.tolist()
    hit = memo.get(id(a))
    if hit is None or hit[0] is not a:
        hit = memo[id(a)] = (a, array("d", np.ascontiguousarray(a, dtype=np.float64).tobytes()))
    return hit[1]


def as_float(values: np.ndarray) -> np.ndarray:
    """``values`` as float64; object arrays through ``pandas.to_numeric`` (non-numbers → NaN)."""
    x = np.asarray(values)
    if x.dtype.kind in "fiub":
        return x.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").to_numpy(np.float64)


class Reservoir:
    """A uniform random sample without replacement of at most ``k`` values of a stream.

    Bottom-k sampling: every value seen gets an independent key ``u ~ U(0, 1)`` (from this
    reservoir's generator) and ``values`` are the ``min(k, n)`` values with the smallest keys
    (``keys`` alongside). Since the keys are i.i.d., every ``min(k, n)``-subset of the stream
    is equally likely. ``merge`` keeps the ``k`` smallest keys of both samples, which is
    *exactly* the bottom-k sample of the union of the two (disjoint) streams — no randomness
    at merge time, so merging is associative and commutative and the result does not depend
    on how the stream was split (in distribution; the keys depend on the random streams).

    Updates only filter: values whose key is below the current k-th smallest key are set
    aside, and the k smallest are selected when more than ``k`` wait or the sample is read,
    so the selection costs O(1) per candidate instead of O(k) per update.
    """

    def __init__(self, k: int = 1000, seed: int | Sequence[int] = 0):
        if k < 1:
            raise DriftError(f"reservoir size k must be >= 1, got {k}")
        self.k = int(k)
        self.n = 0
        self._values = np.empty(0, dtype=np.float64)
        self._keys = np.empty(0, dtype=np.float64)
        self._waiting: list[tuple[np.ndarray, np.ndarray]] = []  # (values, keys) to select
        self._n_waiting = 0
        self._top = np.inf  # k-th smallest key when k are held: larger keys never enter
        self._rng: np.random.Generator | None = None
        self._rng_from: Any = seed  # a seed, or a bit generator state (copies)
        self._mark: object | None = None  # shared while offered the same records as others

    @property
    def rng(self) -> np.random.Generator:
        """The generator of the keys (made on first use: copies that only merge never pay)."""
        if self._rng is None:
            src = self._rng_from
            if isinstance(src, dict):
                self._rng = np.random.Generator(np.random.PCG64())
                self._rng.bit_generator.state = src
            else:
                self._rng = np.random.default_rng(src)
        return self._rng

    @rng.setter
    def rng(self, rng: np.random.Generator) -> None:
        self._rng = rng

    @property
    def values(self) -> np.ndarray:
        """The sample: ``min(k, n)`` values (read-only; order is arbitrary)."""
        self._select()
        return self._values

    @property
    def keys(self) -> np.ndarray:
        self._select()
        return self._keys

    def update(self, x: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Fold ``x`` in; ``keys`` (i.i.d. U(0, 1), one per value) default to fresh draws."""
        m = int(x.shape[0])
        if m == 0:
            return
        self.n += m
        self._offer(np.asarray(x, dtype=np.float64), self.rng.random(m) if keys is None else keys)

    @staticmethod
    def coordinated(reservoirs: Sequence[Reservoir]) -> bool:
        """True when ``reservoirs`` (the columns of one slice) have always been offered the
        same records with the same keys: equal kept keys, the same keys waiting."""
        first = reservoirs[0]
        mark = first._mark
        if mark is not None and all(r._mark is mark for r in reservoirs):
            return True
        keys, waiting = first._keys, first._waiting
        for r in reservoirs[1:]:
            if r.k != first.k or r._top != first._top or len(r._waiting) != len(waiting) \
                    or not (r._keys is keys or np.array_equal(r._keys, keys)) \
                    or any(a[1] is not b[1] for a, b in zip(r._waiting, waiting, strict=True)):
                return False
        return True

    @staticmethod
    def offer_coordinated(reservoirs: Sequence[Reservoir], x: np.ndarray,
                          keys: np.ndarray) -> None:
        """``reservoirs[j]._wait(x[j], keys)`` for :meth:`coordinated` reservoirs whose keys
        all enter; when more than ``k`` wait, one selection for all of them."""
        mark = object()
        for j, r in enumerate(reservoirs):
            r._waiting.append((x[j], keys))
            r._n_waiting += keys.shape[0]
            r._mark = mark
        if reservoirs[0]._n_waiting > reservoirs[0].k:
            Reservoir._select_coordinated(reservoirs)

    @staticmethod
    def settle(reservoirs: Sequence[Reservoir]) -> None:
        """Select what waits in :meth:`coordinated` reservoirs with one selection (their kept
        keys stay one shared array, e.g. before a checkpoint); others select one by one."""
        if len(reservoirs) > 1 and reservoirs[0]._waiting and Reservoir.coordinated(reservoirs):
            Reservoir._select_coordinated(reservoirs)

    @staticmethod
    def _select_coordinated(reservoirs: Sequence[Reservoir]) -> None:
        first = reservoirs[0]
        all_keys = np.concatenate([first._keys, *(kw for _, kw in first._waiting)])
        keep, top = _bottom_k(all_keys, first.k)
        kept_keys = all_keys[keep]
        mark = object()  # still coordinated: one selection, shared keys
        for r in reservoirs:
            r._values = np.concatenate([r._values, *(vw for vw, _ in r._waiting)])[keep]
            r._keys, r._top, r._waiting, r._n_waiting = kept_keys, top, [], 0
            r._mark = mark

    def merge(self, other: Reservoir) -> None:
        if other.k != self.k:
            raise DriftError(f"cannot merge reservoirs of size {self.k} and {other.k}")
        if other.n:
            self.n += other.n
            self._offer(other.values, other.keys)

    def _offer(self, values: np.ndarray, keys: np.ndarray) -> None:
        if self._top < np.inf:
            enter = np.flatnonzero(keys < self._top)
            if not enter.shape[0]:
                return
            values, keys = values[enter], keys[enter]
        self._wait(values, keys)

    def _wait(self, values: np.ndarray, keys: np.ndarray) -> None:
        self._mark = None
        self._waiting.append((values, keys))
        self._n_waiting += keys.shape[0]
        if self._n_waiting > self.k:
            self._select()

    def _select(self) -> None:
        """Keep the ``k`` smallest keys of the sample and the values waiting."""
        if not self._waiting:
            return
        self._mark = None
        keys = np.concatenate([self._keys, *(kw for _, kw in self._waiting)])
        values = np.concatenate([self._values, *(vw for vw, _ in self._waiting)])
        self._waiting, self._n_waiting = [], 0
        keep, self._top = _bottom_k(keys, self.k)
        self._keys, self._values = keys[keep], values[keep]

    def copy(self) -> Reservoir:
        self._select()
        r = Reservoir.__new__(Reservoir)
        r.k, r.n, r._top = self.k, self.n, self._top
        r._values, r._keys = self._values.copy(), self._keys.copy()
        r._waiting, r._n_waiting = [], 0
        r._rng = None
        r._rng_from = self._rng_from if self._rng is None else self._rng.bit_generator.state
        r._mark = None
        return r

    def to_state(self) -> dict[str, Any]:
        src = self._rng_from
        if self._rng is None and not isinstance(src, dict):  # never drew: its seed is enough
            rng: dict[str, Any] = {"seed": src if isinstance(src, int) else list(src)}
        else:
            rng = _rng_state(self.rng)
        return {"k": self.k, "n": self.n, "values": _floats_out(self.values),
                "keys": _floats_out(self.keys), "rng": rng}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Reservoir:
        r = cls(state["k"], state["rng"].get("seed", 0))
        r.n = int(state["n"])
        r._values = np.asarray(state["values"], dtype=np.float64)
        if "seed" not in state["rng"]:
            r.rng = _rng_from_state(state["rng"])
        if r._values.shape[0] != min(r.k, r.n):
            raise DriftError(f"reservoir state holds {r._values.shape[0]} values for k={r.k}, "
                             f"n={r.n} (expected min(k, n))")
        if "keys" in state:
            r._keys = np.asarray(state["keys"], dtype=np.float64)
            if r._keys.shape != r._values.shape:
                raise DriftError(f"reservoir state has {r._keys.shape[0]} keys for "
                                 f"{r._values.shape[0]} values")
        else:  # a state written before keys were stored: draw keys consistent with it
            r._keys = _bottom_keys(r.rng, r._values.shape[0], r.n)
        r._top = float(r._keys.max()) if r._keys.shape[0] == r.k else np.inf
        return r


def _bottom_k(keys: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """``(positions of the min(k, len) smallest keys, k-th smallest key or inf)``."""
    if keys.shape[0] > k:
        part = np.argpartition(keys, k - 1)
        return part[:k], float(keys[part[k - 1]])
    top = float(keys.max()) if keys.shape[0] == k else np.inf
    return np.arange(keys.shape[0]), top


def _bottom_keys(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Keys for a uniform ``size``-sample of ``n`` values: the ``size`` smallest of ``n``
    i.i.d. uniforms, in random order. Order statistics via exponential spacings:
    ``U_(i) = S_i / S_(n+1)``, ``S_j`` the sums of i.i.d. Exp(1), ``S_(n+1) = S_size +
    Gamma(n + 1 - size)``."""
    if size == n:
        return rng.random(size)
    s = np.cumsum(rng.standard_exponential(size))
    total = s[-1] + rng.gamma(n + 1 - size) if size else 1.0
    return (s / total)[rng.permutation(size)]


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
        self._set_search_edges()

    def _set_search_edges(self) -> None:
        # searchsorted(side="right") over these puts x == e_B in bucket B (the closed last
        # interior bin) and x > e_B in B + 1: x > e_B ⇔ x >= nextafter(e_B, inf).
        self._search = self.edges.copy()
        if self._search.shape[0]:
            self._search[-1] = np.nextafter(self._search[-1], np.inf)
        self.code_key = self.edges.tobytes()

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
        return isinstance(other, NumericSummary) and (
            other.edges is self.edges or np.array_equal(self.edges, other.edges))

    # --- protocol ---
    def update(self, values: np.ndarray) -> None:
        original = np.asarray(values)
        x = as_float(original)
        self.update_coded(x, self.bucket_codes(x, original))

    def bucket_codes(self, x: np.ndarray, original: np.ndarray | None = None) -> np.ndarray:
        """Per-record code of float64 ``x`` with ``E`` edges: its bucket ``0..E`` when finite,
        ``E+1`` = -inf, ``E+2`` = +inf, ``E+3`` = missing (NaN), ``E+4`` = present in
        ``original`` (an object array) but not a number. Depends on the edges only, so a batch
        can be coded once and its groups folded with :meth:`update_coded`."""
        codes = np.searchsorted(self._search, x, side="right")
        e = self.edges.shape[0]
        if not np.isfinite(x).all():
            codes[np.isnan(x)] = e + 3
            codes[x == -np.inf] = e + 1
            codes[x == np.inf] = e + 2
            if original is not None and original.dtype.kind not in "fiub":
                codes[np.isnan(x) & ~pd.isna(original)] = e + 4
        return codes

    def update_coded(self, x: np.ndarray, codes: np.ndarray,
                     keys: np.ndarray | None = None) -> None:
        """Fold float64 ``x`` whose :meth:`bucket_codes` are ``codes`` (``keys``: the
        reservoir keys of ``x``, default fresh draws)."""
        e = self.edges.shape[0]
        if self.count_coded(np.bincount(codes, minlength=e + 5)):
            finite = codes <= e
            x = x[finite]
            keys = None if keys is None else keys[finite]
        if x.shape[0] == 0:
            return
        mean_b = float(x.mean())
        self._combine(x.shape[0], mean_b, float(np.square(x - mean_b).sum()),
                      float(x.min()), float(x.max()))
        self.reservoir.update(x, keys)

    def count_coded(self, c: np.ndarray) -> bool:
        """Add the histogram of codes ``c`` (``np.bincount`` of :meth:`bucket_codes`, length
        ``E + 5``) to the counts; True when it holds non-finite or missing values."""
        e = self.edges.shape[0]
        self.counts += c[:e + 1]
        if not c[e + 1:].any():
            return False
        neg, pos, missing, bad = (int(v) for v in c[e + 1:])
        self.counts[0] += neg
        self.counts[e] += pos
        self.nonfinite += neg + pos
        self.missing += missing + bad
        self.mismatches += bad
        return True

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
        s = NumericSummary.__new__(NumericSummary)  # edges already checked: shared
        s.edges, s._search, s.code_key = self.edges, self._search, self.code_key
        s.counts = np.zeros_like(self.counts)
        s.missing = s.nonfinite = s.mismatches = s.n = 0
        s.mean, s.m2, s.min, s.max = 0.0, 0.0, np.inf, -np.inf
        s.reservoir = Reservoir(self.reservoir.k, seed)
        return s

    def copy(self) -> NumericSummary:
        """An independent copy (edges shared: they are never modified)."""
        s = NumericSummary.__new__(NumericSummary)
        s.__dict__.update(self.__dict__)
        s.counts = self.counts.copy()
        s.reservoir = self.reservoir.copy()
        return s


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


def keyed_codes(values: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(codes, keys, mismatch)``: codes into ``keys`` (-1 = missing) for a categorical column."""
    arr = np.asarray(values)
    try:
        codes, uniques = factorize_once(arr)  # shared with the slice rules of the batch
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
        self.update_coded(self.category_codes(values))

    @property
    def code_key(self) -> tuple[str, ...]:
        return self.vocabulary

    def category_codes(self, values: np.ndarray) -> np.ndarray:
        """Per-record code with ``V`` vocabulary values: its index ``0..V-1``, ``V`` =
        ``__other__``, ``V+1`` = missing, ``V+2`` = type mismatch (counted as ``__other__``
        too). Depends on the vocabulary only, so a batch can be coded once and its groups
        folded with :meth:`update_coded`."""
        arr = np.asarray(values)
        if arr.dtype.kind == "f":  # numbers (labels): sorted uniques instead of hashing
            uniques = np.unique(arr)
            uniques = uniques[~np.isnan(uniques)]
            keys, bad = category_keys(uniques.astype(object))
            codes = np.searchsorted(uniques, arr)  # NaN sorts last: the "missing" entry
        else:
            codes, keys, bad = keyed_codes(arr)
        v = len(self.vocabulary)
        target = np.array([v + 2 if b else self._index.get(k, v)
                           for k, b in zip(keys, bad, strict=True)] + [v + 1], dtype=np.int64)
        return target[codes]  # code -1 / len(keys) (missing) picks the last entry, v + 1

    def update_coded(self, codes: np.ndarray) -> None:
        """Fold records whose :meth:`category_codes` are ``codes``."""
        self.count_coded(np.bincount(codes, minlength=len(self.vocabulary) + 3))

    def count_coded(self, c: np.ndarray) -> None:
        """Add the histogram ``c`` of :meth:`category_codes` (length ``V + 3``)."""
        v = len(self.vocabulary)
        self.counts += c[:v + 1]
        if c[v + 1] or c[v + 2]:
            self.counts[v] += c[v + 2]
            self.missing += int(c[v + 1])
            self.mismatches += int(c[v + 2])

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

    def copy(self) -> CategoricalSummary:
        s = CategoricalSummary.__new__(CategoricalSummary)
        s.__dict__.update(self.__dict__)
        s.counts = self.counts.copy()
        return s


Summary = NumericSummary | CategoricalSummary


def summary_from_state(state: dict[str, Any]) -> Summary:
    kind = state.get("kind")
    if kind == "numeric":
        return NumericSummary.from_state(state)
    if kind == "categorical":
        return CategoricalSummary.from_state(state)
    raise DriftError(f"unknown summary kind {kind!r} (expected 'numeric' or 'categorical')")
