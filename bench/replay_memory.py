"""Replay memory and speed: does peak memory grow with the number of records?

Generates the demo's fraud stream as JSONL (N records), replays it with the full daemon in a
fresh process per size, and prints records/s and peak RSS next to two baselines measured in
the same run: a process that only imports slicewatch (the floor), and a process that only
reads and JSON-decodes the same file (the practical decode limit).

    .venv/bin/python bench/replay_memory.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from monitor.runtime.demo import DEMO_SPEC, demo_records  # noqa: E402

CHILD = r"""
import resource, sys, time
mode, path, spec_path = sys.argv[1:4]
t0 = time.perf_counter()
n = 0
if mode == "floor":
    import monitor.runtime.app, slices.load  # noqa: F401
elif mode == "decode":
    import orjson
    with open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line); n += 1
else:
    from monitor.runtime.app import RunOptions, run
    from slices.load import load_spec
    import io
    summary = run(load_spec(spec_path), RunOptions(inputs=(path,), listen="", quiet=True),
                  out=io.StringIO())
    n = summary.records
dt = time.perf_counter() - t0
print(n, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def generate(path: str, n: int, per_window: int = 5000) -> None:
    windows = (n + per_window - 1) // per_window
    written = 0
    with open(path, "wb") as fh:
        for records in demo_records(windows, per_window, start=1_785_000_000):
            take = records[: n - written]
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in take))
            written += len(take)
            if written >= n:
                break


def measure(mode: str, path: str, spec: str) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path, spec], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    n, dt, rss = out.stdout.split()
    return int(n), float(dt), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="slicewatch-bench-")
    spec = os.path.join(tmp, "spec.yaml")
    with open(spec, "w") as fh:
        fh.write(DEMO_SPEC % {"path": "unused", "listen": "127.0.0.1:0",
                              "dead": os.path.join(tmp, "dl")})
    _, _, floor = measure("floor", "-", spec)
    print(f"floor (imports only): peak RSS {floor:.0f} MiB")
    print(f"{'records':>10} {'decode-only rec/s':>18} {'daemon rec/s':>13} {'ratio':>6} "
          f"{'decode RSS MiB':>15} {'daemon RSS MiB':>15} {'daemon−floor':>13}")
    rows = []
    for n in args.sizes:
        path = os.path.join(tmp, f"stream-{n}.jsonl")
        t0 = time.perf_counter()
        generate(path, n)
        gen = time.perf_counter() - t0
        dn, dt, drss = measure("decode", path, spec)
        rn, rt, rrss = measure("daemon", path, spec)
        assert dn == rn == n, (dn, rn, n)
        rows.append((n, rrss - floor))
        print(f"{n:>10} {dn / dt:>18,.0f} {rn / rt:>13,.0f} {(rn / rt) / (dn / dt):>6.2f} "
              f"{drss:>15.0f} {rrss:>15.0f} {rrss - floor:>13.0f}   (generated in {gen:.0f}s)")
        os.remove(path)
    if len(rows) > 1:
        (n0, m0), (n1, m1) = rows[0], rows[-1]
        print(f"records ×{n1 / n0:.0f} → daemon memory above the floor ×{m1 / max(m0, 1):.2f}")


if __name__ == "__main__":
    main()
