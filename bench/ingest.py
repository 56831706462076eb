"""Ingest benchmark (issue 13): the daemon on JSONL, Parquet and CSV against bare ``orjson``.

In one run, on the records of ``bench/kafka_throughput.py`` (nested JSON, 16 numeric and 4
categorical features, ~650 bytes), written once as JSONL, Parquet and CSV:

- (a) bare ``orjson.loads`` of each line of the JSONL file (read from disk);
- (b) the daemon replaying the JSONL file: one slice (``overall``), drift of every feature
  and the score against a stored reference profile, binary metrics;
- (b10) the same with kafka_throughput's 10 slice rules (a cross among them);
- (c) the daemon (one slice) on the same records as Parquet; (d) as CSV.

Each daemon run is ``Daemon.run(FileSource(path).chunks())`` as ``slicewatch run`` replays a
file, in a process set up as ``slicewatch run`` sets it up (single-threaded BLAS unless
``OPENBLAS_NUM_THREADS`` says otherwise, glibc keeping freed batch memory); window closes
included (the drift tests count). Wall-clock seconds, best of
``--repeat``; ratios are records/s over (a)'s records/s, all measured in this run.

    .venv/bin/python bench/ingest.py --records 300000
    .venv/bin/python bench/ingest.py --records 100000 --profile 25   # cProfile of (b)
    .venv/bin/python bench/ingest.py --rss 200000,1000000   # peak RSS of (c) by file size
    .venv/bin/python bench/ingest.py --records 200000 --against HEAD~1   # before/after

``--against REV``: the whole code base as it was at git revision ``REV`` (``git archive``
into a temporary directory) against the working tree's, each daemon run in a child process
of its own (the tree's ``monitor``, ``slices`` on its path; timed inside the child, around
``Daemon.run`` only), interleaved: (a), then (b), (b10), (c) and (d) with each tree. Rates
are given by wall clock and by the child's CPU seconds (steadier on a shared machine).

``--rss``: the daemon (one slice) on Parquet files of each size (written 200k records at a
time, event time running on), each in a child process: its peak RSS (``ru_maxrss``) and
time (``VmHWM``); and of reading and decoding the file alone (no daemon state). Reading
must stay flat over file size (batch by batch); the daemon also holds each prediction's id
for label joins (``max_pending``, bounded) and its windows' state.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# SLICEWATCH_BENCH_ROOT: the code base to import (a child of --against runs another tree's)
ROOT = Path(os.environ.get("SLICEWATCH_BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from monitor.cli import keep_batch_memory, single_threaded_blas  # noqa: E402

single_threaded_blas()  # as `slicewatch run` starts: before numpy loads
keep_batch_memory()

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
from kafka_throughput import (  # noqa: E402
    FEATURES,
    RATE,
    SPEC,
    T0,
    make_records,
    reference_profile,
)

from monitor.ingest.file import FileSource  # noqa: E402
from monitor.runtime.daemon import Daemon  # noqa: E402
from slices.load import load_spec  # noqa: E402


def spec_text(slices: int, window_records: int) -> str:
    """kafka_throughput's spec without source/checkpoint; ``slices`` 1: ``overall`` only."""
    text = re.sub(r"\nsource:\n(  .*\n)+", "\n", SPEC)
    text = re.sub(r"\ncheckpoint: .*\n", "\n", text)
    text = text.replace("window: 5m", f"window: {round(window_records / RATE)}s")
    if slices == 1:
        text = re.sub(r"    slices:\n(      .*\n)+", "    slices:\n      - overall: true\n",
                      text)
    return text.format(features=FEATURES, drift="{drift}")


def load(slices: int, window_records: int, tmp: Path, profile: Path):
    path = tmp / f"spec-{slices}.yaml"
    path.write_text(spec_text(slices, window_records).replace("{drift}",
                                                              f"profile: {profile}"))
    return load_spec(str(path))


def bare(path: Path) -> tuple[float, float]:
    """(a): wall and CPU seconds."""
    t, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line)
    return time.perf_counter() - t, time.process_time() - cpu


def daemon_run(spec, path: Path) -> tuple[float, int, float]:
    """Wall seconds, records, CPU seconds of ``Daemon.run`` over ``path``."""
    daemon = Daemon(spec)
    t, cpu = time.perf_counter(), time.process_time()
    summary = daemon.run(FileSource([str(path)], batch_size=20_000).chunks())
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    daemon.close()
    return elapsed, summary.records, cpu


def tree_at(rev: str) -> Path:
    """The code base at git revision ``rev``, extracted into a temporary directory (a
    directory holding a code base is taken as it is)."""
    if Path(rev).is_dir():
        return Path(rev).resolve()
    root = Path(__file__).resolve().parents[1]
    out = Path(tempfile.mkdtemp(prefix="slicewatch-at-"))
    archive = subprocess.run(["git", "archive", rev], cwd=root, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def child_run(root: Path, spec_path: Path, path: Path):
    """A daemon run in a child process importing the code base at ``root``:
    ``(wall seconds, records, CPU seconds)``."""
    def go() -> tuple[float, int, float]:
        out = subprocess.run([sys.executable, __file__, "--run-child", str(spec_path),
                              str(path)], capture_output=True, text=True,
                             env={**os.environ, "SLICEWATCH_BENCH_ROOT": str(root)})
        if out.returncode:
            sys.exit(f"child run at {root} failed:\n{out.stderr[-3000:]}")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        return got["seconds"], got["records"], got["cpu"]
    return go


def run_child(spec_path: str, path: str) -> None:
    """In a child process: one timed daemon run; JSON of seconds, records, CPU seconds."""
    spec = load_spec(spec_path)
    seconds, n, cpu = daemon_run(spec, Path(path))
    print(json.dumps({"seconds": seconds, "records": n, "cpu": cpu}))


def write_files(lines: list[bytes], tmp: Path) -> dict[str, Path]:
    jsonl = tmp / "records.jsonl"
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    frame = records_frame(lines)  # one tag a record: a CSV cell holds one string
    parquet, csv = tmp / "records.parquet", tmp / "records.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False)
    return {"jsonl": jsonl, "parquet": parquet, "csv": csv}


def records_frame(lines: list[bytes]) -> pd.DataFrame:
    frame = pd.json_normalize([orjson.loads(x) for x in lines])
    frame["tags"] = frame["tags"].str[0]
    return frame


def write_parquet(path: Path, total: int, piece: int = 200_000) -> None:
    """``total`` records as Parquet, generated and written ``piece`` at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for k, start in enumerate(range(0, total, piece)):
        lines = make_records(min(piece, total - start), seed=k, t0=T0 + start / RATE)
        table = pa.Table.from_pandas(records_frame(lines), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema), row_group_size=50_000)
    assert writer is not None
    writer.close()


def rss_child(spec_path: str, path: str, mode: str) -> None:
    """In a child process: the daemon over ``path`` (``mode`` daemon), or only the reading
    and decoding of it (``mode`` decode); JSON of records, seconds, peak RSS."""
    spec = load_spec(spec_path)
    if mode == "daemon":
        seconds, n, _ = daemon_run(spec, Path(path))
    else:
        from monitor.ingest.decode_models import decoder_for

        decoder, n = decoder_for(spec), 0
        t = time.perf_counter()
        for chunk in FileSource([path], batch_size=20_000).chunks():
            n += len(decoder.decode_frame(chunk.payload)[0])
        seconds = time.perf_counter() - t
    print(json.dumps({"records": n, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def without_native(run):
    """``run`` with the native JSON reader switched off (Arrow's reader reads every block)."""
    def wrapped():
        os.environ["SLICEWATCH_NATIVE"] = "0"
        try:
            return run()
        finally:
            del os.environ["SLICEWATCH_NATIVE"]
    return wrapped


def peak_rss_mib() -> float:
    """This process's peak RSS: ``VmHWM`` (``ru_maxrss`` would keep the parent's peak
    across fork and exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss(sizes: list[int], window: int, tmp: Path) -> None:
    profile = reference_profile(spec_text(10, window), tmp)
    spec_path = tmp / "spec-1.yaml"
    spec_path.write_text(spec_text(1, window).replace("{drift}", f"profile: {profile}"))
    print(f"{'run':8}  {'records':>10}  {'file MiB':>8}  {'records/s':>10}  {'peak RSS MiB':>12}")
    for n in sizes:
        path = tmp / f"rss-{n}.parquet"
        write_parquet(path, n)
        for mode in ("decode", "daemon"):
            out = subprocess.run([sys.executable, __file__, "--rss-child", str(spec_path),
                                  str(path), mode], capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            if got["records"] != n:
                sys.exit(f"{n}: {got['records']} records kept")
            print(f"{mode:8}  {n:>10,}  {path.stat().st_size / 2**20:>8.0f}  "
                  f"{n / got['seconds']:>10,.0f}  {got['peak_rss_mib']:>12.0f}", flush=True)
        path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--window", type=int, default=100_000, help="event-time records a window")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile one (b) run, print the top N functions, and stop")
    ap.add_argument("--rss", metavar="N,N,...",
                    help="peak RSS of (c) on Parquet files of these sizes, and stop")
    ap.add_argument("--against", metavar="REV",
                    help="the code base at git revision REV (or in directory REV) against "
                         "the working tree's (each daemon run in a child process)")
    ap.add_argument("--arrow-rows", action="store_true",
                    help="also (b) and (b10) with the native JSON reader off "
                         "(SLICEWATCH_NATIVE=0: every block through Arrow's reader)")
    ap.add_argument("--run-child", nargs=2, metavar=("SPEC", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--rss-child", nargs=3, metavar=("SPEC", "PARQUET", "MODE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    if args.run_child:
        run_child(*args.run_child)
        return
    tmp = Path(tempfile.mkdtemp())
    if args.rss:
        rss([int(x) for x in args.rss.split(",")], args.window, tmp)
        return
    t = time.perf_counter()
    profile = reference_profile(spec_text(10, args.window), tmp)
    lines = make_records(args.records)
    files = write_files(lines, tmp)
    size = sum(map(len, lines)) / len(lines)
    del lines
    print(f"profile + {args.records:,} records of {size:.0f} bytes as JSONL, Parquet, CSV in "
          f"{time.perf_counter() - t:.0f}s", flush=True)
    one, ten = load(1, args.window, tmp, profile), load(10, args.window, tmp, profile)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(daemon_run, one, files["jsonl"])
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
        return

    def run_bare() -> tuple[float, int, float]:
        wall, cpu = bare(files["jsonl"])
        return wall, args.records, cpu

    runs = {"(a) orjson.loads per line": run_bare,
            "(b) daemon, JSONL, 1 slice": lambda: daemon_run(one, files["jsonl"]),
            "(b10) daemon, JSONL, 10 slice rules": lambda: daemon_run(ten, files["jsonl"]),
            "(c) daemon, Parquet, 1 slice": lambda: daemon_run(one, files["parquet"]),
            "(d) daemon, CSV, 1 slice": lambda: daemon_run(one, files["csv"])}
    if args.arrow_rows:  # the same runs with the native JSON reader off: Arrow's reads
        for name in ("(b) daemon, JSONL, 1 slice", "(b10) daemon, JSONL, 10 slice rules"):
            runs[f"{name}, Arrow's reader"] = without_native(runs[name])
    if args.against:
        old, here = tree_at(args.against), Path(__file__).resolve().parents[1]
        data = {"(b)": ("jsonl", 1), "(b10)": ("jsonl", 10), "(c)": ("parquet", 1),
                "(d)": ("csv", 1)}
        runs = {"(a) orjson.loads per line": runs["(a) orjson.loads per line"]} | {
            f"{name} {label}": child_run(root, tmp / f"spec-{data[name.split()[0]][1]}.yaml",
                                         files[data[name.split()[0]][0]])
            for name in runs if name.split()[0] in data
            for label, root in ((f"@{args.against}", old), ("now", here))}
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for _ in range(args.repeat):  # interleaved: a slow spell of the machine hits every row
        for name, run in runs.items():
            seconds, n, *cpu = run()
            if n != args.records:
                sys.exit(f"{name}: {n} records kept of {args.records}")
            best[name] = min(best.get(name, float("inf")), seconds)
            if cpu:
                best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu[0])
    base = args.records / best["(a) orjson.loads per line"]
    base_cpu = args.records / best_cpu.get("(a) orjson.loads per line", float("nan"))
    print(f"{'run':48}  {'records/s':>10}  {'/ (a)':>6}  {'CPU rec/s':>10}  {'/ (a)':>6}")
    for name, seconds in best.items():
        rate = args.records / seconds
        cpu_rate = args.records / best_cpu.get(name, float("nan"))
        print(f"{name:48}  {rate:>10,.0f}  {rate / base:>6.2f}  {cpu_rate:>10,.0f}  "
              f"{cpu_rate / base_cpu:>6.2f}")


if __name__ == "__main__":
    main()
