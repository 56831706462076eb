"""CSV rows read by Arrow a batch at a time, typed as pandas types them, or :class:`Irregular`.

A block is the next ``batch_size`` lines of the file, exactly the rows the per-row path
(:mod:`monitor.ingest.csvrows`: each row checked, then ``pandas.read_csv`` over the batch)
would batch together. Arrow's CSV reader parses a block only when nothing in it could make
the two differ: every line valid UTF-8, none blank or longer than the limit, no bare ``\\r``,
no quoted field spanning lines, every ``"`` around a whole field, the same number of fields
in every row (Arrow refuses a ragged row). Every column is read as text (the explicit column
type) and then given the type ``pandas.read_csv`` infers for the batch: its null markers
become nulls, a column of integers is int64 (float64 when some cell is null), of numbers
float64, of ``true``/``false`` booleans. Text that pandas could read as something else
(``+1``, `` 1``, ``inf``, 20-digit integers) makes the block irregular: the caller reads it
row by row, which names every bad row (``bad_csv_row``, ``bad_encoding``, ``too_large``,
``empty_line``).

>>> t = parse_block(b'1,US,"a,b"\\n,BR,x\\n', ["n", "c", "t"])
>>> [pandas_typed(t.column(k).combine_chunks()).to_pylist() for k in ("n", "c", "t")]
[[1.0, None], ['US', 'BR'], ['a,b', 'x']]
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from monitor.ingest.arrow_block import Irregular
from monitor.ingest.lines import Pushback, plain_lines, read_lines

__all__ = ["CsvBatch", "Irregular", "Pushback", "pandas_typed", "parse_block", "read_lines",
           "regular"]

# pandas' default null markers (pandas._libs.parsers.STR_NA_VALUES) and booleans
NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_TRUE = ["True", "TRUE", "true"]
_FALSE = ["False", "FALSE", "false"]
_NA, _BOOLS, _TRUES = pa.array(NA_VALUES), pa.array(_TRUE + _FALSE), pa.array(_TRUE)
_INT = r"^-?[0-9]{1,18}$"
_FLOAT = (r"^-?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)[eE][-+]?[0-9]{1,2}"
          r"|[0-9]+\.[0-9]*|\.[0-9]+|[0-9]{1,18})$")
_NUMBERISH = r"(?i)^\s*[-+]?(?:\.?[0-9]|inf|nan)|[0-9]\s+$"  # pandas might read a number
_QUOTED = re.compile(r'(?:(?<=,)|^)"(?:[^"\n]|"")*"(?=,|\r?$)', re.M)


def regular(block: bytes, limit: int) -> bool:
    """Whether the per-row path would keep every line of ``block`` as one row, as Arrow
    reads it (see the module doc)."""
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if plain_lines(block, limit) is None:
        return False
    if b'"' not in block:
        return True
    buf = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(buf == 10)
    quotes = np.cumsum(buf == 34)
    if ends.size and (quotes[ends] % 2).any():
        return False  # a quoted field goes on on the next line
    return '"' not in _QUOTED.sub("", block.decode("utf-8"))


class CsvBatch:
    """One batch of CSV rows: the ``header`` line and the ``block`` of rows as read, and the
    rows as columns of text (``text_table``). A decoder types the columns it uses with
    :meth:`typed`; when it cannot, :meth:`parse_rows` gives pandas' frame of the rows (and
    the rows pandas refuses, as rejects), exactly as the row-by-row path would."""

    def __init__(self, header: bytes, block: bytes, text_table: pa.Table, limit: int):
        self.header, self.block, self.text_table, self.limit = header, block, text_table, limit

    def __len__(self) -> int:
        return self.text_table.num_rows

    @staticmethod
    def typed(text: pa.Array) -> pa.Array:
        return pandas_typed(text)

    def parse_rows(self) -> tuple[Any, list[Any]]:
        from monitor.ingest.csvrows import CsvRows

        rows = CsvRows(self.header, self.limit)
        lines = self.block.split(b"\n")
        if not lines[-1]:
            lines.pop()
        rows.rows = [line + b"\n" for line in lines]
        frame, refused, _ = rows.take()  # refused: with their index (a row, a line each)
        return frame, refused

    def to_pandas(self) -> Any:
        return self.parse_rows()[0]


def parse_block(block: bytes, names: list[str]) -> pa.Table:
    """The rows of ``block`` (no header) as columns of text named ``names``. Raises
    :class:`Irregular` (Arrow refuses it, or pandas would name the columns otherwise)."""
    if len(set(names)) != len(names) or "" in names or names[0].startswith("\ufeff"):
        raise Irregular("header pandas would rename")
    try:
        table = pcsv.read_csv(
            io.BytesIO(block),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False,
                                          block_size=max(1 << 20, 2 * len(block))),
            parse_options=pcsv.ParseOptions(newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowException as exc:
        raise Irregular(str(exc)) from None
    return table


def pandas_typed(text: pa.Array) -> pa.Array:
    """A text column as ``pandas.read_csv`` types it (see the module doc). Each rule is
    tried on the first values before the whole column."""
    null = pc.is_in(text, value_set=_NA)
    n_null = pc.sum(null).as_py() or 0
    if n_null == len(text):
        return pa.nulls(len(text))
    values = pc.if_else(null, pa.scalar(None, pa.string()), text) if n_null else text
    present = values.drop_null() if n_null else values
    probe = present.slice(0, 16)

    def every(test: Callable[[pa.Array], pa.Array]) -> bool:
        return bool(pc.all(test(probe)).as_py()) and bool(pc.all(test(present)).as_py())

    if every(lambda v: pc.match_substring_regex(v, _INT)):
        ints = values.cast(pa.int64())
        return ints.cast(pa.float64()) if n_null else ints
    if every(lambda v: pc.is_in(v, value_set=_BOOLS)):
        bools = pc.is_in(values, value_set=_TRUES)
        return pc.if_else(null, pa.scalar(None, pa.bool_()), bools) if n_null else bools
    if every(lambda v: pc.match_substring_regex(v, _FLOAT)):
        return values.cast(pa.float64())
    if pc.any(pc.match_substring_regex(present, _NUMBERISH)).as_py():
        raise Irregular("text pandas might read as a number")
    return values
