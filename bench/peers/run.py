"""The drift job against peers (issue 13): slicewatch, Evidently's DataDriftPreset and a plain
scipy loop on the same Parquet files, each in its own process, in one run.

Data: ``--reference`` rows (default 200 000) and ``--current`` rows (default 1 000 000) of
20 features (12 numeric, 8 categorical with 3 to 12 values), written once as Parquet in the
record shape of a spec (``features.<name>`` columns, ``prediction.score``, ``timestamp``,
``model``); the current rows are drifted on 3 numeric and 2 categorical features.

- (i) slicewatch: ``slicewatch baseline build`` (the reference profile) then ``slicewatch
  run`` replaying the current Parquet file: one slice (``overall``), drift of every feature
  against the profile (its default tests: ``ks`` numeric, ``chi2`` categorical, BH FDR), all
  current rows in one window, no HTTP server. Two processes; wall times added, peak memory the
  larger of the two.
- (ii) Evidently 0.7: ``Report([DataDriftPreset()]).run(current, reference)`` on the 20
  feature columns read from the same files (pandas frames; its defaults: Wasserstein
  distance for numeric, Jensen-Shannon for categorical columns on data this size).
- (iii) scipy: per column, ``ks_2samp`` (numeric, all rows) or ``chi2_contingency`` of the
  value counts (categorical), from the same frames.

slicewatch runs from this tree (``PYTHONPATH``), its packages byte-compiled first
(``compileall``, as installing a wheel does, and as the peers' installed scipy, pandas and
Evidently are): under ``PYTHONDONTWRITEBYTECODE=1`` a tree never compiled is compiled again
in every process, ≈ 0.25–0.3 CPU-s each, which no installed slicewatch pays
(``--no-compile``: measure that way).

Every job runs as a child process started from here; reported: wall seconds from spawn to exit
(reading the Parquet files included for all three), CPU seconds (user + system, from
``wait4``: on a shared machine wall time mostly measures the other tenants), the child's peak
RSS (``ru_maxrss``), the features each job found drifted, and the ratios against slicewatch.

    bench/peers/make-venv /work/tmp/peers-venv        # once: Evidently 0.7 + pandas < 3
    .venv/bin/python bench/peers/run.py --peers-python /work/tmp/peers-venv/bin/python
    .venv/bin/python bench/peers/run.py --peers-python ... --reference 50000 --current 250000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NUMERIC = [f"n{i:02d}" for i in range(12)]
CATEGORICAL = {f"c{i}": [f"v{j}" for j in range(3 + (i * 9) // 7)] for i in range(8)}
DRIFTED = ("n00", "n01", "n02", "c0", "c1")
DAY = 86_400.0
T0 = 20_602 * DAY  # a day boundary: every current row falls into one 1-day window
STEP = 0.05  # event seconds between rows (1M rows: 14 hours)

SPEC = """\
version: 1
source: {{type: file, path: {current}}}
models:
  - name: drift
    task: binary
    window: 1d
    allowed_lateness: 0s
    metrics: [count]
    features:
{features}
    slices:
      - overall: true
    drift: {{profile: {profile}}}
"""


def make_frame(n: int, seed: int, drifted: bool, t0: float) -> Any:
    """``n`` rows of the record shape (a ``pyarrow.Table``); ``drifted``: the current data's
    shifts."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "model": pa.array(np.full(n, "drift", dtype=object), pa.string()),
        "timestamp": pa.array(t0 + np.arange(n) * STEP),
        "prediction.score": pa.array(rng.random(n).round(5)),
    }
    for i, name in enumerate(NUMERIC):
        x = rng.normal(10.0 * i, 1.0 + i, n)
        if drifted and name == "n00":
            x = x + 0.3  # a location shift of 0.3 σ
        elif drifted and name == "n01":
            x = 1.0 + (x - 10.0) * 1.5 + 10.0  # wider
        elif drifted and name == "n02":
            x = np.where(rng.random(n) < 0.2, x + 5.0 * (1 + i), x)  # a 20 % bump
        cols[f"features.{name}"] = pa.array(x.round(4))
    for i, (name, values) in enumerate(CATEGORICAL.items()):
        k = len(values)
        p = np.arange(1, k + 1, dtype=np.float64)
        if drifted and name in DRIFTED:
            p = p[::-1] ** (1 + i)  # mass moves to the first values
        codes = rng.choice(k, n, p=p / p.sum())
        cols[f"features.{name}"] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32)), pa.array(values)).cast(pa.string())
    return pa.table(cols)


def write_data(tmp: Path, n_ref: int, n_cur: int) -> tuple[Path, Path]:
    import pyarrow.parquet as pq

    ref, cur = tmp / "reference.parquet", tmp / "current.parquet"
    pq.write_table(make_frame(n_ref, 1, False, T0 - DAY), ref, row_group_size=100_000)
    pq.write_table(make_frame(n_cur, 2, True, T0), cur, row_group_size=100_000)
    return ref, cur


def write_spec(tmp: Path, cur: Path) -> Path:
    features = "\n".join([f"      {f}: numeric" for f in NUMERIC]
                         + [f"      {f}: categorical" for f in CATEGORICAL])
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC.format(current=cur, features=features, profile=tmp / "profile.json"),
                    encoding="utf-8")
    return spec


PACKAGES = ("monitor", "slices", "alerts")


def compile_tree(env: dict[str, str]) -> None:
    """Byte-compile slicewatch's packages in place (``__pycache__``, ignored by git), in a
    child process: ``compileall`` writes them whatever ``PYTHONDONTWRITEBYTECODE`` says, and
    the interpreter reads them as long as their sources are unchanged."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / p) for p in PACKAGES)],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def child(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float, str]:
    """Seconds from spawn to exit, CPU seconds (user + system), peak RSS (MiB, the child's
    ru_maxrss) and its stdout.

    A child's ru_maxrss counts this process's resident memory at the spawn (Linux keeps the
    high-water mark across ``exec``, and the child starts as a copy, or a ``vfork``, of this
    one): this process therefore holds no data (the files are written by a child of their
    own, :func:`main`) and stays at a few MiB, printed as ``the measuring process``."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[:4]}… exited with {proc.returncode}:\n{out}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def _rss_mib() -> float:
    """This process's resident memory (MiB; Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return float("nan")


def drifted_of(results: Path) -> list[str]:
    """The features slicewatch flagged drifted in its one window (the --results file)."""
    found: set[str] = set()
    for line in results.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("type", "result") == "result":
            found.update(d["feature"] for d in rec.get("extra", {}).get("drift", [])
                         if d.get("status") == "drift")
    return sorted(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers-python", default=str(HERE / ".venv" / "bin" / "python"),
                    help="the interpreter of bench/peers/make-venv's venv")
    ap.add_argument("--reference", type=int, default=200_000)
    ap.add_argument("--current", type=int, default=1_000_000)
    ap.add_argument("--only", choices=("slicewatch", "evidently", "scipy"), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not byte-compile slicewatch's packages first")
    ap.add_argument("--write-data", metavar="DIR", help=argparse.SUPPRESS)  # the data's child
    args = ap.parse_args()
    if args.write_data:
        write_data(Path(args.write_data), args.reference, args.current)
        return
    tmp = Path(tempfile.mkdtemp(prefix="sw-peers-"))
    try:
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-data", str(tmp), "--reference",
                        str(args.reference), "--current", str(args.current)], check=True)
        ref, cur = tmp / "reference.parquet", tmp / "current.parquet"
        print(f"data: {args.reference} reference + {args.current} current rows × "
              f"{len(NUMERIC) + len(CATEGORICAL)} features "
              f"({ref.stat().st_size / 2**20:.0f} + {cur.stat().st_size / 2**20:.0f} MiB "
              f"Parquet, written in {time.perf_counter() - t:.1f} s); drifted: "
              f"{', '.join(DRIFTED)}; the measuring process: {_rss_mib():.0f} MiB resident",
              flush=True)
        spec = write_spec(tmp, cur)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("VIRTUAL_ENV", None)
        results: dict[str, tuple[float, float, str]] = {}
        only = set(args.only or ("slicewatch", "evidently", "scipy"))
        if "slicewatch" in only:
            if not args.no_compile:
                compile_tree(env)
            print(f"  slicewatch's bytecode: "
                  f"{'as found' if args.no_compile else 'compiled first'}; "
                  f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}",
                  flush=True)
            sw = [sys.executable, "-m", "monitor.cli"]
            b_wall, b_cpu, b_rss, _ = child([*sw, "baseline", "build", "-c", str(spec), "--data",
                                      str(ref), "-o", str(tmp / "profile.json"), "-q"],
                                     tmp, env)
            print(f"  slicewatch baseline build: {b_wall:.1f} s, {b_cpu:.1f} s CPU, "
                  f"{b_rss:.0f} MiB", flush=True)
            r_wall, r_cpu, r_rss, _ = child(
                [*sw, "run", "-c", str(spec), "-i", str(cur), "--listen", "", "-q",
                 "--no-notify", "--results", str(tmp / "results.jsonl")], tmp, env)
            print(f"  slicewatch run (replay):   {r_wall:.1f} s, {r_cpu:.1f} s CPU, "
                  f"{r_rss:.0f} MiB", flush=True)
            results["slicewatch (build + replay)"] = (
                b_wall + r_wall, b_cpu + r_cpu, max(b_rss, r_rss),
                ", ".join(drifted_of(tmp / "results.jsonl")))
        for name, script in (("evidently", "evidently_job.py"), ("scipy", "scipy_job.py")):
            if name in only:
                wall, cpu, rss, out = child([args.peers_python, str(HERE / script), str(ref),
                                        str(cur)], tmp, env)
                label = {"evidently": "Evidently DataDriftPreset", "scipy": "scipy loop"}[name]
                lines = out.strip().splitlines()
                results[label] = (wall, cpu, rss, lines[-1] if lines else "")
                print(f"  {label}: {wall:.1f} s, {cpu:.1f} s CPU, {rss:.0f} MiB", flush=True)
        print(f"\n{'job':30} {'wall (s)':>9} {'CPU (s)':>8} {'peak RSS (MiB)':>15}   drifted")
        for name, (wall, cpu, rss, found) in results.items():
            print(f"{name:30} {wall:9.1f} {cpu:8.1f} {rss:15.0f}   {found}")
        sw_key = "slicewatch (build + replay)"
        if sw_key in results:
            sw_wall, sw_cpu, sw_rss, _ = results[sw_key]
            for name, (wall, cpu, rss, _) in results.items():
                if name != sw_key:
                    print(f"{name} / slicewatch: wall {wall / sw_wall:.1f}×, CPU "
                          f"{cpu / sw_cpu:.1f}×, peak memory {rss / sw_rss:.1f}×")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
