"""A block of JSON lines read into Arrow columns at once, or :class:`Irregular`.

Apache Arrow's JSON reader parses a whole block in C++ and builds the columns itself; no
Python object per record. It is laxer than ``orjson`` in a few places and unsafe in one,
so a block is only handed to it when none of these can be in it: ``NaN``/``Infinity``
tokens, invalid UTF-8, a line that does not start with ``{`` (a
blank line; Arrow crashes on a first value ``null``), a line that could nest deeper than
:data:`MAX_OPENS` (Arrow's parser overflows the stack on very deep nesting; ``orjson``
refuses past 1024). A block Arrow cannot read the way ``orjson`` would (junk, a value that
changes type, duplicate keys, two objects on one line) raises :class:`Irregular` too: the
caller decodes that block record by record.

>>> t = read_block([b'{"a": 1, "b": {"c": "x"}}\\n', b'{"a": 2.5}\\n'])
>>> column(t, "a").to_pylist(), column(t, "b.c").to_pylist(), column(t, "b.d")
([1.0, 2.5], ['x', None], None)
>>> read_block([b'{"a": NaN}'])
Traceback (most recent call last):
...
monitor.ingest.arrow_block.Irregular: NaN or Infinity token
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import pyarrow as pa
import pyarrow.json as pj

SAFE_LINE_BYTES = 2000  # a line this short nests at most 1000 deep
MAX_OPENS = 1000  # '[' + '{' in a longer line: more, and the block is irregular
_NAN_TOKEN = re.compile(rb"[:,\[]\s*-?(?:NaN|Infinity)")  # or inside a string: no matter
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class Irregular(Exception):
    """The block must be decoded record by record."""


class Unreadable(Irregular):
    """Arrow's reader refused the block (with the schema it was given)."""


def read_block(lines: Sequence[Any], time_path: str | None = None) -> pa.Table:
    """One table row per line; ``time_path``: read that dot path as text (never as an Arrow
    timestamp, which would lose the original string). Raises :class:`Irregular`."""
    if not lines or not set(map(type, lines)) <= {bytes}:
        raise Irregular("not all bytes")
    if not all(map(bytes.startswith, map(bytes.lstrip, lines), repeat(b"{"))):
        raise Irregular("a line that is blank or not an object")  # Arrow crashes on `null`
    block = b"\n".join(lines)
    if (b"NaN" in block or b"Infinity" in block) and _NAN_TOKEN.search(block):
        raise Irregular("NaN or Infinity token")
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            raise Irregular("invalid UTF-8") from None
    longest = max(map(len, lines))
    if longest > SAFE_LINE_BYTES and any(
            len(x) > SAFE_LINE_BYTES and x.count(b"[") + x.count(b"{") > MAX_OPENS
            for x in lines):
        raise Irregular("deep nesting")
    schema = _text_schema(time_path) if time_path else None
    try:
        table = pj.read_json(
            io.BytesIO(block),
            read_options=pj.ReadOptions(block_size=max(1 << 20, 2 * longest + 64)),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="infer"))
    except _PARSE_ERRORS as exc:
        raise Unreadable(str(exc)) from None
    if table.num_rows != len(lines):
        raise Irregular("not one object per line")
    return table.combine_chunks()


def _text_schema(path: str) -> pa.Schema:
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
