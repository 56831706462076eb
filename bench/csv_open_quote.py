"""CPU of `slicewatch run` on a CSV file whose quoted field opens early and never closes,
by size after it (0, 10, 40 MB), interleaved child processes: linear reading costs the
same per MB at 10 and 40 MB (ratio of the extra CPU ≈ 4), quadratic ≈ 16.

    .venv/bin/python bench/csv_open_quote.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile

SPEC = """
schema: {time: ts, score: score, label: label}
source: {type: file, path: x.csv, dead_letter: dead.jsonl}
models:
  - {name: m, task: binary, window: 100 records, metrics: [count]}
"""


def make(path: str, mb: int) -> None:
    with open(path, "w") as f:
        f.write("ts,score,label\n")
        f.writelines(f"{1_700_000_000 + i},0.5,1\n" for i in range(100))
        f.write('1700000200,0.5,"open\n')
        f.write("1700000300,0.5,1\n" * (mb * 1_000_000 // 17))


def cpu(spec: str, data: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", spec, "-i", data,
                    "--listen", "", "-q"], check=False, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.yaml")
        with open(spec, "w") as f:
            f.write(SPEC)
        sizes = (0, 10, 40)
        for mb in sizes:
            make(os.path.join(tmp, f"{mb}.csv"), mb)
        best = {mb: float("inf") for mb in sizes}
        for _ in range(args.repeat):
            for mb in sizes:
                best[mb] = min(best[mb], cpu(spec, os.path.join(tmp, f"{mb}.csv")))
        for mb in sizes:
            extra = best[mb] - best[0]
            per = f"{extra / mb:.3f} s/MB" if mb else "(start-up, decode of 100 rows)"
            print(f"{mb:>3} MB after the open quote: {best[mb]:.2f} CPU-s  {per}")
        print(f"extra CPU 40 MB / 10 MB: {(best[40] - best[0]) / (best[10] - best[0]):.2f} "
              "(linear 4, quadratic 16)")


if __name__ == "__main__":
    main()
