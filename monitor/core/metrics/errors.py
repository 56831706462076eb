"""Errors of the metric accumulators, under the one root :class:`slices.errors.SlicewatchError`."""

from __future__ import annotations

from slices.errors import SlicewatchError


class MetricError(SlicewatchError, ValueError):
    """A bad accumulator parameter, an incompatible merge, or a state that cannot be read.

    Messages name the culprit and the bound broken, e.g. ``"The 'bins' parameter of
    ScoreHistogram must be an int in the range [2, 1048576]. Got 1."``
    """
