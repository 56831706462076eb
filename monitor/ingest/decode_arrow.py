"""The decoder with a fast path for regular blocks of JSON lines: Arrow columns, no records.

:class:`ArrowDecoder` reads a block with :func:`monitor.ingest.arrow_block.read_block` and
builds the :class:`RecordBatch` from the Arrow columns. It takes a block only when the
per-record rules of :class:`monitor.ingest.decode.Decoder` would keep every record of it and
give the same values: any record that would be rejected, any type those rules convert value
by value (a float where the raw value is kept: ``1`` and ``1.0`` differ there; nested
values; a null that could be an absence) sends the whole block down the per-record path,
which names each reject. tests/unit/test_decode_fast.py checks both against the reference
decoder on regular and hostile lines.

>>> from slices.spec import SchemaSpec
>>> d = ArrowDecoder(SchemaSpec(), default_model="fraud", feature_types={"n": "numeric"})
>>> batch, rejects = d.decode_lines([b'{"timestamp": 10, "prediction": {"score": 0.2},'
...                                  b' "features": {"n": 3, "c": "US"}}'])
>>> d.fast_blocks, batch.features["n"].tolist(), batch.features["c"].tolist(), rejects
(1, [3.0], ['US'], [])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.core.types import RecordBatch
from monitor.ingest.arrow_block import (
    Irregular,
    Unreadable,
    children,
    column,
    learned,
    null_somewhere,
    read_block,
    text_schema,
)
from monitor.ingest.arrow_numpy import filled, floats, from_numpy, numbers, valid
from monitor.ingest.arrow_table import TableColumns
from monitor.ingest.decode import (
    MAX_TIME,
    MIN_TIME,
    Decoder,
    Reject,
    _categorical_column,
    _epoch_seconds,
    _gc_paused,
    _iso_seconds,
    _object_array,
    _outcomes,
    _strings,
    _tags,
    _types,
)
from monitor.ingest.tagcells import split_tag_cells
from slices.codes import factorize, isna, known

_NUMERIC = (pa.types.is_integer, pa.types.is_floating)


class ArrowDecoder(Decoder):
    """A :class:`Decoder` whose :meth:`decode_lines` takes regular blocks through Arrow.

    ``fast_blocks`` / ``slow_blocks`` count the blocks each path decoded.
    """

    fast_blocks = 0
    slow_blocks = 0
    _time_text = False  # the last block's times were text: read them as text
    _known: pa.Schema | None = None  # the types of the last block read through Arrow

    @_gc_paused
    def decode_lines(self, lines: Sequence[bytes | str]) -> tuple[RecordBatch, list[Reject]]:
        """Decode JSON lines: the Arrow path when the block is regular, else record by record."""
        try:
            batch = self._arrow(lines)
        except Irregular:
            self.slow_blocks += 1
            return Decoder.decode_lines.__wrapped__(self, lines)
        self.fast_blocks += 1
        return batch, []

    @_gc_paused
    def decode_frame(self, frame: Any) -> tuple[RecordBatch, list[Reject]]:
        """Decode a table: an Arrow record batch or table (Parquet, CSV) straight from its
        columns when regular; else (or a pandas frame) record by record."""
        text = getattr(frame, "text_table", None)  # a CSV batch: text typed as pandas would
        if not isinstance(frame, pa.RecordBatch | pa.Table) and text is None:
            return Decoder.decode_frame.__wrapped__(self, frame)
        try:
            batch = (self._table(frame) if text is None
                     else self._table(text, frame.typed))
        except (Irregular, pa.ArrowException):  # Arrow's refusal: the rows will say why
            self.slow_blocks += 1
            if text is None:
                frame = frame.cast(_plain_schema(frame.schema))  # text, not categoricals
            return Decoder.decode_frame.__wrapped__(self, frame)
        self.fast_blocks += 1
        return batch, []

    def _arrow(self, lines: Sequence[bytes | str]) -> RecordBatch:
        """The block through Arrow with the types of the last block read this way (no
        inference of them again); if they do not fit this block, read again with inference:
        what the block gives then decides."""
        known = self._known
        if known is not None:
            try:
                table = read_block(lines, known)
                if not null_somewhere(table, known):  # else: a field may be absent throughout
                    return self._from_table(table)
            except Irregular:
                pass
            self._known = None
        s = self.schema
        try:
            table = read_block(lines, text_schema(s.time) if self._time_text else None)
        except Unreadable:
            if not self._time_text:
                raise
            table = read_block(lines)  # the times may have turned into numbers
        return self._from_table(table)

    def _from_table(self, table: pa.Table) -> RecordBatch:
        batch = self._build(lambda path: column(table, path), table.num_rows,
                            lambda: self._features(table, table.num_rows), None)
        self._known = learned(table.schema)
        return batch

    def _table(self, frame: pa.RecordBatch | pa.Table,
               typed: Callable[[pa.Array], pa.Array] | None = None) -> RecordBatch:
        cols = TableColumns(frame, typed)
        if not cols.n:
            raise Irregular("no rows")
        return self._build(cols.get, cols.n, lambda: self._table_features(cols), cols)

    def _build(self, get: Callable[[str], pa.Array | None], n: int,
               features: Callable[[], dict[str, np.ndarray]],
               cols: TableColumns | None) -> RecordBatch:
        """The batch from the role columns ``get`` finds; ``cols``: a table's (not JSON)."""
        s = self.schema
        exact = cols is not None  # a table's values keep their type: 1.0 was a float
        model = self._models(get(s.model), n, exact)
        times = self._times(_decoded(get(s.time)), n, exact)
        outcome = _outcome_codes(_decoded(get(s.outcome)), n)
        score = _floats(_decoded(get(s.score)), n, exact)
        value = _floats(_decoded(get(s.value)), n, exact)
        if self.probability_models is not None and self._out_of_range(score, model).any():
            raise Irregular("score_out_of_range")
        pred_class = _role_objects(get(s.pred_class), n, exact, as_text=True)
        no_prediction = (outcome == 0) & np.isnan(score) & np.isnan(value)
        if no_prediction.any() and isna(pred_class)[no_prediction].any():
            raise Irregular("missing_prediction")
        if cols is None:
            tag_names, tag_rows, tag_codes = _tag_columns(get(s.tags), n)
        else:
            tag_names, tag_rows, tag_codes = _table_tags(cols, s.tags, n)
        return RecordBatch(
            time=times, model=model,
            version=_role_objects(get(s.version), n, exact, null=""),
            id=_ids(get(s.id), n, exact), score=score, pred_class=pred_class,
            value=value, label=_role_objects(get(s.label), n, exact),
            outcome=outcome.astype(np.int8), features=features(),
            tag_names=tag_names, tag_rows=tag_rows, tag_codes=tag_codes)

    def _models(self, arr: pa.Array | None, n: int, exact: bool) -> np.ndarray:
        if arr is None or (exact and arr.null_count == n):
            if self.default_model is None:
                raise Irregular("missing_field:model")
            return _constant(n, self.default_model)
        if exact and arr.null_count and self.default_model is not None and _textual(arr.type):
            arr = pc.fill_null(arr, self.default_model)  # a table's null cell is absent
        if not _textual(arr.type) or arr.null_count:
            raise Irregular("model not text, or null")  # null and absent differ for the model
        model = _text_objects(arr)
        if self.known_models is not None and not set(factorize(model)[1]) <= self.known_models:
            raise Irregular("unknown_model")
        return model

    def _times(self, arr: pa.Array | None, n: int, exact: bool) -> np.ndarray:
        if arr is None or arr.null_count:
            raise Irregular("missing_field:time")
        if exact and pa.types.is_timestamp(arr.type):  # a table's native times
            times = _timestamp_seconds(arr)
        elif pa.types.is_timestamp(arr.type):
            self._time_text = True  # inferred as a timestamp: next blocks read it as text
            raise Irregular("times as text")
        elif _is_text(arr.type):
            if not exact:
                self._time_text = True
            times = _iso_seconds(arr.to_pylist())
        elif any(f(arr.type) for f in _NUMERIC):
            self._time_text = False
            times = _epoch_seconds(_as_float(arr))
        else:
            raise Irregular("bad_time")
        if not np.isfinite(times).all() or times.min() < MIN_TIME or times.max() > MAX_TIME:
            raise Irregular("bad_time")
        if self.max_future is not None and times.max() > self.clock() + self.max_future:
            raise Irregular("future_time")
        return times

    def _features(self, table: pa.Table, n: int) -> dict[str, np.ndarray]:
        s = self.schema
        maps = column(table, s.features) if s.features else None
        found: dict[str, pa.Array] = {}
        if maps is not None and pa.types.is_struct(maps.type):
            found = children(maps)
        elif maps is not None and not pa.types.is_null(maps.type):
            raise Irregular("wrong_type:features")
        return self._typed_features(found, lambda path: column(table, path), n)


    def _table_features(self, cols: TableColumns) -> dict[str, np.ndarray]:
        """As :meth:`_features`, over a table's columns (values keep their exact type)."""
        s = self.schema
        found = cols.children(s.features) if s.features else {}
        return self._typed_features(found, cols.get, cols.n, exact=True)

    def _typed_features(self, found: dict[str, Any], get: Any, n: int,
                        exact: bool = False) -> dict[str, np.ndarray]:
        """``found`` (features of the features object) plus those at their own path
        (``get(path)``, no nulls), each as a typed column of ``n`` values."""
        for name, path in self.schema.feature_paths.items():
            arr = get(path)
            if arr is not None:
                if arr.null_count:  # null and absent differ here
                    raise Irregular("feature path with nulls")
                found[name] = arr
        out: dict[str, np.ndarray] = {}
        for name in sorted(set(self.feature_types) | set(found), key=str):
            arr = found.get(name)
            out[str(name)] = _feature(arr if arr is not None else pa.nulls(n),
                                      self.feature_types.get(name), exact=exact)
        return out


def _plain_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(kind):
        return _plain_type(kind.value_type)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in kind])
    return kind


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every dictionary (top-level or in a struct) its value type."""
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema],
                     metadata=schema.metadata)


def _timestamp_seconds(arr: pa.Array) -> np.ndarray:
    """Arrow timestamps → epoch seconds as ``decode._native_seconds`` computes them (naive
    ones are UTC)."""
    per = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[arr.type.unit]
    ints = numbers(arr.cast(pa.int64()))  # no nulls: the caller checked
    return ints / per


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _textual(kind: pa.DataType) -> bool:
    """Text, or a dictionary of text (a Parquet column read with its dictionary)."""
    return _is_text(kind) or (pa.types.is_dictionary(kind) and _is_text(kind.value_type))


def _decoded(arr: pa.Array | None) -> pa.Array | None:
    """``arr`` with a dictionary decoded (roles read from the values, not codes)."""
    if arr is not None and pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def _as_float(arr: pa.Array) -> np.ndarray:
    """Numbers → float64, NaN where null."""
    return floats(arr)


def _floats(arr: pa.Array | None, n: int, exact: bool = False) -> np.ndarray:
    """A number role (score, value): float64, NaN where null or absent."""
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, np.nan)
    if not any(f(arr.type) for f in _NUMERIC):
        raise Irregular("wrong_type")
    out = _as_float(arr)
    if exact and not np.isfinite(out[~np.isnan(out)] if arr.null_count else out).all():
        raise Irregular("nan or infinite number")  # a NaN in a struct: nan_<role>
    return out


def _raw(arr: pa.Array | None, n: int, exact: bool = False) -> list:
    """A role whose values are kept as logged: scalars only, and (``exact`` false: JSON) no
    float that could have been written as an integer (``1`` and ``1.0`` differ once kept)."""
    if arr is None:
        return [None] * n
    kind = arr.type
    if pa.types.is_floating(kind) and exact:
        pass
    elif pa.types.is_floating(kind):
        if pc.any(pc.equal(arr, pc.floor(arr))).as_py():
            raise Irregular("integral float kept raw")
    elif not (_is_text(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
              or pa.types.is_null(kind)):
        raise Irregular("nested or odd raw value")
    return arr.to_pylist()


def _text_objects(arr: pa.Array, null: str | None = None) -> np.ndarray:
    """A text column (or a dictionary of text: Parquet's) as an object array with one Python
    ``str`` per distinct value (equal cells are the same object), ``null`` where null; its
    codes and distinct values registered with it (:func:`slices.codes.known`): the core then
    codes it per distinct value, not per cell."""
    if pa.types.is_dictionary(arr.type):  # a row group's dictionary: the entries used only
        indices, size = arr.indices, len(arr.dictionary)
        first_seen = pc.unique(indices.drop_null())
        used = numbers(first_seen)
        dictionary = arr.dictionary.take(first_seen)  # by first appearance
        if dictionary.null_count or len(pc.unique(dictionary)) != len(dictionary):
            return _text_objects(arr.dictionary_decode(), null)
        k = len(used)
        remap = np.full(size + 1, k, dtype=np.int32)  # the last slot: null
        remap[used] = np.arange(k, dtype=np.int32)
        ids = remap[filled(indices, size)]
    else:
        encoded = arr.dictionary_encode()  # every value used, in order of first appearance
        dictionary, indices, k = encoded.dictionary, encoded.indices, len(encoded.dictionary)
        ids = filled(indices, k).astype(np.int32, copy=False)
    values = np.empty(k + 1, dtype=object)
    values[:k] = dictionary.to_pylist()
    values[k] = null
    cells = values.take(ids)
    # the codes pandas.factorize gives the cells: distinct values by first appearance, -1 None
    if not arr.null_count:
        return known(cells, ids, values[:k])
    if null is None:
        return known(cells, np.where(ids == k, np.int32(-1), ids), values[:k])
    if null in values[:k].tolist():  # null cells hold a value seen elsewhere: one value
        ids = np.where(ids == k, values[:k].tolist().index(null), ids)
    order = numbers(pc.unique(from_numpy(ids)))
    rank = np.full(k + 1, -1, dtype=np.int32)
    rank[order] = np.arange(order.shape[0], dtype=np.int32)
    return known(cells, rank[ids], values[order])


def _constant(n: int, value: str | None) -> np.ndarray:
    """``n`` cells of one value (a role absent from the block), its codes registered."""
    uniques = np.empty(0 if value is None or not n else 1, dtype=object)
    uniques[:] = value
    return known(np.full(n, value, dtype=object),
                 np.full(n, -1 if value is None else 0, dtype=np.int32), uniques)


def _ids(arr: pa.Array | None, n: int, exact: bool) -> np.ndarray:
    """Prediction ids as text ("" where null): one ``str`` a cell, as logged (distinct ids:
    coding them would cost a hash a cell for nothing); absent: one constant, coded."""
    if arr is None:
        return _constant(n, "")
    return _strings(_raw(_decoded(arr), n, exact))


def _role_objects(arr: pa.Array | None, n: int, exact: bool, null: str | None = None,
                  as_text: bool = False) -> np.ndarray:
    """A role kept as logged (:func:`_raw`) as an object array: text (and absent roles) with
    their codes (:func:`_text_objects`, :func:`_constant`); ``null``: a null cell's value
    (``""``: every value made text, as ``decode._strings`` does); ``as_text``: values that
    are not text made text (the predicted class), None kept."""
    if arr is None:
        return _constant(n, null)
    if _textual(arr.type):
        return _text_objects(arr, null)
    values = _raw(arr, n, exact)
    if null is not None:
        return _strings(values)
    if as_text and not _types(values) <= {str, type(None)}:
        values = [c if c is None or type(c) is str else str(c) for c in values]
    return _object_array(values)


def _outcome_codes(arr: pa.Array | None, n: int) -> np.ndarray:
    if arr is None or pa.types.is_null(arr.type):
        return np.zeros(n, dtype=np.int16)
    if not _is_text(arr.type):
        raise Irregular("bad_outcome")
    encoded = arr.dictionary_encode()  # the rule once per distinct value (null last)
    k = len(encoded.dictionary)
    per_value = _outcomes([*encoded.dictionary.to_pylist(), None])
    codes = per_value.take(filled(encoded.indices, k))
    if (codes < 0).any():
        raise Irregular("bad_outcome")
    return codes


def _feature(arr: pa.Array, kind: str | None, exact: bool = False) -> np.ndarray:
    """A feature column: the per-record rules (``Decoder``'s ``_feature_column``) on Arrow
    types: numbers stay numbers, a column of nulls only is categorical unless declared."""
    t = arr.type
    numeric_type = any(f(t) for f in _NUMERIC)
    if kind == "numeric" or (kind is None and numeric_type):
        if not (numeric_type or pa.types.is_null(t)):
            raise Irregular("text in a numeric feature")
        return _as_float(arr) if numeric_type else np.full(len(arr), np.nan)
    if _textual(t):
        return _text_objects(arr)
    if pa.types.is_null(t):
        return _constant(len(arr), None)
    values = _raw(arr, len(arr), exact)  # a float with an integral value: "1" or a rounded big int
    return _categorical_column(values, _types(values))


def _tag_columns(arr: pa.Array | None, n: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    if arr is None:
        return (), np.zeros(0, np.int64), np.zeros(0, np.int32)
    t = arr.type
    if pa.types.is_list(t) and _is_text(t.value_type):
        flat = arr.flatten()
        if not flat.null_count:
            lengths = filled(pc.list_value_length(arr), 0)
            encoded = flat.dictionary_encode()
            return (tuple(encoded.dictionary.to_pylist()),
                    np.repeat(np.arange(n, dtype=np.int64), lengths),
                    numbers(encoded.indices).astype(np.int32))
    if _is_text(t):  # one tag a record, or none where null
        encoded = arr.dictionary_encode()
        indices = encoded.indices
        rows = (np.arange(n, dtype=np.int64) if not indices.null_count
                else np.flatnonzero(valid(indices)))
        return (tuple(encoded.dictionary.to_pylist()), rows,
                numbers(indices.drop_null()).astype(np.int32))
    scalar = (_is_text(t) or pa.types.is_null(t) or pa.types.is_integer(t)
              or pa.types.is_boolean(t))
    if not (scalar or (pa.types.is_list(t) and (
            _is_text(t.value_type) or pa.types.is_integer(t.value_type)
            or pa.types.is_boolean(t.value_type) or pa.types.is_null(t.value_type)))):
        raise Irregular("odd tags")
    return _tags(arr.to_pylist())


def _table_tags(cols: TableColumns, path: str, n: int
                ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Tags of a table: a list-of-text column, or text cells (JSON list text is a list;
    other text one tag; see :mod:`monitor.ingest.tagcells`)."""
    arr = _decoded(cols.get(path))
    if arr is None:
        return _tag_columns(None, n)
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if not (_is_text(t.value_type) or pa.types.is_null(t.value_type)):
            raise Irregular("tags list of non-text")  # pandas makes ints with nulls floats
        return _tag_columns(arr, n)
    if not _is_text(t):
        return _tag_columns(arr, n)
    if not pc.any(pc.match_substring(arr, "[")).as_py():
        return _tag_columns(arr, n)
    records = [{"t": v} for v in arr.to_pylist()]
    good, bad = split_tag_cells(records, "t")
    if bad:
        raise Irregular("bad_tags")
    return _tags([r["t"] for r in good])
