"""The per-model stage protocol: what :class:`~monitor.core.pipeline.ModelPipeline` calls, in
order, for the stages it was built with (the drift stage, :class:`monitor.drift.stage.
DriftStage`). A stage never gets a callback or a closure: the pipeline calls it.

For each fold of one model's records (predictions on time, or labels joined later):

1. ``before(cols)`` — predictions only: the prepared columns of the records on time, before
   any group is made or updated (a rolling reference learns its bins here);
2. ``accumulators(slice_name)`` — once per new group (window × version × slice): the stage's
   accumulators in it, after the metric accumulators;
3. ``after(groups, cols, times)`` — every group updated: which records of ``cols`` (event
   times ``times``) went to which group.

After a checkpoint is loaded, ``restored(accumulators)`` gets each group's accumulators (the
stage re-attaches what they share with it and is not in their state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from monitor.core.metrics.base import Accumulator, ModelColumns


@dataclass(frozen=True)
class GroupRows:
    """The records of one fold that went to one group: positions into the fold's columns."""

    window: float  # the window's key (start, or index for count windows)
    version: str
    slice_label: str
    rows: np.ndarray


class Stage(Protocol):
    """One model's stage, called by its pipeline in the order above."""

    def before(self, cols: ModelColumns) -> None: ...

    def accumulators(self, slice_name: str) -> list[Accumulator]: ...

    def after(self, groups: Sequence[GroupRows], cols: ModelColumns,
              times: np.ndarray) -> None: ...

    def restored(self, accumulators: Sequence[Accumulator]) -> None: ...
