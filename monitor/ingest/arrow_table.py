"""The spec's dot paths over the columns of an Arrow table (Parquet, CSV), or :class:`Irregular`.

A path is found as a column named by the whole path (``features.amount``, a flat dotted
name), or as a column named by a prefix of it walked down its struct fields
(``features`` → ``amount``), exactly where the per-record path (the table turned into row
dicts, dotted names un-flattened) would find it. Values are the ones those row dicts hold:
a null or NaN cell of a top-level column is an absent key, an integer column with nulls
holds floats (pandas' conversion); a dictionary of text (Parquet's) stays one, other
dictionaries are decoded. Anything the row dicts could hold differently — a column
name that is also a prefix of another (which one wins depends on the column order), two
columns of the same name, a list inside a struct (pandas makes it an array) — raises
:class:`Irregular`: the caller decodes that batch record by record.

>>> t = pa.table({"features": [{"a": 1, "b": "x"}, None], "prediction.score": [0.5, float("nan")],
...               "label": [1, None]})
>>> cols = TableColumns(t)
>>> cols.get("prediction.score").to_pylist(), cols.get("label").to_pylist()
([0.5, None], [1.0, None])
>>> {k: v.to_pylist() for k, v in cols.children("features").items()}
{'a': [1, None], 'b': ['x', None]}
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from monitor.ingest.arrow_block import Irregular

_NESTED = (pa.types.is_struct, pa.types.is_list, pa.types.is_large_list, pa.types.is_map,
           pa.types.is_fixed_size_list, pa.types.is_union)


class TableColumns:
    """The columns of one record batch (or table), looked up by the spec's dot paths;
    ``typed``: what makes a column's values of its raw values (a CSV batch's text is typed
    as pandas would, only for the columns used)."""

    def __init__(self, table: pa.RecordBatch | pa.Table,
                 typed: Callable[[pa.Array], pa.Array] | None = None):
        names = [str(n) for n in table.schema.names]
        if len(set(names)) != len(names):
            raise Irregular("two columns of the same name")
        prefixes = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}
        if prefixes & set(names):
            raise Irregular("a column name is also the prefix of another")
        self.n = table.num_rows
        self._raw = {name: table.column(i) for i, name in enumerate(names)}
        self._cache: dict[str, pa.Array | None] = {}
        self._typed = typed  # a CSV batch's text → its values, column by column as used

    def top(self, name: str) -> pa.Array:
        """A top-level column as the row dicts hold it: null where null or NaN."""
        if name not in self._cache:
            col = _one(self._raw[name])
            self._cache[name] = _top(self._typed(col) if self._typed else col)
        arr = self._cache[name]
        assert arr is not None
        return arr

    def get(self, path: str) -> pa.Array | None:
        """The values at ``path`` (null where absent), or None when no column has it."""
        if path in self._raw:
            return self.top(path)
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:i])
            if name in self._raw:
                return _walk(self.top(name), parts[i:])
        return None

    def children(self, path: str) -> dict[str, pa.Array]:
        """The keys of the objects at ``path`` (struct fields and ``<path>.<key>`` columns);
        a key null in every row of the batch is no key of any row dict."""
        out: dict[str, pa.Array] = {}
        arr = self.get(path)
        if arr is not None and pa.types.is_struct(arr.type):
            fields = [arr.type.field(i).name for i in range(arr.type.num_fields)]
            if len(set(fields)) != len(fields):
                raise Irregular("two struct fields of the same name")
            if arr.null_count < len(arr):
                out = {arr.type.field(i).name: _child(arr, i) for i in range(arr.type.num_fields)}
        elif arr is not None and not pa.types.is_null(arr.type):
            raise Irregular("wrong_type:features")
        head = path + "."
        for name in self._raw:
            if name.startswith(head):
                key = name[len(head):]
                if "." in key:
                    raise Irregular("a dotted column below the features")
                col = self.top(name)
                if col.null_count < len(col):
                    out[key] = col
        for key, col in out.items():
            if any(f(col.type) for f in _NESTED):
                raise Irregular(f"nested feature {key}")
        return out


def _one(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)
    if pa.types.is_dictionary(col.type) and not (
            (pa.types.is_string(col.type.value_type) or pa.types.is_large_string(
                col.type.value_type)) and not col.dictionary.null_count):
        col = col.dictionary_decode()  # text stays coded (Parquet's dictionaries)
    return col


def _top(arr: pa.Array) -> pa.Array:
    """A top-level column: NaN → null (pandas' NaN is an absent cell), ints with nulls →
    floats (pandas' int column with NaN)."""
    if pa.types.is_floating(arr.type) and arr.null_count < len(arr):
        nan = pc.is_nan(arr)
        if pc.any(nan).as_py():
            arr = pc.if_else(nan, pa.nulls(len(arr), arr.type), arr)  # pa.scalar: pandas
    return _ints_with_nulls(arr, arr.null_count)


def _ints_with_nulls(arr: pa.Array, own_nulls: int) -> pa.Array:
    if own_nulls and pa.types.is_integer(arr.type):
        return arr.cast(pa.float64(), safe=False)
    return arr


def _child(arr: pa.Array, i: int) -> pa.Array:
    """Field ``i`` of a struct array, null where the struct is null; an integer field with
    nulls of its own is floats (pandas converts the field as a column)."""
    child = _one(arr.flatten()[i])
    if any(f(child.type) for f in _NESTED[1:]):
        raise Irregular("a list inside a struct")
    if pa.types.is_timestamp(child.type) or pa.types.is_temporal(child.type):
        raise Irregular("a date or time inside a struct")
    return _ints_with_nulls(child, arr.field(i).null_count)


def _walk(arr: pa.Array, parts: list[str]) -> pa.Array | None:
    for part in parts:
        if not pa.types.is_struct(arr.type):
            return None
        i = arr.type.get_field_index(part)
        if i < 0:
            if any(arr.type.field(k).name == part for k in range(arr.type.num_fields)):
                raise Irregular("two struct fields of the same name")
            return None
        arr = _child(arr, i)
    return arr
