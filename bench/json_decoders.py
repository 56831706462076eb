"""JSON-lines decoder candidates (issue 13) on one block of the bench's records, CPU seconds.

On ``--lines`` records of ``bench/kafka_throughput.py`` (nested, 20 features, ~650 bytes),
one block as a file holds them, each candidate run ``--repeat`` times, interleaved (a slow
spell of the shared machine hits every row); the median CPU seconds of a run (process
time: steadier than wall clock on a shared machine) as records per CPU second, and the
ratio to bare ``orjson.loads`` per line:

- parsing only: ``orjson.loads`` per line; ``orjson`` over the block as one JSON array;
  msgspec typed structs made for these records (``Decoder(Record).decode_lines`` of the
  block, structs without GC tracking) if msgspec is installed (it is not a dependency);
  DuckDB (if installed; not a dependency) on one thread: ``read_json`` of the block's file
  with the columns' types given, into an Arrow table, and ``json_transform`` of an Arrow
  string array of the lines (the in-memory path Kafka's values would need: DuckDB reads
  file-like objects only through fsspec); polars ``read_ndjson`` with a schema (if
  installed; not a dependency);
  Arrow's ``read_json`` as the decoder called it before (1 MiB blocks, threads, every type
  inferred) and now (one Arrow block, the types of the block before given);
- parsing into the columns a ``RecordBatch`` holds: msgspec structs, then a column per
  field (``attrgetter`` over the structs); ``ArrowDecoder.decode_lines`` on a list of lines
  (Kafka's values) and on a file's block as it lies in the file
  (:class:`monitor.ingest.lines.Lines`).

    PYTHONPATH=. .venv/bin/python bench/json_decoders.py --lines 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

import numpy as np
import orjson
import pyarrow.json as pj

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import spec_text
from kafka_throughput import CATEGORICAL, NUMERIC, make_records

from monitor.ingest.arrow_block import learned, read_block
from monitor.ingest.decode_models import decoder_for
from monitor.ingest.lines import plain_lines
from slices.load import load_spec


def msgspec_candidates(lines: list[bytes], block: bytes) -> dict[str, Callable[[], object]]:
    """msgspec typed structs for these records: parsing, and parsing into columns."""
    try:
        import msgspec
    except ImportError:
        print("msgspec not installed: its rows are left out", file=sys.stderr)
        return {}
    feats = msgspec.defstruct("Features", [(n, float) for n in NUMERIC]
                              + [(k, str) for k in CATEGORICAL], gc=False)
    pred = msgspec.defstruct("Prediction", [("score", float)], gc=False)
    record = msgspec.defstruct("Record", [
        ("model", str), ("model_version", str), ("prediction_id", str), ("timestamp", float),
        ("prediction", pred), ("label", int), ("tags", list[str]), ("outcome", str),
        ("features", feats)], gc=False)
    decoder = msgspec.json.Decoder(record)
    numeric = attrgetter(*NUMERIC)

    def columns() -> object:
        recs = decoder.decode_lines(block)
        fs = list(map(attrgetter("features"), recs))
        out = {"num": np.array(list(map(numeric, fs)))}
        for k in CATEGORICAL:
            out[k] = np.fromiter(map(attrgetter(k), fs), object, len(fs))
        for k in ("model", "model_version", "prediction_id", "outcome", "label", "tags"):
            out[k] = np.fromiter(map(attrgetter(k), recs), object, len(recs))
        for k in ("timestamp", "prediction.score"):
            out[k] = np.fromiter(map(attrgetter(k), recs), float, len(recs))
        return out

    return {"msgspec structs, decode_lines (parse only)": lambda: decoder.decode_lines(block),
            "msgspec structs + columns": columns}


def duckdb_candidates(lines: list[bytes], path: Path) -> dict[str, Callable[[], object]]:
    """DuckDB's JSON readers on one thread, the records' types given (never inferred: its
    inference reads the block twice, ≈ 7× ``orjson``'s CPU here)."""
    try:
        import duckdb
        import pyarrow as pa
    except ImportError:
        print("duckdb not installed: its rows are left out", file=sys.stderr)
        return {}
    con = duckdb.connect()
    con.execute("SET threads=1")
    feats = ", ".join([f"{n} DOUBLE" for n in NUMERIC] + [f"{k} VARCHAR" for k in CATEGORICAL])
    columns = ("{model: 'VARCHAR', model_version: 'VARCHAR', prediction_id: 'VARCHAR', "
               "timestamp: 'DOUBLE', prediction: 'STRUCT(score DOUBLE)', label: 'BIGINT', "
               f"tags: 'VARCHAR[]', outcome: 'VARCHAR', features: 'STRUCT({feats})'}}")
    structure = orjson.dumps({
        "model": "VARCHAR", "model_version": "VARCHAR", "prediction_id": "VARCHAR",
        "timestamp": "DOUBLE", "prediction": {"score": "DOUBLE"}, "label": "BIGINT",
        "tags": ["VARCHAR"], "outcome": "VARCHAR",
        "features": {**dict.fromkeys(NUMERIC, "DOUBLE"), **dict.fromkeys(CATEGORICAL, "VARCHAR")},
    }).decode()
    read = (f"select * from read_json('{path}', format='newline_delimited', "
            f"columns={columns})")
    ends = np.cumsum([0] + [len(line) for line in lines], dtype=np.int32)
    text = pa.StringArray.from_buffers(len(lines), pa.py_buffer(ends.tobytes()),
                                       pa.py_buffer(b"".join(lines)))
    con.register("block_lines", pa.table({"line": text}))
    transform = f"select unnest(json_transform_strict(line, '{structure}')) from block_lines"
    return {"DuckDB read_json of the file, types given": lambda: con.sql(read).to_arrow_table(),
            "DuckDB json_transform of Arrow lines": lambda: con.sql(transform).to_arrow_table()}


def polars_candidates(block: bytes) -> dict[str, Callable[[], object]]:
    """polars ``read_ndjson`` with the records' schema, on one thread if POLARS_MAX_THREADS=1."""
    try:
        import polars as pl
    except ImportError:
        print("polars not installed: its row is left out", file=sys.stderr)
        return {}
    schema = {
        "model": pl.String, "model_version": pl.String, "prediction_id": pl.String,
        "timestamp": pl.Float64, "prediction": pl.Struct({"score": pl.Float64}),
        "label": pl.Int64, "tags": pl.List(pl.String), "outcome": pl.String,
        "features": pl.Struct({**dict.fromkeys(NUMERIC, pl.Float64),
                               **dict.fromkeys(CATEGORICAL, pl.String)}),
    }
    return {"polars read_ndjson, schema given": lambda: pl.read_ndjson(io.BytesIO(block),
                                                                       schema=schema)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    lines = make_records(args.lines)
    block = b"\n".join(lines) + b"\n"
    whole = plain_lines(block, 1 << 20)
    assert whole is not None
    tmp = Path(tempfile.mkdtemp()) / "spec.yaml"
    block_file = tmp.with_name("block.jsonl")
    block_file.write_bytes(block)
    tmp.write_text(spec_text(1, 100_000).replace("{drift}", "rolling_windows: 3"))
    decoder = decoder_for(load_spec(str(tmp)))
    known = learned(read_block(whole).schema)

    def orjson_lines() -> None:
        for line in lines:
            orjson.loads(line)

    def arrow_before() -> object:
        return pj.read_json(io.BytesIO(block), read_options=pj.ReadOptions(block_size=1 << 20),
                            parse_options=pj.ParseOptions(unexpected_field_behavior="infer")
                            ).combine_chunks()

    runs: dict[str, Callable[[], object]] = {
        "(a) orjson.loads per line": orjson_lines,
        "orjson, the block as one array": lambda: orjson.loads(b"[" + b",".join(lines) + b"]"),
        **msgspec_candidates(lines, block),
        **duckdb_candidates(lines, block_file),
        **polars_candidates(block),
        "Arrow read_json as before (1 MiB, threads, infer)": arrow_before,
        "Arrow read_block now (one block, known types)": lambda: read_block(whole, known),
        "ArrowDecoder.decode_lines, list of lines": lambda: decoder.decode_lines(lines),
        "ArrowDecoder.decode_lines, file block (Lines)": lambda: decoder.decode_lines(whole),
    }
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    gc.disable()  # as the decoder runs (monitor.ingest.decode._gc_paused)
    for _ in range(args.repeat):
        for name, run in runs.items():
            c = time.process_time()
            run()
            cpu[name].append(time.process_time() - c)
    gc.enable()
    base = args.lines / statistics.median(cpu["(a) orjson.loads per line"])
    print(f"{'candidate':52}  {'rec/CPU-s':>10}  {'/ (a)':>6}")
    for name, seconds in cpu.items():
        rate = args.lines / statistics.median(seconds)
        print(f"{name:52}  {rate:>10,.0f}  {rate / base:>6.2f}")
    print(f"fast blocks {decoder.fast_blocks}, per-record blocks {decoder.slow_blocks}")


if __name__ == "__main__":
    main()
