"""What discovery hands on: typed, immutable, plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["window", "horizon"]


@dataclass(frozen=True)
class DiscoveredSlice:
    """One slice found significantly worse than the rest of its window (or horizon).

    ``slice`` is named as a declared slice would be (``country=BR,device=web``,
    ``amount=[100,500)``); ``where`` is a predicate selecting exactly its records, to paste
    into the spec as ``- {name: ..., where: ...}``.
    """

    model: str
    version: str
    scope: Scope
    rank: int  # 1 = highest SliceLine score
    slice: str
    where: str
    level: int
    records: int  # labelled records in the slice
    error: float  # mean error in the slice
    rest_error: float  # mean error of the other labelled records
    score: float  # SliceLine score
    p_value: float
    p_adjusted: float  # Benjamini-Hochberg over the candidates examined
    candidates: int  # candidates examined (tested) for this result
    window_start: float
    window_end: float  # horizon: the first window's start to the last's end

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "scope": self.scope,
                "rank": self.rank, "slice": self.slice, "where": self.where,
                "level": self.level, "records": self.records, "error": self.error,
                "rest_error": self.rest_error, "score": self.score, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "candidates": self.candidates,
                "window_start": self.window_start, "window_end": self.window_end}
