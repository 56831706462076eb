"""The accumulator protocol every per-window, per-slice state follows.

An accumulator is a small class over numpy arrays:

- ``update(cols)`` folds a micro-batch (:class:`ModelColumns`, the records of one
  model × version × slice × window group) into the state, vectorised;
- ``merge(other)`` folds another accumulator of the same kind and parameters into this one;
  merge is associative and ``a.update(x); a.update(y)`` equals ``a.update(x); b.update(y);
  a.merge(b)`` (exactly for counts and sums, to float rounding for moments);
- ``to_state()`` returns plain JSON-able data and ``from_state(state)`` rebuilds it (checkpoints);
- ``result()`` returns ``{metric_name: value}`` (NaN when undefined, e.g. no labels yet).

``needs_label`` tells the window which records to feed: label-side accumulators only see
records whose label is known (inline, or joined later by prediction id), prediction-side ones
see every prediction once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ModelColumns:
    """Prepared arrays of one model's records, all of length ``n``.

    - ``score``: float64, NaN when absent (binary: P(positive); multiclass: P(predicted class)).
    - ``predicted``: binary → float64 0/1 (NaN when unknown); multiclass → int64 class codes
      (-1 unknown); regression → float64 predicted value.
    - ``label``: binary → float64 0/1; multiclass → int64 class codes; regression → float64;
      missing (not labelled yet) is NaN, or -1 for codes.
    - ``outcome``: int8 serving outcome codes (0 ok, 1 error, 2 timeout, 3 fallback).
    - ``features``: name → float64 (numeric) or object (categorical) array.
    - ``key``: uint64 record keys (:func:`monitor.core.prepare.record_keys`) or None;
      ``key_source``: computes them for the whole batch when first asked for (only the
      bootstrap's weights read keys: a batch without a bootstrapped metric never hashes ids).
    """

    score: np.ndarray
    predicted: np.ndarray
    label: np.ndarray
    outcome: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    # uint64 record keys (a hash of the prediction id): the bootstrap's per-record seeds
    key: np.ndarray | None = None
    key_source: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)
    # per-record arrays derived from these columns (see `derived`), and where a `take` came from
    _derived: dict[Any, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    _parent: tuple[ModelColumns, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.outcome.shape[0])

    def take(self, index: np.ndarray) -> ModelColumns:
        """The records at ``index`` (positions or a boolean mask); feature columns are indexed
        when first read."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return ModelColumns(self.score[index], self.predicted[index], self.label[index],
                       self.outcome[index], _TakenFeatures(self.features, index),
                       None if self.key is None else self.key[index], _parent=(self, index))

    def derived(self, key: Any, compute: Callable[[ModelColumns], np.ndarray], *,
                axis: int = 0) -> np.ndarray:
        """``compute(self)`` — an array over the records (along ``axis``) that depends on the
        columns only — computed once per batch: on columns made by :meth:`take`, the parent's
        array is computed (and kept) and indexed. So the groups of one batch share one pass
        over the whole batch. ``key`` names the computation (it must determine ``compute``)."""
        hit = self._derived.get(key)
        if hit is None:
            if self._parent is not None:
                parent, index = self._parent
                whole = parent.derived(key, compute, axis=axis)
                hit = whole[index] if axis == 0 else np.take(whole, index, axis=axis)
            else:
                hit = compute(self)
            self._derived[key] = hit
        return hit

    def feature_dtype(self, name: str) -> np.dtype | None:
        """The dtype of feature ``name`` (None when absent), without indexing a taken column."""
        f = self.features
        if name not in f:
            return None
        return f.dtype(name) if isinstance(f, _TakenFeatures) else np.asarray(f[name]).dtype

    def labelled(self) -> np.ndarray:
        """Boolean mask of records whose label is known."""
        if self.label.dtype.kind == "f":
            return ~np.isnan(self.label)
        return self.label >= 0


class _TakenFeatures(dict):
    """``{name: column[index]}`` over the columns of a batch, each column indexed on first
    read (groups often need none of them: drift reads per-batch codes, metrics no features).
    """

    def __init__(self, source: dict[str, np.ndarray], index: np.ndarray):
        super().__init__()
        if isinstance(source, _TakenFeatures):  # a take of a take: index the batch once
            source, index = source._source, source._index[index]
        self._source, self._index = source, index

    def __missing__(self, name: str) -> np.ndarray:
        col = self._source[name][self._index]
        self[name] = col
        return col

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._source else default

    def __contains__(self, name: object) -> bool:
        return name in self._source

    def __iter__(self):
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def keys(self):
        return self._source.keys()

    def items(self):
        return [(name, self[name]) for name in self._source]

    def values(self):
        return [self[name] for name in self._source]

    def copy(self) -> dict[str, np.ndarray]:
        return dict(self.items())

    def __eq__(self, other: object) -> bool:
        return dict(self.items()) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def __reduce__(self):
        return dict, (self.items(),)

    def dtype(self, name: str) -> np.dtype:
        return np.asarray(self._source[name]).dtype


@runtime_checkable
class Accumulator(Protocol):
    kind: ClassVar[str]
    needs_label: ClassVar[bool]

    def update(self, cols: ModelColumns) -> None: ...

    def merge(self, other: Any) -> None: ...

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Any: ...

    def result(self) -> dict[str, float]: ...


Interval = tuple[float, float]
