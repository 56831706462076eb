"""Helpers shared by the accumulators: parameter checks, ratios, merge compatibility."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.errors import MetricError

NAN = math.nan


def ratio(num: float, den: float) -> float:
    """``num / den`` as a float, NaN when ``den == 0`` (the 0/0 convention of every metric)."""
    return float(num) / float(den) if den else NAN


def check_int(owner: str, name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``, else :class:`MetricError` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise MetricError(f"The {name!r} parameter of {owner} must be an int in the range "
                          f"[{lo}, {hi}]. Got {value!r}.")
    return int(value)


def check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise MetricError(f"The {name!r} parameter of {owner} must be one of "
                          f"{', '.join(map(repr, allowed))}. Got {value!r}.")
    return str(value)


def positive(x: np.ndarray) -> np.ndarray:
    """Binary 0/1 floats (labels or predictions) read as booleans: positive iff ``x >= 0.5``."""
    return x >= 0.5


class AccumulatorBase:
    """Common behaviour; subclasses set ``kind``/``needs_label`` and implement the protocol.

    ``params()`` returns the constructor parameters (stored under their own names); two
    accumulators merge only when kind and parameters match.
    """

    kind: ClassVar[str]
    needs_label: ClassVar[bool]
    _param_names: ClassVar[tuple[str, ...]] = ()

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def check_mergeable(self, other: Any) -> None:
        if type(other) is not type(self):
            raise MetricError(f"cannot merge {type(other).__name__} into {type(self).__name__}: "
                              "accumulators of different kinds")
        if other.params() != self.params():
            raise MetricError(f"cannot merge {type(self).__name__}{other.params()} into "
                              f"{type(self).__name__}{self.params()}: parameters differ")

    def totals(self) -> dict[str, float]:
        """Additive raw counts other accumulators' ratios may need (see ``window_results``)."""
        return {}

    def copy(self) -> Any:
        """An independent copy (through the plain-data state)."""
        return type(self).from_state(self.to_state())  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class GroupedAccumulator(AccumulatorBase):
    """An accumulator whose one rule is the grouped update: ``update_many(cols, [(acc, rows),
    …])`` folds every group of a batch at once, and ``update(cols)`` is that same update with
    one group holding every record."""

    def update(self, cols: ModelColumns) -> None:
        type(self).update_many(cols, [(self, np.arange(len(cols)))])  # type: ignore[attr-defined]


def state_params(cls: type, state: dict[str, Any]) -> dict[str, Any]:
    """The constructor parameters stored in ``state``; MetricError when the state is foreign."""
    kind = state.get("kind", cls.kind)  # type: ignore[attr-defined]
    if kind != cls.kind:  # type: ignore[attr-defined]
        raise MetricError(f"cannot read a {kind!r} state as {cls.__name__} "
                          f"(kind {cls.kind!r})")  # type: ignore[attr-defined]
    return dict(state.get("params", {}))
