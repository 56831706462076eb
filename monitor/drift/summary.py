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

import math
from array import array
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from monitor.core.grouped import Layers, layer_arrays
from monitor.core.lazy import lazy_module
from monitor.core.metrics.moments import merge_moments, moment_units
from monitor.drift.errors import DriftError
from slices.codes import factorize
from slices.spec import MISSING, OTHER

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)


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


_RESERVOIR_FIELDS = frozenset({"k", "n", "values", "keys", "rng"})


def compact_state(state: Any) -> Any:
    """``state`` (plain data, e.g. a daemon's ``state()``) for a checkpoint: the same, with
    every reservoir's ``values`` and ``keys`` as ``array.array('d')`` (stored as bytes by
    :mod:`monitor.state.encoding`, not as numbers one by one), and the equal keys of
    coordinated reservoirs (one array offered the same records) as one array, which the
    encoder stores once. :meth:`Reservoir.from_state` reads both forms. A pure function:
    ``state`` is not changed.

    >>> r = {"k": 2, "n": 2, "values": [1.0, 2.0], "keys": [0.1, 0.2], "rng": {"seed": 0}}
    >>> out = compact_state({"a": [r, dict(r, values=[3.0, 4.0])]})
    >>> out["a"][0]["values"], out["a"][0]["keys"] is out["a"][1]["keys"], r["keys"]
    (array('d', [1.0, 2.0]), True, [0.1, 0.2])
    """
    return _compact(state, {})


def _compact(state: Any, shared: dict[tuple[float, ...], array]) -> Any:
    if isinstance(state, dict):
        if state.keys() == _RESERVOIR_FIELDS and isinstance(state["values"], list):
            keys = state["keys"]
            held = shared.get(tuple(keys)) if keys else None  # equal random keys: coordinated
            if held is None:
                held = array("d", keys)
                if keys:
                    shared[tuple(keys)] = held
            return {**state, "values": array("d", state["values"]), "keys": held}
        return {k: _compact(v, shared) for k, v in state.items()}
    if isinstance(state, list):
        return [_compact(v, shared) for v in state]
    return state


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

    @property
    def top(self) -> float:
        """The k-th smallest key once ``k`` values are held (inf before): a value whose key
        is not below it never enters."""
        return self._top

    @property
    def mark(self) -> object | None:
        """A token shared with the reservoirs that were offered the same records with the
        same keys since their last selection (None: not known to be shared)."""
        return self._mark

    def update(self, x: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Fold ``x`` in; ``keys`` (i.i.d. U(0, 1), one per value) default to fresh draws."""
        m = int(x.shape[0])
        if m == 0:
            return
        self.offer(np.asarray(x, dtype=np.float64), self.rng.random(m) if keys is None else keys,
                   seen=m)

    def offer(self, values: np.ndarray, keys: np.ndarray, *, seen: int) -> None:
        """Count ``seen`` values of the stream, of which ``values`` (keys ``keys``) are the
        candidates: the others' keys were not below :attr:`top`."""
        self.n += seen
        if self._top < np.inf:
            enter = np.flatnonzero(keys < self._top)
            if not enter.shape[0]:
                return
            values, keys = values[enter], keys[enter]
        if values.shape[0]:
            self._wait(values, keys)

    def skip(self, seen: int) -> None:
        """Count ``seen`` values of the stream none of which enter (keys not below
        :attr:`top`, or offered apart with :meth:`hold`)."""
        self.n += seen

    def same_stream(self, other: Reservoir) -> bool:
        """True when ``other`` holds the same keys (kept and waiting) as this reservoir:
        the two were offered the same records with the same keys."""
        if self._mark is not None and other._mark is self._mark:
            return True
        return (other.k == self.k and other._top == self._top
                and len(other._waiting) == len(self._waiting)
                and (other._keys is self._keys or np.array_equal(other._keys, self._keys))
                and all(a[1] is b[1] for a, b in zip(other._waiting, self._waiting,
                                                     strict=True)))

    def hold(self, values: np.ndarray, keys: np.ndarray, mark: object) -> int:
        """Set entering ``values`` (``keys`` all below :attr:`top`) aside without selecting,
        as one of the reservoirs sharing ``mark``; returns how many wait."""
        self._waiting.append((values, keys))
        self._n_waiting += keys.shape[0]
        self._mark = mark
        return self._n_waiting

    def pending_keys(self) -> list[np.ndarray]:
        """The keys held, then those waiting, in the order :meth:`keep` indexes them."""
        return [self._keys, *(kw for _, kw in self._waiting)]

    @property
    def waiting(self) -> int:
        """Values set aside, not selected yet."""
        return self._n_waiting

    def keep(self, positions: np.ndarray, keys: np.ndarray, top: float, mark: object) -> None:
        """Keep the values at ``positions`` of the held-then-waiting values, with their
        ``keys`` and the k-th key ``top`` (one selection over :meth:`pending_keys`, made for
        every reservoir sharing ``mark``)."""
        self._values = np.concatenate([self._values, *(vw for vw, _ in self._waiting)])[positions]
        self._keys, self._top, self._waiting, self._n_waiting = keys, top, [], 0
        self._mark = mark

    def merge(self, other: Reservoir) -> None:
        if other.k != self.k:
            raise DriftError(f"cannot merge reservoirs of size {self.k} and {other.k}")
        if not other.n:
            return
        # bottom-k of the union whichever side selects: the one whose top is lower (the
        # larger stream's) filters the other's values, held and waiting, none selected here
        if other._top < self._top:
            held, waiting, n = (self._values, self._keys), self._waiting, self.n
            self._values, self._keys, self._top = other._values, other._keys, other._top
            self._waiting, self._n_waiting = list(other._waiting), other._n_waiting
            self.n, self._mark = other.n, None
        else:
            held, waiting, n = (other._values, other._keys), other._waiting, other.n
        self.offer(*held, seen=n)
        for values, keys in waiting:
            self.offer(values, keys, seen=0)

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
        return {"k": self.k, "n": self.n, "values": self.values.tolist(),
                "keys": self.keys.tolist(), "rng": rng}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Reservoir:
        r = cls(state["k"], state["rng"].get("seed", 0))
        r.n = int(state["n"])
        r._values = np.asarray(state["values"], dtype=np.float64)
        if "seed" not in state["rng"]:
            r.rng = _rng_from_state(state["rng"])
        thinned = bool(state.get("thinned"))  # a scale-out delta (monitor/scale/thin.py)
        if r._values.shape[0] > r.k or (not thinned and r._values.shape[0] != min(r.k, r.n)):
            raise DriftError(f"reservoir state holds {r._values.shape[0]} values for k={r.k}, "
                             f"n={r.n} (expected min(k, n))")
        if "keys" in state:
            r._keys = np.asarray(state["keys"], dtype=np.float64)
            if r._keys.shape != r._values.shape:
                raise DriftError(f"reservoir state has {r._keys.shape[0]} keys for "
                                 f"{r._values.shape[0]} values")
        else:  # a state written before keys were stored: draw keys consistent with it
            r._keys = _bottom_keys(r.rng, r._values.shape[0], r.n)
        r._top = float(r._keys.max()) if r._keys.shape[0] == r.k and not thinned else np.inf
        return r


def coordinated(reservoirs: Sequence[Reservoir]) -> bool:
    """True when ``reservoirs`` (the columns of one slice) have always been offered the same
    records with the same keys."""
    first = reservoirs[0]
    return all(first.same_stream(r) for r in reservoirs[1:])


def offer_coordinated(reservoirs: Sequence[Reservoir], x: np.ndarray, keys: np.ndarray) -> None:
    """Offer ``x[j]`` to ``reservoirs[j]`` (:func:`coordinated`; all ``keys`` enter); when more
    than ``k`` wait, one selection for all of them."""
    mark = object()
    waiting = [r.hold(x[j], keys, mark) for j, r in enumerate(reservoirs)]
    if waiting[0] > reservoirs[0].k:
        _select_together(reservoirs)


def settle(reservoirs: Sequence[Reservoir]) -> None:
    """Select what waits in :func:`coordinated` reservoirs with one selection (their kept keys
    stay one shared array, e.g. before a checkpoint); others select when read."""
    if len(reservoirs) > 1 and reservoirs[0].waiting and coordinated(reservoirs):
        _select_together(reservoirs)


def _select_together(reservoirs: Sequence[Reservoir]) -> None:
    all_keys = np.concatenate(reservoirs[0].pending_keys())
    keep, top = _bottom_k(all_keys, reservoirs[0].k)
    kept = all_keys[keep]
    mark = object()  # still coordinated: one selection, shared keys
    for r in reservoirs:
        r.keep(keep, kept, top, mark)


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
        self.search_edges = self.edges.copy()
        if self.search_edges.shape[0]:
            self.search_edges[-1] = np.nextafter(self.search_edges[-1], np.inf)
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
        """Population standard deviation of the finite values (NaN when none; inf when
        ``m2`` is beyond float64: values near 1e300)."""
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
        """Fold ``values``: :func:`fold_numeric_groups` with one group."""
        original = np.asarray(values)
        x = as_float(original)
        n = x.shape[0]
        if n == 0:
            return
        fold_numeric_groups(x[None, :], self.bucket_codes(x, original)[None, :],
                            self.reservoir.rng.random(n), layer_arrays([np.arange(n)], n),
                            [[self]])

    def bucket_codes(self, x: np.ndarray, original: np.ndarray | None = None) -> np.ndarray:
        """Per-record code of float64 ``x`` with ``E`` edges: its bucket ``0..E`` when finite,
        ``E+1`` = -inf, ``E+2`` = +inf, ``E+3`` = missing (NaN), ``E+4`` = present in
        ``original`` (an object array) but not a number. Depends on the edges only, so a batch
        can be coded once and its groups folded with :func:`fold_numeric_groups`."""
        codes = np.searchsorted(self.search_edges, x, side="right")
        e = self.edges.shape[0]
        if not np.isfinite(x).all():
            codes[np.isnan(x)] = e + 3
            codes[x == -np.inf] = e + 1
            codes[x == np.inf] = e + 2
            if original is not None and original.dtype.kind not in "fiub":
                codes[np.isnan(x) & ~pd.isna(original)] = e + 4
        return codes

    def count_missing(self, n: int) -> None:
        """Count ``n`` records without a value (a column absent from a batch)."""
        self.missing += int(n)

    def set_moments(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        """Replace the moments of the finite values (merged elsewhere, many summaries at once:
        :func:`fold_numeric_groups`)."""
        self.n, self.mean, self.m2, self.min, self.max = n, mean, m2, lo, hi

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
        self.n, self.mean, self.m2 = merge_moments((self.n, self.mean, self.m2),
                                                   (n_b, mean_b, m2_b))
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
                "mismatches": self.mismatches, "n": self.n, "mean": self.mean,
                "m2": self.m2 if math.isfinite(self.m2) else None,  # beyond float64: null
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
        s.mean = float(state["mean"])
        s.m2 = math.inf if state["m2"] is None else float(state["m2"])
        s.min = np.inf if state["min"] is None else float(state["min"])
        s.max = -np.inf if state["max"] is None else float(state["max"])
        s.reservoir = Reservoir.from_state(state["reservoir"])
        return s

    def empty_like(self, seed: int | Sequence[int] = 0) -> NumericSummary:
        s = NumericSummary.__new__(NumericSummary)  # edges already checked: shared
        s.edges, s.search_edges, s.code_key = self.edges, self.search_edges, self.code_key
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


def numeric_offsets(summaries: Sequence[NumericSummary]) -> np.ndarray:
    """Where each summary's :meth:`~NumericSummary.bucket_codes` start in codes of several
    columns side by side (``E + 5`` codes each), and the total width last."""
    return np.concatenate([[0], np.cumsum([s.edges.shape[0] + 5 for s in summaries])]
                          ).astype(np.int64)


def fold_numeric_groups(x: np.ndarray, codes: np.ndarray, keys: np.ndarray, layers: Layers,
                        summaries: list[list[NumericSummary]]) -> None:
    """Fold columns ``x`` (``F × n`` float64) into ``summaries[g][j]`` (group ``g``, column
    ``j``) for the records of group ``g`` in ``layers``
    (:func:`monitor.core.grouped.layer_arrays`). ``codes`` are the columns'
    :meth:`~NumericSummary.bucket_codes` plus :func:`numeric_offsets` (every group's summaries
    share the bins), ``keys`` one reservoir key per record (shared by every reservoir the
    record is offered to: coordinated bottom-k sampling; each reservoir is still a uniform
    sample of its column, and merges stay exact).

    One compiled pass (:func:`~monitor.core.kernels.fold_numeric`) for every group's
    histograms, shifted sums, minima and maxima; Chan-merged moments; then the records whose
    key is below some reservoir's k-th key in their group are offered (once the reservoirs
    are full, a vanishing share). ``NumericSummary.update`` is this with one group.

    Finite values whose sums or squares overflow (``|x|`` near 1e300) have their sums taken
    again in units of a power of two per column (:func:`moment_units`; exact scaling): the
    mean stays finite, ``m2`` is ``+inf`` only when it is beyond float64, never NaN."""
    first = summaries[0]
    offsets = numeric_offsets(first)
    ends = offsets[:-1] + np.array([s.edges.shape[0] + 1 for s in first])  # past finite codes
    finite = codes < ends[:, None]
    n_cols, width = x.shape[0], int(offsets[-1])
    hist = np.zeros((len(summaries), width), dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is checked below
        shift, s1, s2, lo, hi = _sums(x, codes, ends, finite, layers, summaries, hist)
    unit = None
    if not (np.isfinite(s1).all() and np.isfinite(s2).all()):
        unit = moment_units(x, finite)
        shift, s1, s2, lo, hi = _sums(x / unit[:, None], codes, ends, finite, layers,
                                      summaries, np.zeros_like(hist), unit)
    finite_n = np.stack([hist[:, offsets[j]:ends[j]].sum(axis=1) for j in range(n_cols)],
                        axis=1)
    off_l = offsets.tolist()
    cells = [s for group in summaries for s in group]
    for g, group in enumerate(summaries):
        for j, s in enumerate(group):
            s.count_coded(hist[g, off_l[j]:off_l[j + 1]])
    per = np.maximum(finite_n, 1)
    mean_b, m2_b = shift[None, :] + s1 / per, s2 - s1 * s1 / per
    if unit is not None:  # back to the values' units (m2 may overflow to +inf)
        with np.errstate(over="ignore"):
            mean_b, m2_b = mean_b * unit, np.maximum(m2_b, 0.0) * unit * unit
            lo, hi = lo * unit, hi * unit
    _merge_moments(cells, finite_n.ravel(), mean_b.ravel(), m2_b.ravel(), lo.ravel(),
                   hi.ravel())
    _offer(x, finite, keys, layers[0], layers[1], summaries, finite_n.tolist())


def _sums(x: np.ndarray, codes: np.ndarray, ends: np.ndarray, finite: np.ndarray,
          layers: Layers, summaries: list[list[NumericSummary]], hist: np.ndarray,
          unit: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(shift, s1, s2, lo, hi)`` of :func:`~monitor.core.kernels.fold_numeric` (the
    histograms into ``hist``): the columns' means, the groups' shifted sums and squares,
    their extremes from the running ones (divided by ``unit`` when ``x`` is in its units)."""
    from monitor.core.kernels import fold_numeric

    if finite.all():
        shift = x.mean(axis=1)
    else:
        shift = np.array([float(row[ok].mean()) if ok.any() else 0.0
                          for row, ok in zip(x, finite, strict=True)])
    n_groups, n_cols = len(summaries), x.shape[0]
    s1, s2 = np.zeros((n_groups, n_cols)), np.zeros((n_groups, n_cols))
    # the running extremes: the batch's only matter where beyond them (kernels._fold_extremes)
    lo = np.array([[s.min for s in group] for group in summaries], dtype=np.float64)
    hi = np.array([[s.max for s in group] for group in summaries], dtype=np.float64)
    if unit is not None:
        lo, hi = lo / unit, hi / unit
    fold_numeric(x, codes, ends, shift, layers[0], layers[1], hist, s1, s2, lo, hi,
                 finite=finite)
    return shift, s1, s2, lo, hi


def _merge_moments(cells: list[NumericSummary], n_b: np.ndarray, mean_b: np.ndarray,
                   m2_b: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray) -> None:
    """Merge a batch's ``(n, mean, M2, min, max)`` into every summary of ``cells`` at once
    (:func:`merge_moments` on arrays; cells with ``n_b = 0`` are untouched)."""
    n_a = np.array([s.n for s in cells], dtype=np.float64)
    mean_a = np.array([s.mean for s in cells])
    m2_a = np.array([s.m2 for s in cells])
    _, mean, m2 = merge_moments((n_a, mean_a, m2_a), (n_b, mean_b, m2_b))
    lo = np.minimum([s.min for s in cells], lo_b).tolist()
    hi = np.maximum([s.max for s in cells], hi_b).tolist()
    n = n_a + n_b
    for i, (s, nb, nn, mu, v) in enumerate(zip(cells, n_b.tolist(), n.tolist(), mean.tolist(),
                                               m2.tolist(), strict=True)):
        if nb:
            s.set_moments(int(nn), mu, v, lo[i], hi[i])


def _offer(x: np.ndarray, finite: np.ndarray, keys: np.ndarray, layer_codes: np.ndarray,
           layer_groups: np.ndarray, summaries: list[list[NumericSummary]],
           finite_n: list[list[int]]) -> None:
    """Offer each group's finite values to its reservoirs, keyed by the record's key: only
    records whose key is below the largest k-th key among their group's reservoirs are
    looked at."""
    from monitor.core.kernels import reservoir_candidates

    tops = np.array([[s.reservoir.top for s in group] for group in summaries])
    groups, rows = reservoir_candidates(keys, tops.max(axis=1), layer_codes, layer_groups)
    cuts = np.searchsorted(groups, np.arange(len(summaries) + 1)).tolist()
    for g, (group, counts) in enumerate(zip(summaries, finite_n, strict=True)):
        reservoirs = [s.reservoir for s in group]
        r = rows[cuts[g]:cuts[g + 1]]
        if not r.shape[0]:
            for res, m in zip(reservoirs, counts, strict=True):
                res.skip(m)
            continue
        k = keys[r]
        every = r.shape[0] == x.shape[1]  # every record, in order (rows sorted, unique)
        xv = x if every else x[:, r]  # (fresh reservoirs: no F × n copy)
        enter = k[None, :] < tops[g][:, None]
        enter &= finite if every else finite[:, r]  # in place: one F × n mask, not two
        if enter.all() and coordinated(reservoirs):
            for res, m in zip(reservoirs, counts, strict=True):
                res.skip(m)
            offer_coordinated(reservoirs, xv, k)
            continue
        for j, (res, m) in enumerate(zip(reservoirs, counts, strict=True)):
            sel = enter[j]
            res.offer(xv[j, sel], k[sel], seen=m)


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
        codes, uniques = factorize(arr, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): key them by their repr
        missing = pd.isna(arr) if arr.dtype == object else np.zeros(arr.shape[0], bool)
        as_text = np.array([_Unhashable(repr(v)) if isinstance(v, list | dict | set) else v
                            for v in arr], dtype=object)
        as_text[missing] = None
        codes, uniques = pd.factorize(as_text, use_na_sentinel=True)
    keys, bad = category_keys(np.asarray(uniques, dtype=object))
    return np.asarray(codes, dtype=np.int64), keys, bad


def feature_codes(cols: Any, name: str, summary: CategoricalSummary) -> np.ndarray:
    """``summary.category_codes`` of feature ``name`` of ``cols`` (a
    :class:`~monitor.core.metrics.base.ModelColumns`), computed once per batch for every stage
    that codes it over the same vocabulary (the drift summaries, the multivariate encoder)."""
    return cols.derived(("feature_category_codes", name, summary.vocabulary),
                        lambda c: summary.category_codes(np.asarray(c.features[name])))


def _float_uniques(arr: np.ndarray) -> np.ndarray:
    """The distinct non-NaN values of float ``arr``, sorted (``np.unique`` without NaN); 0/1
    labels (and NaN) without a sort. ``0.0`` stands for ``-0.0`` too, as in ``np.unique``
    (either keys ``"0"``)."""
    zero, one = arr == 0.0, arr == 1.0
    binary = zero | one
    binary |= np.isnan(arr)
    if binary.all():
        return np.array([v for v, hit in ((0.0, zero), (1.0, one)) if hit.any()])
    uniques = np.unique(arr)
    return uniques[~np.isnan(uniques)]


def code_dtype(top: int) -> np.dtype:
    """The smallest signed integer type holding codes ``0..top`` (int8, int16, else int32):
    a category code a byte a record, not four (a reference's codes are held per feature
    and stacked). Arithmetic on them (offsets) goes into an array of a wide enough type.

    >>> code_dtype(5), code_dtype(200), code_dtype(40_000)
    (dtype('int8'), dtype('int16'), dtype('int32'))
    """
    for t in (np.int8, np.int16):
        if top <= np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.int32)


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

    def count_missing(self, n: int) -> None:
        """Count ``n`` records without a value (a column absent from a batch)."""
        self.missing += int(n)

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
            uniques = _float_uniques(arr)
            keys, bad = category_keys(uniques.astype(object))
            codes = np.searchsorted(uniques, arr)  # NaN sorts last: the "missing" entry
        else:
            codes, keys, bad = keyed_codes(arr)
        v = len(self.vocabulary)
        target = np.array([v + 2 if b else self._index.get(k, v)
                           for k, b in zip(keys, bad, strict=True)] + [v + 1],
                          dtype=code_dtype(v + 2))
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
