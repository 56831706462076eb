"""Multivariate drift: PCA reconstruction error (NannyML's data reconstruction drift).

Fit on the reference (:func:`fit_reconstruction`): every feature becomes one column —
numeric values as they are, categorical ones frequency-encoded (the category's reference
share; ``__other__`` its share, usually ~0); missing values are imputed (numeric: the
reference mean, categorical: the most frequent category) — then each column is standardised
with the reference mean and standard deviation. PCA keeps the fewest components whose
cumulative explained variance reaches ``variance`` (default 0.65, as NannyML). A record's
error is the Euclidean distance between its standardised vector ``z`` and its
reconstruction ``z C^T C`` (``C``: the kept components, rows orthonormal).

A window's statistic is the mean error of its records (:class:`ReconstructionError`: sum and
count, mergeable exactly). The reference gives its band (:class:`ErrorBand`): the reference
records are cut into ``chunks`` chunks in their order; the band is ``mean ± 3 sd`` of the
chunk means (NannyML's rule), scaled to the window's size by ``sqrt(chunk_size / n)``. A
window whose mean error leaves the band has drifted. Everything is stored as plain arrays
(no pickle). Details: docs/analysis.md.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(4000, 2)) @ np.array([[1.0, 0.9], [0.0, 0.44]])
>>> fit = fit_reconstruction({"a": x[:, 0], "b": x[:, 1]}, {"a": None, "b": None})
>>> fit.components.shape, bool(fit.band.lower < fit.errors({"a": x[:, 0], "b": x[:, 1]}).mean()
...                                < fit.band.upper)
((1, 2), True)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.moments import moment_units
from monitor.core.metrics.registry import register
from monitor.drift.errors import ProfileError
from monitor.drift.summary import CategoricalSummary, feature_codes

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

DEFAULT_VARIANCE = 0.65
DEFAULT_CHUNKS = 10
BAND_SIGMAS = 3.0
MIN_CHUNK = 20  # records per reference chunk below which a scope has no band of its own


@dataclass(frozen=True)
class ErrorBand:
    """``mean ± 3 sd`` of the mean error of reference chunks of ``chunk_size`` records;
    :meth:`bounds` rescales the spread to a window of ``n`` records (``sd · sqrt(c / n)``)."""

    mean: float
    chunk_sd: float
    chunk_size: int

    @property
    def lower(self) -> float:
        return self.bounds(self.chunk_size)[0]

    @property
    def upper(self) -> float:
        return self.bounds(self.chunk_size)[1]

    def bounds(self, n: int) -> tuple[float, float]:
        half = BAND_SIGMAS * self.chunk_sd * math.sqrt(self.chunk_size / max(n, 1))
        return self.mean - half, self.mean + half

    def to_state(self) -> list[float]:
        return [self.mean, self.chunk_sd, float(self.chunk_size)]

    @classmethod
    def from_state(cls, s: list[float]) -> ErrorBand:
        return cls(float(s[0]), float(s[1]), int(s[2]))


def error_band(errors: np.ndarray, chunks: int = DEFAULT_CHUNKS) -> ErrorBand | None:
    """The band of per-record reference ``errors`` (in reference order); None when a chunk
    would hold fewer than :data:`MIN_CHUNK` records."""
    size = errors.shape[0] // chunks
    if chunks < 2 or size < MIN_CHUNK:
        return None
    means = errors[:size * chunks].reshape(chunks, size).mean(axis=1)
    return ErrorBand(float(errors.mean()), float(means.std(ddof=1)), size)


@dataclass(frozen=True)
class Reconstruction:
    """A fitted encoder + PCA: ``features`` (name → None for numeric, else the category →
    reference share table), column ``center``/``scale``, kept ``components`` (k × d), the
    ``explained`` variance ratio of each kept one, the overall :class:`ErrorBand` and one per
    slice (``slice_bands``)."""

    features: dict[str, tuple[tuple[str, ...], np.ndarray] | None]
    impute: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    band: ErrorBand | None
    slice_bands: dict[str, ErrorBand]

    def encode(self, features: Mapping[str, np.ndarray], *,
               codes: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The standardised n × d matrix of the records' ``features`` (absent column: all
        imputed). ``codes``: categorical features' :meth:`CategoricalSummary.category_codes`
        over their vocabulary, when the caller has them already (the drift summaries')."""
        n = len(next(iter(features.values()))) if features else 0
        out = np.empty((len(self.features), n), np.float64)  # column j = row j, contiguous
        for j, (name, table) in enumerate(self.features.items()):
            col, row = features.get(name), out[j]
            if col is None:
                row[:] = self.impute[j]
            elif table is None:
                x = np.asarray(col)
                if x.dtype.kind not in "fiub":
                    x = pd.to_numeric(pd.Series(x, copy=False), errors="coerce")
                    x = x.to_numpy(np.float64, na_value=np.nan)
                row[:] = x
                bad = ~np.isfinite(row)
                if bad.any():
                    row[bad] = self.impute[j]
            else:
                vocab, shares = table
                coded = (codes[name] if codes is not None and name in codes
                         else CategoricalSummary(vocab).category_codes(np.asarray(col)))
                # codes: vocabulary, __other__, missing (imputed), type mismatch (__other__)
                lookup = np.concatenate([shares, [self.impute[j], shares[-1]]])
                np.take(lookup, coded, out=row)
        out -= self.center[:, None]
        out /= self.scale[:, None]
        return out.T

    def errors(self, features: Mapping[str, np.ndarray], *,
               codes: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Per-record reconstruction error ``‖z − z Cᵀ C‖₂`` (``codes``: see :meth:`encode`)."""
        with np.errstate(over="ignore"):  # bounded below
            z = self.encode(features, codes=codes)
        np.clip(z, -Z_BOUND, Z_BOUND, out=z)
        return _residual_norms(self.components, z.T)

    def band_for(self, slice_key: str | None) -> tuple[ErrorBand | None, str]:
        if slice_key is not None and slice_key in self.slice_bands:
            return self.slice_bands[slice_key], "slice"
        return self.band, "overall"

    def to_state(self) -> dict[str, Any]:
        return {"features": {k: None if t is None else [list(t[0]), t[1].tolist()]
                             for k, t in self.features.items()},
                "impute": self.impute.tolist(), "center": self.center.tolist(),
                "scale": self.scale.tolist(), "components": self.components.tolist(),
                "explained": self.explained.tolist(),
                "band": self.band.to_state() if self.band is not None else None,
                "slice_bands": {k: b.to_state() for k, b in self.slice_bands.items()}}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Reconstruction:
        try:
            feats = {str(k): None if t is None else
                     (tuple(str(v) for v in t[0]), np.asarray(t[1], np.float64))
                     for k, t in s["features"].items()}
            d = len(feats)
            comps = np.asarray(s["components"], np.float64).reshape(-1, d)
            arrays = [np.asarray(s[k], np.float64) for k in ("impute", "center", "scale")]
            if any(a.shape != (d,) for a in arrays):
                raise ValueError("encoder arrays do not match the features")
            return cls(feats, *arrays, comps, np.asarray(s["explained"], np.float64),
                       ErrorBand.from_state(s["band"]) if s["band"] is not None else None,
                       {str(k): ErrorBand.from_state(b) for k, b in s["slice_bands"].items()})
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ProfileError(f"invalid multivariate (PCA) state in profile: {e}") from None


def fit_reconstruction(features: Mapping[str, np.ndarray],
                       categorical: Mapping[str, tuple[str, ...] | None], *,
                       variance: float = DEFAULT_VARIANCE, chunks: int = DEFAULT_CHUNKS,
                       slices: Mapping[str, np.ndarray] | None = None) -> Reconstruction:
    """Fit the encoder and PCA on reference ``features``. ``categorical`` names every feature
    to use: None for numeric, else its vocabulary (values outside it are ``__other__``).
    ``slices``: slice key → row index, for per-slice bands."""
    if not 0 < variance <= 1:
        raise ProfileError(f"variance must be in (0, 1], got {variance}")
    names = sorted(categorical)
    if len(names) < 2:
        raise ProfileError("multivariate drift needs at least 2 features")
    tables: dict[str, tuple[tuple[str, ...], np.ndarray] | None] = {}
    codes: dict[str, np.ndarray] = {}  # categorical codes (int8 for up to 125 values)
    for name in names:
        vocab = categorical[name]
        if vocab is None:
            tables[name] = None
            continue
        s = CategoricalSummary(vocab)
        codes[name] = s.category_codes(np.asarray(features[name]))
        s.update_coded(codes[name])
        shares = s.counts / max(int(s.counts.sum()), 1)
        tables[name] = (tuple(vocab), shares.astype(np.float64))
    d = len(names)
    # imputation values: numeric mean of the finite values; categorical: the top share
    impute = np.array([np.nan if t is None else float(t[1][:-1].max(initial=0.0))
                       for t in tables.values()])
    enc = _Encoding(features, tables, codes)
    # column by column (each encoded alone, contiguous: numpy's own 1-D reductions, the bits
    # of the whole n × d matrix's columns), so no n × d matrix is held (200k × 20: 30 MiB);
    # numeric columns with values near ±1e308 are summed in units of a power of two (exact
    # scaling: their sums and squares do not overflow); every other column as it is
    center, scale, units = np.zeros(d), np.ones(d), np.ones(d)
    for j in range(d):
        col = enc.column(j, slice(None), impute[j])  # NaN where a number is missing
        u = units[j] = _unit(col)
        if np.isnan(impute[j]):
            impute[j] = np.nan_to_num(np.nanmean(col) if u == 1.0 else np.nanmean(col / u) * u)
            col[np.isnan(col)] = impute[j]
        center[j] = col.mean() if u == 1.0 else (col / u).mean() * u
        scale[j] = col.std() if u == 1.0 else (col / u).std() * u
    scale = np.where(scale > 0, scale, 1.0)
    enc.standardise(impute, center, scale, units)
    # the principal axes from the d × d Gram matrix, summed FIT_BLOCK records at a time
    # (eigenvalues = squared singular values of z): equal to the SVD of z up to signs and
    # rounding, at a fraction of its cost for n ≫ d (tests/unit/test_drift_multivariate.py
    # checks it against numpy's SVD and sklearn)
    gram = np.zeros((d, d))
    for zt in enc.blocks():
        gram += zt @ zt.T
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues, kind="stable")[::-1]
    sv2 = np.clip(eigenvalues[order], 0.0, None)
    vt = vectors[:, order].T
    vt *= np.where(vt[np.arange(d), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    ratio = sv2 / max(float(np.sum(sv2)), 1e-300)
    k = int(np.searchsorted(np.cumsum(ratio), variance - 1e-12) + 1)
    k = min(k, d)
    fit = Reconstruction(tables, impute, center, scale, vt[:k], ratio[:k], None, {})
    # = fit.errors(features), block by block (each record's norm: the same bits in any block)
    errs = np.empty(enc.n)
    for start, zt in zip(range(0, enc.n, FIT_BLOCK), enc.blocks(), strict=True):
        errs[start:start + zt.shape[1]] = _block_norms(fit.components, zt)
    bands = {}
    for key, rows in (slices or {}).items():
        b = error_band(errs[np.asarray(rows)], chunks)
        if b is not None:
            bands[key] = b
    return _with(fit, band=error_band(errs, chunks), slice_bands=bands)


FIT_BLOCK = 1 << 13
"""Records encoded at a time by :func:`fit_reconstruction` (its ``d × n`` block: 1.3 MiB
at 20 features)."""


class _Encoding:
    """The reference's standardised matrix ``z``, made :data:`FIT_BLOCK` records at a time
    (:meth:`blocks`, ``d × block``) from its columns and the categorical codes: the values of
    :meth:`Reconstruction.encode`, element by element, without the ``n × d`` matrix."""

    def __init__(self, features: Mapping[str, np.ndarray],
                 tables: Mapping[str, tuple[tuple[str, ...], np.ndarray] | None],
                 codes: Mapping[str, np.ndarray]):
        self.names = list(tables)
        self.numeric = {name: features[name] for name, t in tables.items() if t is None}
        self.tables, self.codes = tables, codes
        self.n = len(next(iter(codes.values()))) if codes else len(
            next(iter(self.numeric.values())))

    def column(self, j: int, rows: slice, impute: float,
               out: np.ndarray | None = None) -> np.ndarray:
        """Column ``j``'s encoded ``rows`` (into ``out``, else a fresh array): numbers as
        floats, missing or not finite ones ``impute``; categories their reference share
        (missing: ``impute``)."""
        name = self.names[j]
        table = self.tables[name]
        if table is None:
            x = np.asarray(self.numeric[name][rows])
            if x.dtype.kind not in "fiub":
                x = pd.to_numeric(pd.Series(x, copy=False), errors="coerce")
                x = x.to_numpy(np.float64, na_value=np.nan)
            if out is None:
                out = np.empty(x.shape[0])
            out[:] = x
            out[~np.isfinite(out)] = impute
            return out
        shares = table[1]
        # codes: vocabulary, __other__, missing (imputed), type mismatch (__other__)
        lookup = np.concatenate([shares, [impute, shares[-1]]])
        return np.take(lookup, self.codes[name][rows], out=out)

    def standardise(self, impute: np.ndarray, center: np.ndarray, scale: np.ndarray,
                    units: np.ndarray) -> None:
        """Set the final imputations, centres, scales and the columns' units (see
        :func:`_unit`) :meth:`blocks` applies."""
        self.impute, self.center, self.scale, self.units = impute, center, scale, units

    def blocks(self) -> Iterator[np.ndarray]:
        """``z.T`` (``d × b``, standardised), :data:`FIT_BLOCK` records at a time."""
        for start in range(0, self.n, FIT_BLOCK):
            rows = slice(start, min(self.n, start + FIT_BLOCK))
            zt = np.empty((len(self.names), rows.stop - rows.start))
            for j in range(len(self.names)):
                self.column(j, rows, self.impute[j], out=zt[j])
            if (self.units == 1.0).all():
                zt -= self.center[:, None]
                zt /= self.scale[:, None]
            else:  # in units: no overflow (the same values for a unit of 1)
                for j, u in enumerate(self.units):
                    zt[j] = (zt[j] / u - self.center[j] / u) / (self.scale[j] / u)
            yield zt


class Columns(Mapping):
    """``source``'s columns ``names`` (absent: ``n`` missing values; ``n`` None: KeyError),
    each read from ``source`` when asked: the fit reads one at a time, so columns made at
    each read (:class:`monitor.core.packed.CodedFeatures`) are not all held at once."""

    def __init__(self, source: Mapping[str, np.ndarray], names: Sequence[str],
                 n: int | None = None):
        self.source, self.names, self.n = source, tuple(names), n

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names or (self.n is None and name not in self.source):
            raise KeyError(name)
        col = self.source.get(name)
        return np.full(self.n or 0, None, object) if col is None else col

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


RESIDUAL_BLOCK = 1 << 14
"""Records per step of :func:`_residual_norms`: its ``d × n`` temporaries stay a block's."""


def _unit(col: np.ndarray) -> float:
    """The power of two (>= 1) that brings ``col``'s largest finite magnitude under
    ``2**400`` (:func:`monitor.core.metrics.moments.moment_units`)."""
    ok = np.isfinite(col)
    return float(moment_units(col[None, :], ok[None, :])[0])


Z_BOUND = 1e150
"""The standardised values :meth:`Reconstruction.errors` reads are clipped to ``±Z_BOUND``: a
window value ``1e150`` reference deviations away is as far as any (its error stays finite,
the square of its norm too, instead of overflowing to inf or NaN)."""


def _residual_norms(components: np.ndarray, zt: np.ndarray) -> np.ndarray:
    """``‖z − z Cᵀ C‖₂`` per record of ``zt`` (d × n, contiguous: see :meth:`Reconstruction.
    encode`), :data:`RESIDUAL_BLOCK` records at a time (each record's norm depends on its
    own column only: the same bits as one pass, tests/unit/test_baseline_memory.py)."""
    n = zt.shape[1]
    if n <= RESIDUAL_BLOCK:
        return _block_norms(components, zt)
    out = np.empty(n)
    for start in range(0, n, RESIDUAL_BLOCK):
        sl = slice(start, start + RESIDUAL_BLOCK)
        out[sl] = _block_norms(components, zt[:, sl])
    return out


def _block_norms(components: np.ndarray, zt: np.ndarray) -> np.ndarray:
    r = components.T @ (components @ zt)
    np.subtract(zt, r, out=r)  # in place: a fresh d × n temporary costs page faults
    return np.sqrt(np.einsum("ij,ij->j", r, r))  # the column norms, a fraction of norm()'s


def _batch_errors(cols: ModelColumns, fit: Reconstruction) -> np.ndarray:
    def errors(c: ModelColumns) -> np.ndarray:
        # categorical codes shared with the drift summaries of the same vocabulary
        codes = {name: feature_codes(c, name, CategoricalSummary(t[0]))
                 for name, t in fit.features.items() if t is not None and name in c.features}
        return fit.errors(c.features, codes=codes)

    return cols.derived(("multivariate_error", id(fit)), errors)


def _with(r: Reconstruction, **changes: Any) -> Reconstruction:
    return Reconstruction(**{**r.__dict__, **changes})


@register
class ReconstructionError:
    """Sum and count of the reconstruction errors of one group's records (mergeable exactly;
    the per-record errors are computed once per batch for all groups)."""

    kind = "multivariate_error"
    needs_label = False

    def __init__(self, fit: Reconstruction | None = None):
        self.fit = fit
        self.total = 0.0
        self.n = 0

    def update(self, cols: ModelColumns) -> None:
        if self.fit is None or len(cols) == 0:
            return
        errs = _batch_errors(cols, self.fit)
        self.total += float(errs.sum())
        self.n += int(errs.shape[0])

    @staticmethod
    def update_many(cols: ModelColumns,
                    items: list[tuple[ReconstructionError, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)``: one pass over the batch."""
        for acc, rows in items:
            if acc.fit is None or rows.shape[0] == 0:
                continue
            errs = _batch_errors(cols, acc.fit)[rows]
            acc.total += float(errs.sum())
            acc.n += int(errs.shape[0])

    def merge(self, other: ReconstructionError) -> None:
        self.total += other.total
        self.n += other.n

    def to_state(self) -> dict[str, Any]:
        return {"total": self.total, "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReconstructionError:
        acc = cls()
        acc.total, acc.n = float(state["total"]), int(state["n"])
        return acc

    def result(self) -> dict[str, float]:
        return {}

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan
