"""Decode raw records (JSON lines, dicts, data frames) into a :class:`RecordBatch`.

The spec's ``schema:`` block says where each role lives (dot paths). A record that cannot be
used is returned as a :class:`Reject` with a reason and the raw input, never dropped silently.

Decoding works column by column: lines are parsed with ``orjson`` (one ``map`` over the batch;
per line only when some line fails, to name it), each dot path is walked once per batch with
one C-level pass (``itemgetter``; shared prefixes such as ``prediction`` once), then each column
is checked and converted in bulk. A column whose values all have the plain JSON types takes the
fast path (``np.fromiter``, object arrays as they are); a column with odd values (bools, numbers
as strings, subclasses, NaN) falls back to the per-value rules for that column only, so results
never depend on the path taken (tests/unit/test_decode_reference.py checks this against the
per-record decoder this one replaced). The garbage collector is paused during each call: the
parsed records are freed before it resumes, and the collections their allocation would trigger
cost more than the rest of the decoding.

>>> from slices.spec import SchemaSpec
>>> d = Decoder(SchemaSpec(), default_model="fraud")
>>> batch, rejects = d.decode_lines([b'{"timestamp": 10, "prediction": {"score": 0.2}}', b'{'])
>>> len(batch), [r.reason for r in rejects]
(1, ['invalid_json'])
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import is_, itemgetter
from typing import Any

import numpy as np
import orjson

from monitor.core.lazy import lazy_module
from monitor.core.types import OUTCOME_CODES, RecordBatch
from monitor.ingest.tagcells import split_tag_cells
from slices.spec import SchemaSpec

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

_ABSENT = object()  # a path that is not in the record (JSON null is None)
_NONE = type(None)
_NUMBER_TYPES = {int, float, _NONE}
_STR_TYPES = {str, _NONE}
_JSON_TYPES = {int, float, str, bool, _NONE, dict, list}
_OUTCOME_LOOKUP: dict[str | None, int] = {**OUTCOME_CODES, None: 0}
# event times must lie in pandas' nanosecond range (1677-09-21 … 2262-04-11); others: bad_time
# (pd.Timestamp.min.value / 1e9 and .max: written out so that importing this is pandas-free)
MIN_TIME = -(2**63 - 1) / 1e9
MAX_TIME = (2**63 - 1) / 1e9
_DATETIMES = (dt.date, np.datetime64)  # pd.Timestamp and datetime.datetime are dt.date


@dataclass(frozen=True)
class Reject:
    """A record that could not be used, with the reason (a short stable code) and the input;
    ``index``: its place in the block decoded (a line of a chunk, a row of a frame), when
    known — the daemon turns it into the dead letter's line or row; ``line``: its 1-based line
    in the file, when the source knew it (a CSV row read row by row)."""

    reason: str
    raw: Any
    detail: str = ""
    index: int | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


def _at(rejects: list[Reject], where: Sequence[int] | None) -> list[Reject]:
    """``rejects`` whose ``index`` (into a list of records) is made an index into the lines
    or rows those records came from (``where[i]``: the place of record ``i``); ``None``: the
    places are not known, so no reject keeps one. The rejects are the decoder's own, just
    made: their index is set in place (frozen for everyone else)."""
    if isinstance(where, range) and where.start == 0 and where.step == 1:
        return rejects  # record i is line (row) i
    for r in rejects:
        if r.index is not None:
            object.__setattr__(r, "index", None if where is None else where[r.index])
    return rejects


def _gc_paused(method: Callable) -> Callable:
    """``method`` with the garbage collector paused during the call. Its locals (the parsed
    records) are freed when it returns, before collection resumes: nothing left to scan."""

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return run


def parse_times(values: Sequence[Any]) -> np.ndarray:
    """Event times → float64 epoch seconds (NaN where unparseable); never raises.

    Numbers are epoch seconds (numbers above 1e11 are taken as milliseconds); strings are
    RFC 3339 / ISO 8601 (``2026-11-28T16:00:00Z``, offsets allowed); native date/time values
    (``datetime``, ``pd.Timestamp``, ``np.datetime64``, from Parquet or CSV) are exact, naive
    ones taken as UTC. Range checks are the decoder's (:data:`MIN_TIME`, :data:`MAX_TIME`).
    """
    types = _types(values)
    if types <= {int, float}:
        return _epoch_seconds(np.fromiter(values, np.float64, len(values)))
    if types <= {str}:
        return _iso_seconds(values)
    out = np.full(len(values), np.nan)
    is_num = np.fromiter((isinstance(v, int | float) and not isinstance(v, bool) for v in values),
                         dtype=bool, count=len(values))
    if is_num.any():
        nums = np.array([v for v, k in zip(values, is_num, strict=True) if k], dtype=np.float64)
        out[is_num] = _epoch_seconds(nums)
    is_str = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if is_str.any():
        out[is_str] = _iso_seconds([v for v, k in zip(values, is_str, strict=True) if k])
    for i, v in enumerate(values):
        if isinstance(v, _DATETIMES):
            out[i] = _native_seconds(v)
    return out


def _epoch_seconds(nums: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(nums) > 1e11, nums / 1000.0, nums)


def _iso_seconds(strs: list[str]) -> np.ndarray:
    try:
        parsed = pd.to_datetime(pd.Series(strs, dtype=object), utc=True, format="ISO8601",
                                errors="coerce")
        if not parsed.isna().any():  # else mixed formats in one batch: one by one below
            since = parsed - _epoch(parsed.dt.unit)
            return (since / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64,
                                                               na_value=np.nan)
    except (ValueError, OverflowError, TypeError):  # OutOfBoundsDatetime is a ValueError
        pass
    return np.array([_one_iso(s) for s in strs], dtype=np.float64)


def _one_iso(text: str) -> float:
    try:
        return _native_seconds(pd.to_datetime(text, utc=True, errors="coerce"))
    except (ValueError, OverflowError, TypeError):
        return math.nan


@functools.cache
def _epoch(unit: str) -> Any:
    """The UTC epoch as a ``pd.Timestamp`` of ``unit`` (pandas is imported at first use)."""
    return pd.Timestamp(0, tz="UTC").as_unit(unit)


def _native_seconds(value: Any) -> float:
    """A date/time value → epoch seconds (naive = UTC); NaN for NaT or the unrepresentable."""
    try:
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            return math.nan
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return (ts - _epoch(ts.unit)) / pd.Timedelta(seconds=1)
    except (ValueError, OverflowError, TypeError):
        return math.nan


class _Reasons:
    """The first reason flagged for each record of a batch (later flags do not overwrite)."""

    def __init__(self, n: int):
        self.code = np.zeros(n, dtype=np.int16)
        self.names = [""]

    def flag(self, mask: np.ndarray, why: str) -> None:
        mask = mask & (self.code == 0)
        if mask.any():
            self.names.append(why)
            self.code[mask] = len(self.names) - 1

    def rejects(self, records: Sequence[Any]) -> list[Reject]:
        names, code = self.names, self.code.tolist()
        return [Reject(names[code[i]], records[i], "", i)
                for i in np.flatnonzero(self.code).tolist()]


class _Paths:
    """Columns of values at dot paths over a list of records; prefixes are walked once.

    A step into a non-dict or a missing key gives ``default`` (None, or ``_ABSENT`` for the
    last step of a single-feature path, where "absent" and "null" differ). ``plain`` says the
    records hold only JSON types (straight from the parser): then a lookup may simply try
    ``itemgetter`` first, as no dict subclass or mapping-like object can be met.
    """

    def __init__(self, records: list[Any], *, plain: bool):
        self._cache: dict[tuple, list[Any]] = {(): records}
        self.plain = plain

    def values(self, path: str, default: Any = None) -> list[Any]:
        if not path:
            return self._cache[()]
        parts = tuple(path.split("."))
        if (parts, default) in self._cache:
            return self._cache[(parts, default)]
        parent = self.values(".".join(parts[:-1]))
        col = _lookup(parent, parts[-1], default, plain=self.plain)
        self._cache[(parts, default)] = col
        return col


def _lookup(values: list[Any], key: str, default: Any, *, plain: bool) -> list[Any]:
    """``[v.get(key, default) if isinstance(v, dict) else default for v in values]``, fast."""
    if plain:
        try:  # every value is a dict with the key: one C loop
            return list(map(itemgetter(key), values))
        except (KeyError, TypeError):
            pass
    if _types(values) <= {dict}:
        return list(map(dict.get, values, repeat(key), repeat(default)))
    return [v.get(key, default) if isinstance(v, dict) else default for v in values]


class Decoder:
    """Turns raw records into columns following a :class:`SchemaSpec`.

    ``default_model`` fills the model of records that carry none (single-model specs);
    ``known_models`` rejects records of other models (reason ``unknown_model``);
    ``feature_types`` fixes a feature's type (``numeric`` or ``categorical``); undeclared
    features are numeric when every present value is a number, categorical otherwise.
    ``max_future`` rejects times more than that many seconds ahead of ``clock()`` (reason
    ``future_time``: one such record would move the watermark and make every later record
    late); ``probability_models`` names the models whose score is a probability (binary,
    multiclass): a score outside [0, 1] is ``score_out_of_range``.
    """

    def __init__(self, schema: SchemaSpec, *, default_model: str | None = None,
                 known_models: Iterable[str] | None = None,
                 feature_types: dict[str, str] | None = None, max_future: float | None = None,
                 probability_models: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.time):
        self.schema = schema
        self.default_model = default_model
        self.known_models = set(known_models) if known_models is not None else None
        self.feature_types = dict(feature_types or {})
        self.max_future = max_future
        self.probability_models = (set(probability_models) if probability_models is not None
                                   else None)
        self.clock = clock

    # ---- entry points ------------------------------------------------------------------
    @_gc_paused
    def decode_lines(self, lines: Sequence[bytes | str]) -> tuple[RecordBatch, list[Reject]]:
        """Decode JSON lines (blank lines are skipped)."""
        records, rejects = parse_json_lines(lines)
        batch, more = self._decode(records, plain=True)
        return batch, rejects + _at(more, _kept(len(lines), rejects))

    @_gc_paused
    def decode_frame(self, frame: pd.DataFrame) -> tuple[RecordBatch, list[Reject]]:
        """Decode a table (CSV, Parquet): a dotted path may name a column directly.

        Columns named ``<features path>.<name>`` become features; so do nested dicts. An
        Arrow record batch or table is turned into a pandas frame first; so are the rows of
        a CSV batch (:class:`monitor.ingest.csvblocks.CsvBatch`: rows pandas refuses are
        rejects).
        """
        records, refused = frame_records(frame)  # refused: with their row's index
        rows = _kept(len(records) + len(refused), refused)  # the row of each record
        records, bad_tags = split_tag_cells(records, self.schema.tags)
        tagged = [Reject("bad_tags", r, why, rows[i]) for i, r, why in bad_tags]
        if bad_tags:
            gone = {i for i, _r, _w in bad_tags}
            rows = [row for i, row in enumerate(rows) if i not in gone]
        batch, rejects = self._decode(records, plain=False)
        return batch, refused + tagged + _at(rejects, rows)

    @_gc_paused
    def decode_records(self, records: Sequence[Any]) -> tuple[RecordBatch, list[Reject]]:
        """Decode already-parsed records (dicts)."""
        return self._decode(records, plain=False)

    @_gc_paused
    def decode_label_lines(self, lines: Sequence[bytes | str]
                           ) -> tuple[dict[str, np.ndarray], list[Reject]]:
        """Decode label records → ``{"id": object[], "label": object[], "time": float64[]}``."""
        records, rejects = parse_json_lines(lines)
        labels, more = self.decode_label_records(records, plain=True)
        return labels, rejects + _at(more, _kept(len(lines), rejects))

    @_gc_paused
    def decode_label_frame(self, frame: pd.DataFrame
                           ) -> tuple[dict[str, np.ndarray], list[Reject]]:
        """Label records of a table (CSV, Parquet label files), as :meth:`decode_label_lines`."""
        records, refused = frame_records(frame)
        labels, rejects = self.decode_label_records(records, plain=False)
        return labels, refused + _at(rejects, None if refused else range(len(records)))

    def decode_label_records(self, records: list[Any], *, plain: bool = False
                             ) -> tuple[dict[str, np.ndarray], list[Reject]]:
        """Label records already parsed (``plain``: straight from the JSON parser)."""
        s = self.schema
        paths = _Paths(records, plain=plain)
        ids, labels = paths.values(s.label_id), paths.values(s.label_value)
        reasons = _Reasons(len(records))
        reasons.flag(~_is_dict(records), "not_an_object")
        reasons.flag(_is_none(ids), "missing_field:id")
        reasons.flag(_is_none(labels), "missing_field:label")
        keep = np.flatnonzero(reasons.code == 0)
        times = parse_times(_take(paths.values(s.label_time), keep))
        ids = [v if type(v) is str else str(v) for v in _take(ids, keep)]
        out = {"id": np.array(ids, dtype=object),
               "label": np.array(_take(labels, keep), dtype=object), "time": times}
        return out, reasons.rejects(records)

    # ---- the column builder ------------------------------------------------------------
    def _decode(self, records: Sequence[Any], *, plain: bool) -> tuple[RecordBatch, list[Reject]]:
        records = list(records)
        if _types(records) <= {dict}:
            return self._columns(records, [], plain=plain)
        good, places, rejects = [], [], []
        for i, r in enumerate(records):
            if isinstance(r, dict):
                good.append(r)
                places.append(i)
            else:
                rejects.append(Reject("not_an_object", r,
                                      f"expected a JSON object, got {type(r).__name__}", i))
        batch, more = self._columns(good, [], plain=plain)
        return batch, rejects + _at(more, places)

    def _columns(self, records: list[dict], rejects: list[Reject], *,
                 plain: bool) -> tuple[RecordBatch, list[Reject]]:
        if not records:
            return RecordBatch.empty(), rejects
        s = self.schema
        n = len(records)
        paths = _Paths(records, plain=plain)
        reasons = _Reasons(n)

        model = paths.values(s.model, _ABSENT)
        if not _types(model) <= {str}:
            reasons.flag(_is_none(model), "null_model")  # absent: the single model; null: no
            model = [m if isinstance(m, str) else (None if m is None or m is _ABSENT else str(m))
                     for m in model]
            if self.default_model is None:
                reasons.flag(_is_none(model), "missing_field:model")
            else:
                model = [self.default_model if m is None else m for m in model]
        known = self.known_models
        if known is not None and not set(model) <= known:
            reasons.flag(~np.fromiter(map(known.__contains__, model), bool, n), "unknown_model")

        raw_time = paths.values(s.time)
        times = parse_times(raw_time)
        bad = ~np.isfinite(times)
        if bad.any():
            missing = bad & _is_none(raw_time)
            reasons.flag(missing, "missing_field:time")
            reasons.flag(bad & ~missing, "bad_time")
        if self.max_future is not None:
            reasons.flag(times > self.clock() + self.max_future, "future_time")
        reasons.flag((times < MIN_TIME) | (times > MAX_TIME), "bad_time")

        outcome = _outcomes(paths.values(s.outcome))
        reasons.flag(outcome < 0, "bad_outcome")
        outcome[outcome < 0] = 0

        score = _numbers(paths.values(s.score), "score", reasons)
        value = _numbers(paths.values(s.value), "value", reasons)
        if self.probability_models is not None:
            reasons.flag(self._out_of_range(score, model), "score_out_of_range")
        pred_class = paths.values(s.pred_class)
        if not _types(pred_class) <= _STR_TYPES:
            pred_class = [c if c is None or type(c) is str else str(c) for c in pred_class]
        pred_class = _object_array(pred_class)
        no_prediction = (outcome == 0) & np.isnan(score) & np.isnan(value)
        if no_prediction.any():
            reasons.flag(no_prediction & _is_none(pred_class), "missing_prediction")

        maps = paths.values(s.features) if s.features else [None] * n
        if not _types(maps) <= {dict, _NONE}:
            reasons.flag(~(_is_dict(maps) | _is_none(maps)), "wrong_type:features")

        rejects.extend(reasons.rejects(records))
        idx = np.flatnonzero(reasons.code == 0)
        kept = paths if idx.size == n else _Paths(_take(records, idx), plain=plain)
        features = self._feature_columns(kept, _take(maps, idx))
        tag_names, tag_rows, tag_codes = _tags(kept.values(s.tags))
        batch = RecordBatch(
            time=times[idx], model=_object_array(model)[idx],
            version=_strings(paths.values(s.version))[idx], id=_strings(paths.values(s.id))[idx],
            score=score[idx], pred_class=pred_class[idx], value=value[idx],
            label=_object_array(paths.values(s.label))[idx], outcome=outcome[idx].astype(np.int8),
            features=features, tag_names=tag_names, tag_rows=tag_rows, tag_codes=tag_codes)
        return batch, rejects

    def _out_of_range(self, score: np.ndarray, model: list[Any]) -> np.ndarray:
        """Scores outside [0, 1] of the models whose score is a probability."""
        with np.errstate(invalid="ignore"):
            out = (score < 0.0) | (score > 1.0)
        probability = self.probability_models or set()
        if out.any() and not set(model) <= probability:
            out &= np.fromiter(map(probability.__contains__, model), bool, len(model))
        return out

    def _feature_columns(self, paths: _Paths, maps: list[Any]) -> dict[str, np.ndarray]:
        if _NONE in _types(maps):
            maps = [{} if m is None else m for m in maps]
        table = _same_keys_columns(maps) if paths.plain else None
        names: set[Any] = set(self.feature_types)
        names.update(*([table] if table is not None else maps))
        overrides = {}
        for name, path in self.schema.feature_paths.items():
            vals = paths.values(path, _ABSENT)
            if any(v is not _ABSENT for v in vals):
                names.add(name)
                overrides[name] = vals
        out: dict[str, np.ndarray] = {}
        for name in sorted(names, key=str):
            if table is not None:
                raw = table.get(name) or [None] * len(maps)
            else:
                raw = _lookup(maps, name, None, plain=paths.plain)
            if name in overrides:
                raw = [m if v is _ABSENT else v for m, v in zip(raw, overrides[name], strict=True)]
            out[str(name)] = _feature_column(raw, self.feature_types.get(name))
        return out


def _same_keys_columns(maps: list[dict]) -> dict[Any, list[Any]] | None:
    """``{key: column}`` when every map has the keys of the first (the usual case), else None.

    Each map having all ``k`` keys of the first and ``k`` keys in all means equal key sets.
    """
    keys = list(maps[0]) if maps else []
    if sum(map(len, maps)) != len(keys) * len(maps):
        return None
    try:
        return {key: list(map(itemgetter(key), maps)) for key in keys}
    except KeyError:
        return None


def parse_json_lines(lines: Sequence[bytes | str | Reject]) -> tuple[list[Any], list[Reject]]:
    """JSON lines → (parsed values, rejects for the lines that are not JSON; a blank one,
    e.g. an empty Kafka message, is ``empty_line``). A :class:`Reject` among the lines (a
    source's verdict: ``too_large``, ``empty_line``…) is passed on, each reject with its line's
    ``index`` (:func:`_kept` gives the lines of the values)."""
    try:  # a blank or bad line fails here too: the slow loop below sorts them out
        return list(map(orjson.loads, lines)), []
    except (orjson.JSONDecodeError, TypeError):
        pass
    records, rejects = [], []
    for i, line in enumerate(lines):
        if isinstance(line, Reject):
            rejects.append(Reject(line.reason, line.raw, line.detail, i, line.line))
            continue
        if not line or not line.strip():
            rejects.append(Reject("empty_line", "", index=i))
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raw = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            rejects.append(Reject("invalid_json", raw.rstrip("\n"), str(exc), i))
    return records, rejects


def _kept(n: int, rejects: list[Reject], of: Sequence[int] | None = None) -> Sequence[int]:
    """The lines (of ``n``) that :func:`parse_json_lines` made values: those it did not
    reject, in order (``of[i]`` for line ``i`` when given).

    >>> _kept(4, [Reject("x", None, index=1)]), _kept(3, [Reject("x", None, index=0)], [5, 7, 9])
    ([0, 2, 3], [7, 9])
    """
    if not rejects:
        return range(n) if of is None else of
    bad = {r.index for r in rejects}
    return [i if of is None else of[i] for i in range(n) if i not in bad]


# ---- column helpers: a fast path for plain JSON values, per-value rules otherwise ------
def _take(values: list[Any], idx: np.ndarray) -> list[Any]:
    return values if idx.size == len(values) else [values[i] for i in idx]


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


def _is_none(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter(map(is_, values, repeat(None)), bool, len(values))


def _is_dict(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter(map(isinstance, values, repeat(dict)), bool, len(values))


def _outcomes(raw: list[Any]) -> np.ndarray:
    """Outcome codes (0 when absent), -1 where the outcome is not one of :data:`OUTCOME_CODES`."""
    if _types(raw) <= _STR_TYPES:
        codes = np.fromiter(map(_OUTCOME_LOOKUP.get, raw, repeat(-1)), np.int16, len(raw))
    else:
        codes = np.array([OUTCOME_CODES.get(o, -1) if type(o) is str else (0 if o is None else -1)
                          for o in raw], dtype=np.int16)
    for i in np.flatnonzero(codes < 0):  # "OK", "Timeout", odd types: the full rule
        codes[i] = OUTCOME_CODES.get(str(raw[i]).lower(), -1)
    return codes


def _numbers(values: list[Any], role: str, reasons: _Reasons) -> np.ndarray:
    """float64 with NaN where absent; flags ``wrong_type:<role>`` and ``nan_<role>``."""
    types = _types(values)
    if types <= _NUMBER_TYPES:
        if types == {_NONE}:
            return np.full(len(values), np.nan)
        out = _floats(values, types)
        bad = ~np.isfinite(out)
        if bad.any():
            bad &= ~_is_none(values)
            reasons.flag(bad, f"nan_{role}")
            out[bad] = np.nan
        return out
    out = np.full(len(values), np.nan)
    wrong = np.zeros(len(values), dtype=bool)
    nan = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            wrong[i] = True
        elif math.isnan(v) or math.isinf(v):
            nan[i] = True
        else:
            out[i] = v
    reasons.flag(wrong, f"wrong_type:{role}")
    reasons.flag(nan, f"nan_{role}")
    return out


def _floats(values: list[Any], types: set[type]) -> np.ndarray:
    """Ints, floats and None (→ NaN) → float64."""
    if _NONE in types:
        return np.array(values, dtype=np.float64)
    return np.fromiter(values, np.float64, len(values))


def _strings(values: list[Any]) -> np.ndarray:
    if not _types(values) <= {str}:
        values = [v if type(v) is str else ("" if v is None else str(v)) for v in values]
    return _object_array(values)


def _feature_column(values: list[Any], kind: str | None) -> np.ndarray:
    """A feature's values as float64 (``numeric``) or object (``categorical``); ``kind=None``:
    numeric when every present value is a number."""
    types = _types(values)
    if (kind or _infer_kind(values, types)) == "numeric":
        return _numeric_column(values, types)
    return _categorical_column(values, types)


def _infer_kind(values: list[Any], types: set[type]) -> str:
    if types <= _JSON_TYPES:
        present = types - {_NONE}
        return "numeric" if present and present <= {int, float} else "categorical"
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "numeric"
    return "categorical"


def _numeric_column(values: list[Any], types: set[type]) -> np.ndarray:
    """Numbers → float64; None, strings that are not numbers, bools → NaN (type mismatches
    are counted by data-quality checks, not rejected)."""
    if types <= _NUMBER_TYPES:
        return np.full(len(values), np.nan) if types == {_NONE} else _floats(values, types)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = v
        elif isinstance(v, str):
            with suppress(ValueError):
                out[i] = float(v)
    return out


def _categorical_column(values: list[Any], types: set[type]) -> np.ndarray:
    if types <= _STR_TYPES:
        return _object_array(values)
    return _object_array([_category(v) for v in values])


def _category(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _tags(raw: list[Any]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    if not _types(raw) <= {list}:  # a single tag as a string; anything else is no tags
        raw = [[t] if isinstance(t, str) else (t if isinstance(t, list) else []) for t in raw]
    rows = np.repeat(np.arange(len(raw), dtype=np.int64), list(map(len, raw)))
    flat = list(chain.from_iterable(raw))
    if not _types(flat) <= {str}:
        flat = [t if type(t) is str else str(t) for t in flat]
    vocab: dict[str, int] = {}
    codes = [vocab.setdefault(t, len(vocab)) for t in flat]
    return tuple(vocab), rows, np.array(codes, dtype=np.int32)


def frame_records(frame: Any) -> tuple[list[dict[str, Any]], list[Reject]]:
    """The rows of a pandas frame (or of an Arrow batch or table, or a CSV batch, made a
    frame first) as records: dotted column names un-flattened, null and NaN cells absent;
    and the rows pandas refused to parse (a CSV batch's)."""
    refused: list[Reject] = []
    if hasattr(frame, "parse_rows"):  # a CSV batch: pandas parses its rows, as ever
        frame, refused = frame.parse_rows()
        if frame is None:
            return [], refused
    elif not isinstance(frame, pd.DataFrame):
        frame = frame.to_pandas()
    return [_unflatten(r) for r in frame.to_dict(orient="records")], refused


def _unflatten(row: dict[str, Any]) -> dict[str, Any]:
    """``{"prediction.score": 0.1}`` → ``{"prediction": {"score": 0.1}}``; NaN cells → absent."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
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
