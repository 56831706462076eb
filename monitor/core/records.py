"""Columnar batches of decoded records. After decoding nothing is per-record Python objects.

A :class:`RecordBatch` holds one numpy array per role; features are one array each (float64 for
numeric features, object for categorical ones). Tags are stored sparsely as parallel arrays
``(tag_rows, tag_codes)`` over a per-batch vocabulary ``tag_names``, so ``has_tag`` is one
vectorised lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OUTCOME_CODES: dict[str, int] = {"ok": 0, "error": 1, "timeout": 2, "fallback": 3}


@dataclass(frozen=True)
class RecordBatch:
    """Predictions of one or more models, as columns of equal length ``n``.

    - ``time``: event time, float64 epoch seconds.
    - ``model``, ``version``, ``id``: object arrays of str.
    - ``score``: float64 (NaN when absent): positive-class probability for binary models.
    - ``pred_class``: object (None when absent): predicted class (multiclass, optional binary).
    - ``value``: float64 (NaN when absent): regression prediction.
    - ``label``: object (None when not labelled yet): ground truth as logged.
    - ``outcome``: int8 codes of :data:`OUTCOME_CODES`.
    - ``features``: name → array.
    """

    time: np.ndarray
    model: np.ndarray
    version: np.ndarray
    id: np.ndarray
    score: np.ndarray
    pred_class: np.ndarray
    value: np.ndarray
    label: np.ndarray
    outcome: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    tag_names: tuple[str, ...] = ()
    tag_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tag_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.time.shape[0])

    # --- the protocol slices/ reads (slices.assign.SliceableBatch) ---
    def column(self, name: str) -> np.ndarray | None:
        """A feature column by name, or None when the batch has no such feature."""
        return self.features.get(name)

    def has_tag(self, tag: str) -> np.ndarray:
        """Boolean mask of the records that carry ``tag``."""
        mask = np.zeros(len(self), dtype=bool)
        if tag in self.tag_names:
            code = self.tag_names.index(tag)
            mask[self.tag_rows[self.tag_codes == code]] = True
        return mask

    def take(self, index: np.ndarray) -> RecordBatch:
        """The records at ``index`` (int positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if index.dtype == bool else np.asarray(index, np.int64)
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[index] = np.arange(index.shape[0])
        keep = remap[self.tag_rows] >= 0 if self.tag_rows.size else np.zeros(0, bool)
        return RecordBatch(
            time=self.time[index], model=self.model[index], version=self.version[index],
            id=self.id[index], score=self.score[index], pred_class=self.pred_class[index],
            value=self.value[index], label=self.label[index], outcome=self.outcome[index],
            features={k: v[index] for k, v in self.features.items()},
            tag_names=self.tag_names, tag_rows=remap[self.tag_rows[keep]],
            tag_codes=self.tag_codes[keep],
        )

    @staticmethod
    def empty(feature_names: tuple[str, ...] = ()) -> RecordBatch:
        o = np.empty(0, dtype=object)
        f = np.empty(0, dtype=np.float64)
        return RecordBatch(time=f, model=o, version=o, id=o, score=f, pred_class=o, value=f,
                           label=o, outcome=np.empty(0, np.int8),
                           features={k: np.empty(0, dtype=object) for k in feature_names})


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
