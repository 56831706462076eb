"""Daemon core throughput in-process (no Kafka): decode only vs the full daemon.

The spec, reference profile and records of ``bench/kafka_throughput.py`` (20 features, 10
slice rules including a cross, binary metrics, drift per slice against a stored profile)
without its Kafka source: lines go straight to ``Daemon.process(Chunk("lines", …))`` in
batches of 20 000 (the Kafka default), then ``flush()`` (which closes the open windows:
their drift tests count). Prints records/s for (a) ``daemon.decoder.decode_lines``
alone and (b) the full daemon, and b/a, for each window size given (``--window``: event-time
records per window; kafka_throughput's default 5m window at 2 000 records/s is 600 000).
Times are wall-clock seconds, best of ``--repeat``.

    .venv/bin/python bench/daemon_throughput.py --records 600000 --window 60000 600000
    .venv/bin/python bench/daemon_throughput.py --records 100000 --profile 30
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_throughput import FEATURES, RATE, SPEC, make_records, reference_profile

from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec

BATCH = 20_000  # the Kafka source's default consume_batch


def spec_text(window_records: int, drift: str = "{drift}") -> str:
    """kafka_throughput's spec without source/checkpoint, with a window of ``window_records``
(rounded to whole seconds: a fractional window size makes records late by float rounding of
window starts in ``EventWindows``)."""
    text = re.sub(r"\nsource:\n(  .*\n)+", "\n", SPEC)
    text = re.sub(r"\ncheckpoint: .*\n", "\n", text)
    text = text.replace("window: 5m", f"window: {round(window_records / RATE)}s")
    return text.format(features=FEATURES, drift=drift)


_PROFILE: list[Path] = []


def load(window_records: int):
    tmp = Path(tempfile.mkdtemp())
    if not _PROFILE:
        _PROFILE.append(reference_profile(spec_text(window_records), tmp))
    path = tmp / "spec.yaml"
    path.write_text(spec_text(window_records, f"profile: {_PROFILE[0]}"))
    return load_spec(str(path))


def decode_only(spec, lines: list[bytes]) -> float:
    daemon = Daemon(spec)
    t = time.perf_counter()
    for i in range(0, len(lines), BATCH):
        daemon.decoder.decode_lines(lines[i:i + BATCH])
    return time.perf_counter() - t


def full(spec, lines: list[bytes]) -> tuple[float, int]:
    daemon = Daemon(spec)
    t = time.perf_counter()
    for i in range(0, len(lines), BATCH):
        daemon.process(Chunk("lines", lines[i:i + BATCH]))
    daemon.flush()
    return time.perf_counter() - t, daemon.summary(0).windows


def best_of_variants(variants: dict, lines: list[bytes], repeat: int,
                     window: int) -> dict[str, float]:
    """Best wall-clock ``full`` time of each spec in ``variants`` (interleaved, ``repeat``
    rounds); prints µs/record, rec/s and the ratio to the first variant."""
    best = {name: float("inf") for name in variants}
    for _ in range(repeat):
        for name, s in variants.items():
            best[name] = min(best[name], full(s, lines)[0])
    n, base = len(lines), next(iter(best.values()))
    print(f"{n:,} records, window {window:,} records, best of {repeat}")
    for name, t in best.items():
        print(f"{name:>6}  {t / n * 1e6:7.2f} µs/record  {n / t:>9,.0f} rec/s  "
              f"ratio {t / base:.3f}")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--window", type=int, nargs="+", default=[60_000, 600_000],
                    help="event-time records per window (several: one run each)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile one full run (last window size), print the top N")
    args = ap.parse_args()
    t = time.perf_counter()
    lines = make_records(args.records)
    print(f"generated {len(lines):,} records, {sum(map(len, lines)) / len(lines):.0f} bytes "
          f"each, in {time.perf_counter() - t:.0f}s", flush=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(full, load(args.window[-1]), lines)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
        return
    print(f"{'records/window':>14}  {'windows':>7}  {'(a) decode rec/s':>16}  "
          f"{'(b) daemon rec/s':>16}  {'b/a':>5}")
    for window in args.window:
        spec = load(window)
        a = min(decode_only(spec, lines) for _ in range(args.repeat))
        runs = [full(spec, lines) for _ in range(args.repeat)]
        b, windows = min(r[0] for r in runs), runs[0][1]
        n = len(lines)
        print(f"{window:>14,}  {windows:>7}  {n / a:>16,.0f}  {n / b:>16,.0f}  {a / b:>5.2f}",
              flush=True)


if __name__ == "__main__":
    main()
