"""A block of JSON lines read into Arrow columns at once, or :class:`Irregular`.

Apache Arrow's JSON reader parses a whole block in C++ and builds the columns itself; no
Python object per record. slicewatch's native reader (:mod:`monitor.ingest.native_block`)
builds the same table about twice as fast and is tried first; a block it declines goes to
Arrow's. Arrow's reader is laxer than ``orjson`` in a few places and unsafe in one,
so a block is only handed to either when none of these can be in it: invalid UTF-8, a line that
does not start with ``{`` (a blank line; Arrow crashes on a first value ``null``), a line
that could nest deeper than
:data:`MAX_OPENS` (Arrow's parser overflows the stack on very deep nesting; ``orjson``
refuses past 1024). A block Arrow cannot read the way ``orjson`` would (junk, a value that
changes type, duplicate keys, two objects on one line, a ``NaN``, ``Inf`` or ``Infinity``
token, which Arrow reads as a number: any float column that is not finite) raises
:class:`Irregular` too: the caller decodes that block record by record.

A block is read as one Arrow block (no per-block schema unification or concatenation; the
lines of a file's block, :class:`monitor.ingest.lines.Lines`, as they lie in the file), and
the caller may give the types of the fields it expects (:func:`learned`: the previous
block's, where they were not null) so that Arrow does not infer them again; fields not in
that schema are still inferred. Given types only narrow what Arrow accepts (a value of
another kind is an error: ``Unreadable``), except that an integer read where a float is
expected becomes a float, as inference does in a block that mixes them; a field absent from
every line comes out as nulls, which :func:`null_somewhere` tells the caller about
(inference would leave it out).

>>> t = read_block([b'{"a": 1, "b": {"c": "x"}}\\n', b'{"a": 2.5}\\n'])
>>> column(t, "a").to_pylist(), column(t, "b.c").to_pylist(), column(t, "b.d")
([1.0, 2.5], ['x', None], None)
>>> read_block([b'{"a": [1, Inf]}'])
Traceback (most recent call last):
...
monitor.ingest.arrow_block.Irregular: NaN or Infinity token
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from monitor.ingest.lines import Lines
from monitor.ingest.native_block import native_table

SAFE_LINE_BYTES = 2000  # a line this short nests at most 1000 deep
MAX_OPENS = 1000  # '[' + '{' in a longer line: more, and the block is irregular
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class Irregular(Exception):
    """The block must be decoded record by record."""


class Unreadable(Irregular):
    """Arrow's reader refused the block (with the schema it was given)."""


def read_block(lines: Sequence[Any], schema: pa.Schema | None = None) -> pa.Table:
    """One table row per line; ``schema``: the types of some fields (e.g. a time path as text,
    :func:`text_schema`, never an Arrow timestamp, which would lose the original string),
    the others inferred. Raises :class:`Irregular`."""
    if isinstance(lines, Lines):  # a file's block: no split, no join
        block, longest = lines.block, lines.longest
        if not lines.block or (np.frombuffer(block, np.uint8)[lines.starts()] != 123).any():
            lines = lines.lines()  # a line that starts with a space, or not an object
            _objects(lines)
    else:
        if not lines or not set(map(type, lines)) <= {bytes}:
            raise Irregular("not all bytes")
        _objects(lines)
        block = b"\n".join(lines)
        longest = max(map(len, lines))
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            raise Irregular("invalid UTF-8") from None
    if longest > SAFE_LINE_BYTES and any(
            len(x) > SAFE_LINE_BYTES and x.count(b"[") + x.count(b"{") > MAX_OPENS
            for x in lines):
        raise Irregular("deep nesting")
    table = native_table(block, schema)  # the same table, faster, or None: Arrow reads it
    if table is not None:
        if table.num_rows != len(lines):
            raise Irregular("not one object per line")
        return table
    try:
        table = pj.read_json(
            io.BytesIO(block),  # one Arrow block: one chunk, one inference
            read_options=pj.ReadOptions(block_size=min(len(block) + 64, 1 << 30),
                                        use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="infer"))
    except _PARSE_ERRORS as exc:
        raise Unreadable(str(exc)) from None
    if table.num_rows != len(lines):
        raise Irregular("not one object per line")
    table = table.combine_chunks()
    if not all(_finite(_one(col)) for col in table.columns):
        raise Irregular("NaN or Infinity token")  # JSON has no such numbers: orjson refuses
    return table


def _finite(arr: pa.Array) -> bool:
    """No NaN or infinity among the numbers of ``arr`` (nested ones too): Arrow's parser takes
    ``NaN``, ``Inf``, ``Infinity`` tokens, and a number too big for a double is refused."""
    kind = arr.type
    if pa.types.is_floating(kind):
        return pc.all(pc.is_finite(arr)).as_py() is not False
    if pa.types.is_struct(kind):
        return all(map(_finite, arr.flatten()))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _finite(arr.flatten())
    return True


def _objects(lines: Sequence[bytes]) -> None:
    if not lines or (not all(map(bytes.startswith, lines, repeat(b"{"))) and not all(
            map(bytes.startswith, map(bytes.lstrip, lines), repeat(b"{")))):
        raise Irregular("a line that is blank or not an object")  # Arrow crashes on `null`


def learned(schema: pa.Schema) -> pa.Schema | None:
    """The types of ``schema`` worth giving Arrow for the next block: every field but those
    of Arrow's null type (all null so far: their type is not known), None if none is left."""
    fields = [f for f in map(_typed, schema) if f is not None]
    return pa.schema(fields) if fields else None


def _typed(field: pa.Field) -> pa.Field | None:
    kind = field.type
    if pa.types.is_null(kind) or (pa.types.is_list(kind) and pa.types.is_null(kind.value_type)):
        return None
    if pa.types.is_struct(kind):
        kids = [f for f in map(_typed, kind) if f is not None]
        return field.with_type(pa.struct(kids)) if kids else None
    if pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
        return None  # a list of objects: left to inference
    return field


def null_somewhere(table: pa.Table, schema: pa.Schema) -> bool:
    """Whether a field of ``schema`` (nested ones too) is null in every row of ``table``: it
    may be absent from every line, where inference would leave it out."""
    return any(_all_null(_one(table.column(f.name)), f.type) for f in schema
               if f.name in table.column_names)


def _all_null(arr: pa.Array, kind: pa.DataType) -> bool:
    if arr.null_count == len(arr):
        return True
    if not pa.types.is_struct(kind):
        return False
    return any(_all_null(child, arr.type.field(i).type) for i, child in enumerate(arr.flatten())
               if arr.type.field(i).name in {f.name for f in kind})


def text_schema(path: str) -> pa.Schema:
    """``a.b.c`` → ``{a: {b: {c: string}}}``."""
    kind: pa.DataType = pa.string()
    parts = path.split(".")
    for part in reversed(parts[1:]):
        kind = pa.struct([(part, kind)])
    return pa.schema([(parts[0], kind)])


def column(table: pa.Table, path: str) -> pa.Array | None:
    """The values at a dot path (null where a parent is null), or None when no record of the
    block has that path (a step is missing, or is not an object in any record)."""
    parts = path.split(".")
    if parts[0] not in table.column_names:
        return None
    arr = _one(table.column(parts[0]))
    for part in parts[1:]:
        if not pa.types.is_struct(arr.type) or arr.type.get_field_index(part) < 0:
            return None
        arr = arr.flatten()[arr.type.get_field_index(part)]
    return arr


def children(arr: pa.Array) -> dict[str, pa.Array]:
    """A struct array's fields (nulls of the parent applied)."""
    return {arr.type.field(i).name: child for i, child in enumerate(arr.flatten())}


def _one(col: pa.ChunkedArray) -> pa.Array:
    return col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)
