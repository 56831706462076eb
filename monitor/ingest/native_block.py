"""Arrow tables of regular JSON-line blocks built by slicewatch's native reader.

``slicewatch_native`` (``native/``, Rust: serde_json straight into column builders, the GIL
released) reads a block of JSON lines into the Arrow buffers that Apache Arrow's own JSON
reader would build for it, about twice as fast, and declines (``None``) every block it does
not build exactly that way: lists of lists or objects, nulls in lists, a value that changes
kind, duplicate keys, strings Arrow might infer as timestamps, integers beyond int64, ``-0``,
anything but one object per line. :func:`monitor.ingest.arrow_block.read_block` tries it
first and reads a declined block with Arrow, so what the decoder sees does not depend on
which reader built the table (tests/unit/test_native_block.py checks table equality on
generated and hostile blocks).

``make install`` builds the reader (Rust toolchain: cargo). Without it, or with
``SLICEWATCH_NATIVE=0`` in the environment, every block goes to Arrow's reader.

>>> t = native_table(b'{"a": 1, "b": {"c": "x"}}\\n{"a": 2.5}\\n')
>>> t.to_pylist() if t is not None else "not built"
[{'a': 1.0, 'b': {'c': 'x'}}, {'a': 2.5, 'b': None}]
"""

from __future__ import annotations

import os

import pyarrow as pa

try:
    import slicewatch_native as _native
except ImportError:  # not built (no Rust toolchain): Arrow's reader reads every block
    _native = None

_KINDS = {pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "double",
          pa.string(): "string"}
_TYPES = {kind: t for t, kind in _KINDS.items()}


def available() -> bool:
    """Whether the native reader is built and not switched off (``SLICEWATCH_NATIVE=0``)."""
    return _native is not None and os.environ.get("SLICEWATCH_NATIVE", "1") != "0"


def status() -> str:
    """Which reader reads JSON lines, and why (``slicewatch --version`` prints it)."""
    if _native is None:
        return "JSON reader: Arrow's (the native reader is not built: cargo, then make install)"
    if not available():
        return "JSON reader: Arrow's (SLICEWATCH_NATIVE=0)"
    return "JSON reader: native"


def native_table(block: bytes, schema: pa.Schema | None = None) -> pa.Table | None:
    """The table of the JSON lines of ``block`` (one row per line, the final newline
    optional), with ``schema``'s types for its fields; None when the native reader declines
    the block, cannot take the schema, or is not available."""
    if not available():
        return None
    given = None if schema is None else _given(schema)
    if given is False:
        return None
    root = _native.read_block(block, given)  # a struct column: its fields are the table's
    if root is None:
        return None
    columns = root[-1]
    return pa.Table.from_arrays([_array(col) for _, col in columns],
                                names=[name for name, _ in columns])


def _given(fields: pa.Schema | pa.StructType) -> list | bool:
    """``[(name, kind, children)...]`` for the native reader, False for a type it does not
    build (a timestamp, another integer width, a dictionary…)."""
    out = []
    for field in fields:
        if pa.types.is_struct(field.type) or pa.types.is_list(field.type):
            kids = _given([field.type.value_field] if pa.types.is_list(field.type)
                          else field.type)
            if kids is False:
                return False
            out.append((field.name, "list" if pa.types.is_list(field.type) else "struct", kids))
        elif field.type in _KINDS:
            out.append((field.name, _KINDS[field.type], []))
        else:
            return False
    return out


def _array(col: tuple) -> pa.Array:
    kind, n, nulls, valid, values, offsets, kids = col
    if kind == "null":
        return pa.nulls(n)
    bitmap = None if valid is None else pa.py_buffer(valid)
    if kind == "struct":
        children = [_array(child) for _, child in kids]
        fields = [pa.field(name, arr.type)
                  for (name, _), arr in zip(kids, children, strict=True)]
        kind_ = pa.struct(fields)
        return pa.Array.from_buffers(kind_, n, [bitmap], null_count=nulls, children=children)
    if kind == "list":
        item = _array(kids[0][1])
        return pa.Array.from_buffers(pa.list_(item.type), n, [bitmap, pa.py_buffer(offsets)],
                                     null_count=nulls, children=[item])
    buffers = [bitmap, pa.py_buffer(values)]
    if kind == "string":
        buffers.insert(1, pa.py_buffer(offsets))
    return pa.Array.from_buffers(_TYPES[kind], n, buffers, null_count=nulls)
