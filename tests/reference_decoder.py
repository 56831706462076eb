"""The per-record decoder that the columnar ``monitor.ingest.decode`` replaced, verbatim (renamed),
kept as the reference the new one must equal (tests/unit/test_decode_reference.py) and as
the baseline of bench/decode.py. Not product code."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.core.types import OUTCOME_CODES, RecordBatch
from monitor.ingest.decode import MAX_TIME, MIN_TIME, Reject
from slices.spec import SchemaSpec

_MISSING = object()
_EPOCH = pd.Timestamp(0, tz="UTC")


def _getter(path: str):
    parts = tuple(path.split(".")) if path else ()

    def get(record: Any) -> Any:
        value = record
        for part in parts:
            if not isinstance(value, dict):
                return _MISSING
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return _MISSING
        return value

    return get


def old_parse_times(values: Sequence[Any]) -> np.ndarray:
    """Event times → float64 epoch seconds (NaN where unparseable).

    Numbers are epoch seconds (numbers above 1e11 are taken as milliseconds); strings are
    RFC 3339 / ISO 8601 (``2026-11-28T16:00:00Z``, offsets allowed).
    """
    out = np.full(len(values), np.nan)
    is_num = np.fromiter((isinstance(v, int | float) and not isinstance(v, bool) for v in values),
                         dtype=bool, count=len(values))
    if is_num.any():
        nums = np.array([v for v, k in zip(values, is_num, strict=True) if k], dtype=np.float64)
        nums = np.where(np.abs(nums) > 1e11, nums / 1000.0, nums)
        out[is_num] = nums
    is_str = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if is_str.any():
        strs = [v for v, k in zip(values, is_str, strict=True) if k]
        parsed = pd.to_datetime(pd.Series(strs), utc=True, format="ISO8601", errors="coerce")
        if parsed.isna().any():  # mixed formats in one batch: parse one by one
            parsed = pd.Series([pd.to_datetime(s, utc=True, errors="coerce") for s in strs],
                               dtype="datetime64[ns, UTC]")
        secs = ((parsed - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64,
                                                                      na_value=np.nan)
        out[is_str] = secs
    return out


class _ReferenceDecoder:
    """The per-record decoder that the columnar one replaced, verbatim (only renamed).

    ``default_model`` fills the model of records that carry none (single-model specs);
    ``known_models`` rejects records of other models (reason ``unknown_model``);
    ``feature_types`` fixes a feature's type (``numeric`` or ``categorical``); undeclared
    features are numeric when every present value is a number, categorical otherwise.
    """

    def __init__(self, schema: SchemaSpec, *, default_model: str | None = None,
                 known_models: Iterable[str] | None = None,
                 feature_types: dict[str, str] | None = None):
        self.schema = schema
        self.default_model = default_model
        self.known_models = set(known_models) if known_models is not None else None
        self.feature_types = dict(feature_types or {})
        s = schema
        self._get = {role: _getter(path) for role, path in (
            ("model", s.model), ("version", s.version), ("id", s.id), ("time", s.time),
            ("score", s.score), ("pred_class", s.pred_class), ("value", s.value),
            ("label", s.label), ("tags", s.tags), ("outcome", s.outcome))}
        self._features = _getter(s.features)
        self._feature_paths = {k: _getter(v) for k, v in s.feature_paths.items()}
        self._label_get = {"id": _getter(s.label_id), "label": _getter(s.label_value),
                           "time": _getter(s.label_time)}

    # ---- entry points ------------------------------------------------------------------
    def decode_lines(self, lines: Sequence[bytes | str]) -> tuple[RecordBatch, list[Reject]]:
        """Decode JSON lines (blank lines are rejected as ``empty_line``)."""
        records, rejects = _parse_json_lines(lines)
        batch, more = self.decode_records(records)
        return batch, rejects + more

    def decode_frame(self, frame: pd.DataFrame) -> tuple[RecordBatch, list[Reject]]:
        """Decode a table (CSV, Parquet): a dotted path may name a column directly.

        Columns named ``<features path>.<name>`` become features; so do nested dicts.
        """
        records = [_unflatten(r) for r in frame.to_dict(orient="records")]
        return self.decode_records(records)

    def decode_records(self, records: Sequence[Any]) -> tuple[RecordBatch, list[Reject]]:
        """Decode already-parsed records (dicts)."""
        rejects: list[Reject] = []
        good = []
        for r in records:
            if isinstance(r, dict):
                good.append(r)
            else:
                rejects.append(Reject("not_an_object", r,
                                      f"expected a JSON object, got {type(r).__name__}"))
        return self._columns(good, rejects)

    def decode_label_lines(self, lines: Sequence[bytes | str]
                           ) -> tuple[dict[str, np.ndarray], list[Reject]]:
        """Decode label records → ``{"id": object[], "label": object[], "time": float64[]}``."""
        records, rejects = _parse_json_lines(lines)
        ids = [self._label_get["id"](r) if isinstance(r, dict) else _MISSING for r in records]
        labels = [self._label_get["label"](r) if isinstance(r, dict) else _MISSING for r in records]
        times_raw = [self._label_get["time"](r) if isinstance(r, dict) else None for r in records]
        keep = []
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                rejects.append(Reject("not_an_object", r))
            elif ids[i] is _MISSING or ids[i] is None:
                rejects.append(Reject("missing_field:id", r))
            elif labels[i] is _MISSING or labels[i] is None:
                rejects.append(Reject("missing_field:label", r))
            else:
                keep.append(i)
        times = old_parse_times([None if times_raw[i] is _MISSING else times_raw[i] for i in keep])
        return ({"id": np.array([str(ids[i]) for i in keep], dtype=object),
                 "label": np.array([labels[i] for i in keep], dtype=object),
                 "time": times}, rejects)

    # ---- the column builder ------------------------------------------------------------
    def _columns(self, records: list[dict], rejects: list[Reject]
                 ) -> tuple[RecordBatch, list[Reject]]:
        if not records:
            return RecordBatch.empty(), rejects
        g = self._get
        n = len(records)
        reason: list[str | None] = [None] * n

        def flag(i: int, why: str) -> None:
            if reason[i] is None:
                reason[i] = why

        model = [g["model"](r) for r in records]
        for i, m in enumerate(model):
            if m is None:  # rule added after the rewrite: a null model is rejected
                flag(i, "null_model")
            if m is _MISSING or m is None:
                if self.default_model is None:
                    flag(i, "missing_field:model")
                else:
                    model[i] = self.default_model
            elif not isinstance(m, str):
                model[i] = str(m)
            if (self.known_models is not None and reason[i] is None
                    and model[i] not in self.known_models):
                flag(i, "unknown_model")

        raw_time = [g["time"](r) for r in records]
        times = old_parse_times([None if t is _MISSING else t for t in raw_time])
        for i in np.flatnonzero(~np.isfinite(times)):
            flag(int(i), "missing_field:time" if raw_time[i] in (_MISSING, None) else "bad_time")
        # rule added after the rewrite: times outside pandas' nanosecond range are bad_time
        for i in np.flatnonzero((times < MIN_TIME) | (times > MAX_TIME)):
            flag(int(i), "bad_time")

        outcome = np.zeros(n, dtype=np.int8)
        for i, r in enumerate(records):
            o = g["outcome"](r)
            if o is _MISSING or o is None:
                continue
            code = OUTCOME_CODES.get(str(o).lower())
            if code is None:
                flag(i, "bad_outcome")
            else:
                outcome[i] = code

        score = self._numbers([g["score"](r) for r in records], "score", flag)
        value = self._numbers([g["value"](r) for r in records], "value", flag)
        pred_class = [g["pred_class"](r) for r in records]
        pred_class = [None if c is _MISSING or c is None else str(c) for c in pred_class]
        for i in range(n):
            if (outcome[i] == 0 and np.isnan(score[i]) and np.isnan(value[i])
                    and pred_class[i] is None):
                flag(i, "missing_prediction")

        label = [g["label"](r) for r in records]
        label = [None if v is _MISSING else v for v in label]
        ids = [g["id"](r) for r in records]
        ids = ["" if v is _MISSING or v is None else str(v) for v in ids]
        versions = [g["version"](r) for r in records]
        versions = ["" if v is _MISSING or v is None else str(v) for v in versions]

        feature_maps = [self._feature_map(r) for r in records]
        for i, fm in enumerate(feature_maps):
            if fm is None:
                flag(i, "wrong_type:features")

        keep = np.array([why is None for why in reason])
        for i in np.flatnonzero(~keep):
            rejects.append(Reject(reason[i], records[i]))
        idx = np.flatnonzero(keep)
        kept_maps = [feature_maps[i] for i in idx]
        features = self._feature_columns(kept_maps)
        tag_names, tag_rows, tag_codes = _tags([g["tags"](records[i]) for i in idx])
        obj = lambda xs: _object_array([xs[i] for i in idx])  # noqa: E731
        batch = RecordBatch(
            time=times[idx], model=obj(model), version=obj(versions), id=obj(ids),
            score=score[idx], pred_class=obj(pred_class), value=value[idx], label=obj(label),
            outcome=outcome[idx], features=features, tag_names=tag_names,
            tag_rows=tag_rows, tag_codes=tag_codes)
        return batch, rejects

    def _numbers(self, values: list[Any], role: str, flag) -> np.ndarray:
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if v is _MISSING or v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                flag(i, f"wrong_type:{role}")
            elif math.isnan(v) or math.isinf(v):
                flag(i, f"nan_{role}")
            else:
                out[i] = v
        return out

    def _feature_map(self, record: dict) -> dict | None:
        fm = self._features(record) if self.schema.features else {}
        if fm is _MISSING or fm is None:
            fm = {}
        if not isinstance(fm, dict):
            return None
        if self._feature_paths:
            fm = dict(fm)
            for name, get in self._feature_paths.items():
                v = get(record)
                if v is not _MISSING:
                    fm[name] = v
        return fm

    def _feature_columns(self, maps: list[dict]) -> dict[str, np.ndarray]:
        names: set[str] = set(self.feature_types)
        for m in maps:
            names.update(m.keys())
        out: dict[str, np.ndarray] = {}
        for name in sorted(names, key=str):
            raw = [m.get(name) for m in maps]
            kind = self.feature_types.get(name) or _infer_kind(raw)
            out[str(name)] = _numeric_column(raw) if kind == "numeric" else _categorical_column(raw)
        return out


def _parse_json_lines(lines: Sequence[bytes | str]) -> tuple[list[Any], list[Reject]]:
    records, rejects = [], []
    for line in lines:
        if not line or not line.strip():  # deliberate new rule: a blank line is counted
            rejects.append(Reject("empty_line", ""))
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raw = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            rejects.append(Reject("invalid_json", raw.rstrip("\n"), str(exc)))
    return records, rejects


def _infer_kind(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "numeric"
    return "categorical"


def _numeric_column(values: list[Any]) -> np.ndarray:
    """Numbers → float64; None, strings that are not numbers, bools → NaN (type mismatches
    are counted by data-quality checks, not rejected)."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = v
        elif isinstance(v, str):
            with suppress(ValueError):
                out[i] = float(v)
    return out


def _categorical_column(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[i] = None
        elif isinstance(v, bool):
            out[i] = "true" if v else "false"
        elif isinstance(v, float) and v.is_integer():
            out[i] = str(int(v))
        else:
            out[i] = str(v)
    return out


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _tags(raw: list[Any]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    vocab: dict[str, int] = {}
    rows: list[int] = []
    codes: list[int] = []
    for i, tags in enumerate(raw):
        if tags is _MISSING or tags is None:
            continue
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list):
            continue
        for t in tags:
            code = vocab.setdefault(str(t), len(vocab))
            rows.append(i)
            codes.append(code)
    return tuple(vocab), np.array(rows, dtype=np.int64), np.array(codes, dtype=np.int32)


def _unflatten(row: dict[str, Any]) -> dict[str, Any]:
    """``{"prediction.score": 0.1}`` → ``{"prediction": {"score": 0.1}}``; NaN cells → absent."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, np.ndarray):
            value = value.tolist()
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out
