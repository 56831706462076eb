"""Data-quality numbers per feature × slice, read off a window's summaries (no extra pass).

- ``missing_rate``: missing (None/NaN) / records seen.
- ``nonfinite``: count of ±inf (numeric).
- ``out_of_range_share``: share of non-missing values outside the reference range
  ``[e_0, e_B]`` — the outer bin edges, which are the profile's min and max (numeric).
- ``unseen_share``: share of non-missing values in ``__other__`` (categorical). When the
  profile's vocabulary was truncated to its top values, rare-but-seen values are included.
- ``type_mismatches``: values whose type does not fit the feature (text in a numeric column,
  lists or fractional numbers in a categorical one).

Shares are NaN when there is nothing to divide by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.drift.features import FeatureSummaries
from monitor.drift.summary import NumericSummary, Summary


@dataclass(frozen=True)
class Quality:
    feature: str
    kind: str
    count: int
    missing_rate: float
    nonfinite: int
    out_of_range_share: float
    unseen_share: float
    type_mismatches: int


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def feature_quality(name: str, s: Summary) -> Quality:
    """Quality numbers of one summary."""
    if isinstance(s, NumericSummary):
        outside = int(s.counts[0] + s.counts[-1]) if s.edges.shape[0] else 0
        return Quality(name, s.kind, s.total, _share(s.missing, s.total), s.nonfinite,
                       _share(outside, s.present), math.nan, s.mismatches)
    return Quality(name, s.kind, s.total, _share(s.missing, s.total), 0, math.nan,
                   _share(s.other, s.present), s.mismatches)


def data_quality(summaries: FeatureSummaries) -> list[Quality]:
    """Quality numbers of every summary (features, prediction, label) of one slice × window."""
    return [feature_quality(name, s) for name, s in summaries.items()]
