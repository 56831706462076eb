"""The checkpoint state encoding: explicit, versioned plain data — nothing on the load path
can run code (see docs/checkpoint-state.md).

A state blob is ``MAGIC`` + one format byte + a MessagePack document of plain values: None,
bool, int, float (non-finite included), str, bytes, list, dict (str, int, float or tuple
keys), and four extension types, each rebuilt by a fixed function, never by a name read from
the blob:

- ``tuple``: a packed list;
- ``array.array`` of numbers: typecode + machine bytes (reservoir samples and keys);
- ``numpy.ndarray`` of booleans or numbers: dtype + shape + bytes (never ``object``);
- a reference to an array met earlier in the same blob (a keys array shared by the
  reservoirs of a slice is stored once); each reference counts its full size against the
  decoded-size bound, so references cannot expand a small blob into a large state.

Bounds on load: the blob (``max_bytes``), the decoded arrays and references
(``4 × max_bytes``), containers (``max_bytes // 8``), nesting (msgpack's own stack limit).
Any violation is a :class:`StateError` naming the bound.

>>> import math
>>> decode_state(encode_state({"w": -math.inf, "k": [1, (2, "x")], 3: b"raw"}))
{'w': -inf, 'k': [1, (2, 'x')], 3: b'raw'}
>>> try:
...     decode_state(b"\\x80\\x05junk")
... except StateError as exc:
...     print(str(exc)[:63])
checkpoint state is in the pickle format of an older slicewatch
"""

from __future__ import annotations

import array
from typing import Any

import msgpack
import numpy as np

from slices.errors import SlicewatchError

MAGIC = b"SWST"
FORMAT = 2  # 1 was pickle (with zlib-JSON before it); refused
MAX_STATE_BYTES = 1 << 30  # SQLite's own limit on one BLOB is 1e9 bytes

_TUPLE, _ARRAY, _NDARRAY, _REF = 1, 2, 3, 4
_TYPECODES = frozenset("bBhHiIlLqQfd")
_DTYPE_KINDS = frozenset("biuf")


class StateError(SlicewatchError):
    """A state blob that is not a valid checkpoint state of this format, or is too large."""


def encode_state(state: Any) -> bytes:
    """Plain data → bytes (see the module docstring for what plain data is)."""
    memo: dict[int, tuple[Any, int]] = {}  # id(array) → (array, its index)

    def default(obj: Any) -> msgpack.ExtType:
        if isinstance(obj, tuple):
            return msgpack.ExtType(_TUPLE, pack(list(obj)))
        if isinstance(obj, np.generic):
            return default_plain(obj.item())
        if isinstance(obj, array.array | np.ndarray):
            hit = memo.get(id(obj))
            if hit is not None and hit[0] is obj:
                return msgpack.ExtType(_REF, hit[1].to_bytes(4, "little"))
            memo[id(obj)] = (obj, len(memo))
            if isinstance(obj, array.array):
                return msgpack.ExtType(_ARRAY, obj.typecode.encode() + obj.tobytes())
            if obj.dtype.kind not in _DTYPE_KINDS:
                raise StateError(f"cannot checkpoint an array of dtype {obj.dtype}")
            arr = np.ascontiguousarray(obj)
            return msgpack.ExtType(_NDARRAY, pack([arr.dtype.str, list(arr.shape),
                                                   arr.tobytes()]))
        raise StateError(f"cannot checkpoint a value of type {type(obj).__name__}: "
                         "state must be plain data")

    def default_plain(value: Any) -> Any:
        if type(value) in (bool, int, float, str, bytes):
            return value
        return default(value)

    def pack(obj: Any) -> bytes:
        return msgpack.packb(obj, default=default, strict_types=True, use_bin_type=True)

    try:
        return MAGIC + bytes([FORMAT]) + pack(state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StateError(f"cannot checkpoint the state: {exc}") from None


def decode_state(blob: bytes, *, max_bytes: int = MAX_STATE_BYTES) -> Any:
    """Inverse of :func:`encode_state`, within the bounds; raises :class:`StateError`."""
    if len(blob) > max_bytes:
        raise StateError(f"checkpoint state is {len(blob)} bytes, over the bound of "
                         f"{max_bytes} bytes")
    if blob[:len(MAGIC)] != MAGIC:
        raise StateError(f"checkpoint state is in {_older_format(blob)}, which is no "
                         "longer read (it could run code); delete the checkpoint database to "
                         "start afresh")
    if blob[len(MAGIC):len(MAGIC) + 1] != bytes([FORMAT]):
        raise StateError(f"checkpoint state has format {blob[len(MAGIC):len(MAGIC) + 1]!r}; "
                         f"this slicewatch reads format {FORMAT} only")
    return _Decoder(max_bytes).decode(blob[len(MAGIC) + 1:])


def _older_format(blob: bytes) -> str:
    if blob[:1] == b"\x80":
        return "the pickle format of an older slicewatch"
    if blob[:1] == b"\x78":
        return "the zlib-JSON format of an older slicewatch"
    return "an unknown format"


class _Decoder:
    """One decode: the arrays met so far (for references) and the budgets left."""

    def __init__(self, max_bytes: int):
        self.arrays: list[Any] = []
        self.expanded = 4 * max_bytes  # bytes of arrays and references still allowed
        self.containers = max(max_bytes // 8, 1024)

    def decode(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, ext_hook=self.ext, strict_map_key=False,
                                   list_hook=self.count, object_hook=self.count)
        except StateError:
            raise
        except (ValueError, TypeError, RecursionError, MemoryError, msgpack.UnpackException,
                OverflowError) as exc:
            raise StateError(f"checkpoint state is not valid: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None

    def count(self, value: Any) -> Any:
        self.containers -= 1
        if self.containers < 0:
            raise StateError("checkpoint state holds more containers than its size allows")
        return value

    def spend(self, n: int) -> None:
        self.expanded -= n
        if self.expanded < 0:
            raise StateError("checkpoint state expands beyond its bound (arrays and "
                             "references to them)")

    def ext(self, code: int, data: bytes) -> Any:
        if code == _TUPLE:
            return tuple(self.decode(data))
        if code == _REF:
            index = int.from_bytes(data, "little")
            if len(data) != 4 or index >= len(self.arrays):
                raise StateError("checkpoint state refers to an array it does not hold")
            target = self.arrays[index]
            self.spend(target.nbytes if isinstance(target, np.ndarray)
                       else len(target) * target.itemsize)
            return target
        if code == _ARRAY:
            typecode = data[:1].decode("latin-1")
            if typecode not in _TYPECODES:
                raise StateError(f"checkpoint state holds an array of typecode {typecode!r}")
            out = array.array(typecode)
            if (len(data) - 1) % out.itemsize:
                raise StateError("checkpoint state holds a truncated array")
            self.spend(len(data) - 1)
            out.frombytes(data[1:])
        elif code == _NDARRAY:
            out = self._ndarray(data)
        else:
            raise StateError(f"checkpoint state holds an unknown extension type {code}")
        self.arrays.append(out)
        return out

    def _ndarray(self, data: bytes) -> np.ndarray:
        parts = msgpack.unpackb(data, strict_map_key=True)
        ok = (isinstance(parts, list) and len(parts) == 3 and isinstance(parts[0], str)
              and isinstance(parts[1], list) and isinstance(parts[2], bytes)
              and all(type(d) is int and d >= 0 for d in parts[1]))
        if not ok:
            raise StateError("checkpoint state holds a malformed array")
        dtype = np.dtype(parts[0])
        if dtype.kind not in _DTYPE_KINDS:
            raise StateError(f"checkpoint state holds an array of dtype {dtype}")
        shape = tuple(parts[1])
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(parts[2]):
            raise StateError("checkpoint state holds an array whose shape does not match "
                             "its bytes")
        self.spend(len(parts[2]))
        return np.frombuffer(parts[2], dtype=dtype).reshape(shape).copy()
