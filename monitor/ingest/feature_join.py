"""Features logged apart from predictions (a feature-log topic keyed by prediction id).

Predictions are held until their features arrive — then the features are merged into the
record at the schema's ``features`` path and the prediction goes on as if logged whole — or
until ``delay`` seconds of event time have passed, when they go on without them (counted as
``missing``; data-quality checks then see the features as missing). Feature records that
arrive first wait for their prediction. One that carries its own event time is dropped and
counted as ``orphaned`` once the newest prediction is more than ``orphan_after`` seconds
(default ``delay``) past it (checked in arrival order); without a time (a backlog may hold
features far ahead of their predictions) only when more than ``max_features`` wait, the
oldest first. Keep ``delay`` within the model's ``allowed_lateness`` so released
predictions still find their window open.

>>> from slices.spec import SchemaSpec
>>> j = FeatureJoin(SchemaSpec(), delay=60)
>>> j.add_features([b'{"prediction_id": "a", "features": {"country": "BR"}}'])
[]
>>> [r["features"] for r in j.admit([{"prediction_id": "a", "timestamp": 5, "features": {}}])]
[{'country': 'BR'}]
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from monitor.ingest.decode import Reject, parse_times
from slices.spec import SchemaSpec, Spec


def _path(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _get(record: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


class FeatureJoin:
    def __init__(self, schema: SchemaSpec, *, delay: float, max_pending: int = 1_000_000,
                 max_features: int = 1_000_000, orphan_after: float | None = None):
        self.id_path = _path(schema.id)
        self.time_path = _path(schema.time)
        self.features_path = _path(schema.features)
        self.delay = float(delay)
        self.max_pending = max_pending
        self.max_features = max_features
        self.orphan_after = self.delay if orphan_after is None else float(orphan_after)
        self.features: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # id → (stamp, f)
        # id → (time, record, its place: where it was logged, or None)
        self.pending: OrderedDict[str, tuple[float, dict, Any]] = OrderedDict()
        self.max_time = -np.inf
        self.counts: Counter = Counter()

    def add_features(self, lines: Sequence[bytes]) -> list[Reject]:
        """Feature records → stored by id; returns the unusable ones (each with its
        ``index`` in ``lines``)."""
        rejects = []
        for i, line in enumerate(lines):
            if isinstance(line, Reject):  # the source's verdict (e.g. too_large)
                rejects.append(Reject(line.reason, line.raw, line.detail, i))
                continue
            if not line or not line.strip():
                rejects.append(Reject("empty_line", "", index=i))
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rejects.append(Reject("invalid_json", line.decode("utf-8", "replace"),
                                      str(exc), i))
                continue
            pid = _get(rec, self.id_path)
            feats = _get(rec, self.features_path) if self.features_path else rec
            if pid is None:
                rejects.append(Reject("missing_field:id", rec, index=i))
            elif not isinstance(feats, dict):
                rejects.append(Reject("wrong_type:features", rec, index=i))
            else:
                stamp = parse_times([_get(rec, self.time_path)])[0]  # none: never by time
                self.features[str(pid)] = (float(stamp) if np.isfinite(stamp) else np.inf,
                                           feats)
                self.features.move_to_end(str(pid))
        while len(self.features) > self.max_features:
            self.features.popitem(last=False)
            self.counts["orphaned"] += 1
        return rejects

    def _expire_features(self) -> None:
        """Features whose prediction can no longer come on time → ``orphaned``."""
        horizon = self.max_time - self.orphan_after
        while self.features:
            stamp, _ = next(iter(self.features.values()))
            if stamp >= horizon:
                break
            self.features.popitem(last=False)
            self.counts["orphaned"] += 1

    def admit(self, records: list[Any]) -> list[Any]:
        """The records ready to decode now: those whose features are known (merged in), the
        held ones whose features came meanwhile, and the held ones past ``delay``; the rest
        are held. Records without an id (or not objects) pass straight on."""
        return self.admit_placed(records, [None] * len(records))[0]

    def admit_placed(self, records: list[Any], places: Sequence[Any]
                     ) -> tuple[list[Any], list[Any]]:
        """:meth:`admit`, each record with its place (plain data: where it was logged, for
        its dead letter; held with it): the ready records and their places."""
        times = parse_times([_get(r, self.time_path) for r in records])
        if times.size and np.isfinite(times).any():
            self.max_time = max(self.max_time, float(np.nanmax(times)))
        ready, where = [], []
        for rec, t, place in zip(records, times, places, strict=True):
            pid = _get(rec, self.id_path) if isinstance(rec, dict) else None
            if pid is None:
                ready.append(rec)
            elif str(pid) in self.features:
                ready.append(self._merge(rec, self.features.pop(str(pid))[1]))
            elif len(self.pending) >= self.max_pending:
                self.counts["missing"] += 1  # no room to wait: on without its features
                ready.append(rec)
            else:
                self.pending[str(pid)] = (float(t) if np.isfinite(t) else -np.inf, rec, place)
                continue
            where.append(place)
        for pid in [p for p in self.pending if p in self.features]:
            _, rec, place = self.pending.pop(pid)
            ready.append(self._merge(rec, self.features.pop(pid)[1]))
            where.append(place)
        more, more_where = self._expired(self.max_time - self.delay)
        self._expire_features()
        return ready + more, where + more_where

    def flush(self) -> list[Any]:
        """Every held prediction (end of input), without the features that never came."""
        return self._expired(np.inf)[0]

    def flush_placed(self) -> tuple[list[Any], list[Any]]:
        """:meth:`flush` with the records' places (see :meth:`admit_placed`)."""
        return self._expired(np.inf)

    def _expired(self, before: float) -> tuple[list[Any], list[Any]]:
        out = [pid for pid, (t, _, _) in self.pending.items() if t <= before]
        self.counts["missing"] += len(out)
        held = [self.pending.pop(pid) for pid in out]
        return [h[1] for h in held], [h[2] for h in held]

    def _merge(self, rec: dict, feats: dict) -> dict:
        self.counts["joined"] += 1
        if not self.features_path:
            return {**rec, **feats}
        out = dict(rec)
        node = out
        for part in self.features_path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        last = self.features_path[-1]
        current = node.get(last)
        node[last] = {**(current if isinstance(current, dict) else {}), **feats}
        return out

    def to_state(self) -> dict[str, Any]:
        return {"features": [[k, t, f] for k, (t, f) in self.features.items()],
                "pending": [[k, t, r] if w is None else [k, t, r, w]
                            for k, (t, r, w) in self.pending.items()],
                "max_time": self.max_time, "counts": list(self.counts.items())}

    def load_state(self, state: dict[str, Any]) -> None:
        self.features = OrderedDict((k, (float(t), f)) for k, t, f in state["features"])
        self.pending = OrderedDict((e[0], (float(e[1]), e[2], _place(e[3:])))
                                   for e in state["pending"])  # a place: since 2026-12-02
        self.max_time = float(state["max_time"])
        self.counts = Counter(dict(state["counts"]))


def _place(saved: list[Any]) -> Any:
    """A held record's place as saved (``[origin, {...}]``), or None (none saved, or not that
    shape: a place only ever goes into a dead letter)."""
    if (len(saved) == 1 and isinstance(saved[0], list | tuple) and len(saved[0]) == 2
            and isinstance(saved[0][0], str) and isinstance(saved[0][1], dict)):
        return saved[0][0], {str(k): v for k, v in saved[0][1].items() if type(v) is int}
    return None


def feature_join_for(spec: Spec, delay: float) -> FeatureJoin:
    """The feature join of ``spec`` for a source whose predictions wait ``delay`` seconds of
    event time for their features: a feature record is orphaned once its prediction would
    come too late for its window."""
    horizon = max((m.window.allowed_lateness + (m.window.size if m.window.kind == "time" else 0)
                   for m in spec.models), default=0.0)
    return FeatureJoin(spec.schema, delay=delay, orphan_after=delay + horizon)
