"""Decoding when some models log in their own shape (a model-level ``schema:``).

The model of each record is read with the top-level schema; each model's records are then
decoded with that model's schema (the top-level one, overridden key by key). Specs without
model-level schemas use :class:`monitor.ingest.decode_arrow.ArrowDecoder` directly (the
per-record decoder with an Arrow fast path for regular blocks of JSON lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.core.records import RecordBatch, concat
from monitor.ingest.decode import (
    Decoder,
    Reject,
    _at,
    _kept,
    frame_records,
    parse_json_lines,
)
from monitor.ingest.decode_arrow import ArrowDecoder
from slices.spec import Spec


def decoder_for(spec: Spec) -> Decoder | PerModelDecoder:
    """The decoder a spec needs."""
    types: dict[str, str] = {}
    for m in spec.models:
        for f in m.features:
            types.setdefault(f.name, f.type)
    single = spec.models[0].name if len(spec.models) == 1 else None
    checks = _checks(spec)
    base = ArrowDecoder(spec.schema, default_model=single,
                        known_models=[m.name for m in spec.models],
                        feature_types=types, **checks)
    if not any(m.schema for m in spec.models):
        return base
    return PerModelDecoder(spec, base, types)


def _checks(spec: Spec) -> dict:
    """The value checks every decoder of ``spec`` applies: event time at most
    ``source.max_future`` ahead of the clock; probability scores in [0, 1]."""
    return {"max_future": spec.source.max_future,
            "probability_models": [m.name for m in spec.models if m.task != "regression"]}


class PerModelDecoder:
    def __init__(self, spec: Spec, base: Decoder, feature_types: dict[str, str]):
        self.base = base
        self.schema = spec.schema
        self.parts = tuple(spec.schema.model.split("."))
        self.single = spec.models[0].name if len(spec.models) == 1 else None
        self.by_model = {m.name: Decoder(spec.schema_for(m), default_model=m.name,
                                         known_models=[m.name], feature_types=feature_types,
                                         **_checks(spec))
                         for m in spec.models if m.schema}

    def _model_of(self, record: Any) -> Any:
        value = record
        for part in self.parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value if value is not None else self.single

    def decode_records(self, records: Sequence[Any]) -> tuple[RecordBatch, list[Reject]]:
        """Each model's records with its decoder; the batch's rows in the order of
        ``records`` (the records not rejected) and each reject's ``index`` into ``records``,
        as the one-schema decoder gives them."""
        groups: dict[str | None, list[int]] = {}
        for i, r in enumerate(records):
            model = self._model_of(r) if isinstance(r, dict) else None
            groups.setdefault(model if model in self.by_model else None, []).append(i)
        batches, rejects, order = [], [], []
        for model, idx in groups.items():
            decoder = self.by_model[model] if model is not None else self.base
            batch, more = decoder.decode_records([records[i] for i in idx])
            batches.append(batch)
            order.extend(_kept(len(idx), more, idx))
            rejects.extend(_at(more, idx))
        batch = concat(batches)
        if len(batches) > 1 and len(order) == len(batch):
            batch = batch.take(np.argsort(np.asarray(order), kind="stable"))
        return batch, sorted(rejects, key=lambda r: -1 if r.index is None else r.index)

    def decode_lines(self, lines: Sequence[bytes | str]) -> tuple[RecordBatch, list[Reject]]:
        records, rejects = parse_json_lines(lines)
        batch, more = self.decode_records(records)
        return batch, rejects + _at(more, _kept(len(lines), rejects))

    def decode_frame(self, frame: Any) -> tuple[RecordBatch, list[Reject]]:
        """A pandas frame or an Arrow batch (Parquet, CSV), record by record."""
        records, refused = frame_records(frame)
        batch, rejects = self.decode_records(records)
        return batch, refused + _at(rejects, _kept(len(records) + len(refused), refused))

    def decode_label_lines(self, lines: Sequence[bytes | str]):
        return self.base.decode_label_lines(lines)

    def decode_label_frame(self, frame: Any):
        return self.base.decode_label_frame(frame)
