"""The partial: what one worker publishes for one source partition at one checkpoint.

A partial is plain data (the checkpoint state encoding, :mod:`monitor.state.encoding`; no
pickle): the **delta** of every window the partition's records touched since the previous
checkpoint (per group ``(version, slice, label)`` the accumulator states of the records folded
since), and the partition's progress (largest event time per model, whether it delivered
records, whether it is caught up). Deltas of the same window from any partitions and
checkpoints merge with the accumulators' own ``merge``, in any order.

>>> p = Partial("preds:0", 3, windows=[], progress=Progress({"m": 61.0}, True, False))
>>> decode_partial(encode_partial(p)) == p
True
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core.metrics.registry import OPTIONAL_KINDS, common_optional
from monitor.core.windows import Window, log_once
from monitor.state.encoding import decode_state, encode_state
from slices.errors import SlicewatchError

FORMAT = 1
MAX_PARTIAL_BYTES = 256 << 20


REJECT_REASONS = ("decode", "model", "state", "merge", "counts")


class PartialError(SlicewatchError):
    """A partial that is not one of this format (or does not fit the evaluator's spec).

    ``reason`` (one of :data:`REJECT_REASONS`, a bounded metric label): ``decode`` the bytes
    are not a partial, ``model`` a model not in the spec, ``state`` a window state that does
    not read, ``merge`` accumulators that do not merge (other settings or specs), ``counts``
    malformed counters."""

    def __init__(self, message: str, reason: str = "decode"):
        super().__init__(message)
        self.reason = reason if reason in REJECT_REASONS else "decode"


@dataclass(frozen=True)
class Progress:
    """A source partition's progress at a checkpoint: per model the largest event time seen
    in it (``times``), whether it delivered any record (``busy``), whether it is caught up
    (``idle``: nothing left to read at the checkpoint)."""

    times: dict[str, float]
    busy: bool
    idle: bool


@dataclass(frozen=True)
class WindowDelta:
    """The records folded into one window of one model since the previous checkpoint."""

    model: str
    window: dict[str, Any]  # Window.to_state()


@dataclass(frozen=True)
class Partial:
    """One source partition's checkpoint: ``seq`` counts its checkpoints (from 1 per worker
    generation; diagnostics only — exactly-once comes from the transaction)."""

    source: str
    seq: int
    windows: list[WindowDelta] = field(default_factory=list)
    progress: Progress = field(default_factory=lambda: Progress({}, False, False))
    counts: dict[str, Any] = field(default_factory=dict)


def pack_arrays(state: Any, min_len: int = 16) -> Any:
    """``state`` with its long lists of numbers (and rectangular lists of such lists) as
    numpy arrays, which the encoding stores as bytes — smaller, and read back without a
    Python object per number (accumulators' ``from_state`` take arrays or lists alike).

    >>> pack_arrays({"a": [0.5] * 16, "b": [1, 2], "c": [[1.0] * 16] * 2})["c"].shape
    (2, 16)
    """
    if isinstance(state, dict):
        return {k: pack_arrays(v, min_len) for k, v in state.items()}
    if not isinstance(state, list) or not state:
        return state
    if not isinstance(state[0], dict | str | bool):  # numbers, or rows of them: numpy tries
        try:
            arr = np.asarray(state)
        except (ValueError, OverflowError):  # ragged, or ints beyond int64
            arr = None
        if arr is not None and arr.dtype.kind in "fi" and arr.size >= min_len \
                and (arr.ndim == 1 or arr.shape[1] > 0):
            return arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64, copy=False)
    return [pack_arrays(x, min_len) for x in state]


def encode_partial(p: Partial) -> bytes:
    """Partial → bytes (plain-data state encoding; number lists as arrays)."""
    return encode_state({"format": FORMAT, "source": p.source, "seq": p.seq,
                         "windows": [[w.model, pack_arrays(w.window)] for w in p.windows],
                         "progress": [dict(p.progress.times), p.progress.busy,
                                      p.progress.idle],
                         "counts": p.counts})


def decode_partial(blob: bytes, *, max_bytes: int = MAX_PARTIAL_BYTES) -> Partial:
    """Bytes → :class:`Partial`; anything else is a :class:`PartialError`."""
    try:
        d = decode_state(blob, max_bytes=max_bytes)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise PartialError(f"not a partial of format {FORMAT}")
        times, busy, idle = d["progress"]
        return Partial(str(d["source"]), int(d["seq"]),
                       [WindowDelta(str(m), w) for m, w in d["windows"]],
                       Progress({str(k): float(v) for k, v in times.items()}, bool(busy),
                                bool(idle)),
                       dict(d.get("counts") or {}))
    except PartialError:
        raise
    except Exception as exc:  # any garbage: rejected, never a crash (nothing was changed)
        raise PartialError(f"bad partial: {type(exc).__name__}: {str(exc)[:200]}") from None


def merge_window(into: Window, delta: Window, counts: Counter | None = None) -> None:
    """Fold ``delta`` into ``into`` (same model and key): groups merged accumulator by
    accumulator with their exact ``merge``; new groups taken as they are. All or nothing:
    :func:`prepare_merge`, then :func:`commit_merge`.

    An optional (bootstrap) accumulator only one side holds (a partial of another version,
    docs/scaling.md "Upgrades") is left out of the merged group — its replicates would cover
    part of the records — and counted in ``counts["bootstrap_incomplete"]``: the group's paired
    comparisons are then not reported for this window. Any other difference is a
    :class:`PartialError` (reason ``merge``), and ``into`` is left untouched."""
    commit_merge(into, delta, prepare_merge(into, delta), counts)


def prepare_merge(into: Window, delta: Window) -> list[tuple[Any, Any, list | None, bool]]:
    """The merge of ``delta`` into ``into``, computed without touching ``into``: each group
    both hold is merged into ``delta``'s own (fresh) accumulators, which then replace
    ``into``'s at :func:`commit_merge`. ``delta`` is consumed. Any error (settings that
    differ — histogram edges, bins, reservoir sizes —, kinds, shapes) is a
    :class:`PartialError` with reason ``merge``."""
    plan = []
    for key, group in delta.groups.items():
        mine = into.groups.get(key)
        if mine is None:
            plan.append((key, group, None, False))
            continue
        try:
            common, partial = common_optional([mine.accumulators, group.accumulators])
            if partial:
                keep = [a for a in mine.accumulators
                        if a.kind not in OPTIONAL_KINDS or a.kind in common]
                theirs = [a for a in group.accumulators
                          if a.kind not in OPTIONAL_KINDS or a.kind in common]
            else:
                keep, theirs = mine.accumulators, group.accumulators
            for a, b in zip(keep, theirs, strict=True):
                b.merge(a)  # into the fresh delta's accumulator: ``into`` unchanged on error
        except Exception as exc:
            raise PartialError(f"group {key}: {type(exc).__name__}: {str(exc)[:200]} "
                               "(different specs?)", "merge") from None
        plan.append((key, group, theirs, bool(partial)))
    return plan


def commit_merge(into: Window, delta: Window, plan: list[tuple[Any, Any, list | None, bool]],
                 counts: Counter | None = None) -> None:
    """Apply a :func:`prepare_merge` plan to ``into`` (assignments only: cannot fail)."""
    for key, group, merged, partial in plan:
        if merged is None:
            into.groups[key] = group
            continue
        mine = into.groups[key]
        mine.accumulators = merged
        mine.count += group.count
        if partial:
            if counts is not None:
                counts["bootstrap_incomplete"] += 1
            log_once("bootstrap_incomplete", f"group {key}: a bootstrap accumulator only one "
                     "partial holds (workers of different versions or specs): left out of the "
                     "merged group; its paired comparisons are not reported for this window")
    into.records += delta.records
    into.first_time = min(into.first_time, delta.first_time)
    into.last_time = max(into.last_time, delta.last_time)


def empty(window: Window) -> bool:
    """True when nothing was folded into ``window``."""
    return not window.groups and window.records == 0 and not math.isfinite(window.first_time)
