"""Operations on :class:`~monitor.core.types.RecordBatch` (defined with the other core value
types in :mod:`monitor.core.types`): concatenation and checkpoint state.

After decoding nothing is per-record Python objects.

A :class:`RecordBatch` holds one numpy array per role; features are one array each (float64 for
numeric features, object for categorical ones). Tags are stored sparsely as parallel arrays
``(tag_rows, tag_codes)`` over a per-batch vocabulary ``tag_names``, so ``has_tag`` is one
vectorised lookup.
"""

from __future__ import annotations

import numpy as np

from monitor.core.types import OUTCOME_CODES, RecordBatch

__all__ = ["OUTCOME_CODES", "RecordBatch", "batch_from_state", "batch_to_state", "concat"]

def concat(batches: list[RecordBatch]) -> RecordBatch:
    """Concatenate batches (feature sets are unioned; a missing feature becomes missing)."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return RecordBatch.empty()
    if len(batches) == 1:
        return batches[0]
    names = sorted({k for b in batches for k in b.features})
    tag_names = tuple(sorted({t for b in batches for t in b.tag_names}))
    features = {}
    for k in names:
        parts = []
        for b in batches:
            col = b.features.get(k)
            if col is None:
                col = (np.full(len(b), np.nan) if _numeric(batches, k)
                       else np.full(len(b), None, object))
            parts.append(col)
        features[k] = np.concatenate(parts)
    rows, codes, offset = [], [], 0
    for b in batches:
        mapping = np.array([tag_names.index(t) for t in b.tag_names], dtype=np.int32)
        rows.append(b.tag_rows + offset)
        codes.append(mapping[b.tag_codes] if b.tag_codes.size else b.tag_codes)
        offset += len(b)
    cat = np.concatenate
    return RecordBatch(
        time=cat([b.time for b in batches]), model=cat([b.model for b in batches]),
        version=cat([b.version for b in batches]), id=cat([b.id for b in batches]),
        score=cat([b.score for b in batches]), pred_class=cat([b.pred_class for b in batches]),
        value=cat([b.value for b in batches]), label=cat([b.label for b in batches]),
        outcome=cat([b.outcome for b in batches]), features=features, tag_names=tag_names,
        tag_rows=cat(rows).astype(np.int64), tag_codes=cat(codes).astype(np.int32),
    )


def _numeric(batches: list[RecordBatch], name: str) -> bool:
    return any(b.features.get(name) is not None and b.features[name].dtype.kind == "f"
               for b in batches)


def _floats_to_state(a: np.ndarray) -> list:
    return [None if np.isnan(x) else float(x) for x in a]


def batch_to_state(b: RecordBatch) -> dict:
    """A batch as plain JSON-able data (NaN → null), for checkpoints."""
    return {
        "time": b.time.tolist(), "model": b.model.tolist(), "version": b.version.tolist(),
        "id": b.id.tolist(), "score": _floats_to_state(b.score),
        "pred_class": b.pred_class.tolist(), "value": _floats_to_state(b.value),
        "label": b.label.tolist(), "outcome": b.outcome.tolist(),
        "features": {k: (_floats_to_state(v) if v.dtype.kind == "f" else v.tolist())
                     for k, v in b.features.items()},
        "feature_kinds": {k: v.dtype.kind for k, v in b.features.items()},
        "tag_names": list(b.tag_names), "tag_rows": b.tag_rows.tolist(),
        "tag_codes": b.tag_codes.tolist(),
    }


def batch_from_state(d: dict) -> RecordBatch:
    def floats(xs: list) -> np.ndarray:
        return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)

    def objects(xs: list) -> np.ndarray:
        out = np.empty(len(xs), dtype=object)
        out[:] = xs
        return out

    return RecordBatch(
        time=np.asarray(d["time"], np.float64), model=objects(d["model"]),
        version=objects(d["version"]), id=objects(d["id"]), score=floats(d["score"]),
        pred_class=objects(d["pred_class"]), value=floats(d["value"]),
        label=objects(d["label"]), outcome=np.asarray(d["outcome"], np.int8),
        features={k: floats(v) if d["feature_kinds"][k] == "f" else objects(v)
                  for k, v in d["features"].items()},
        tag_names=tuple(d["tag_names"]), tag_rows=np.asarray(d["tag_rows"], np.int64),
        tag_codes=np.asarray(d["tag_codes"], np.int32))
