"""Process floor and time to first record of `slicewatch run` (issue 13: ≤ 150 MiB, ≤ 1.5 s).

    .venv/bin/python bench/startup.py --runs 5

Each run starts a fresh `python -m monitor.cli run` on a one-record JSONL file with
configs/fraud.yaml (drift per slice against its profile), serving /metrics on a free
loopback port and lingering; the bench polls /metrics every 10 ms until
``slicewatch_records_total`` counts the record: that moment, from the spawn, is the time to
the first record processed, and the process's VmRSS then is the floor after start-up. The
process is then stopped (SIGTERM). Once with the spec's concept detector (River loads),
once without it. Baselines in the same run: the interpreter alone (``python -c pass``) and
``python -c "import pandas"`` (spawn to exit, and the child's peak RSS). Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(argv: list[str], deadline: float = 120.0) -> tuple[float, float]:
    """Seconds from spawn to the first record counted on /metrics, and VmRSS MiB then."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    t = time.perf_counter()
    proc = subprocess.Popen([*argv, "--listen", f"127.0.0.1:{port}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        while time.perf_counter() - t < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{argv} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    body = resp.read().decode()
            except OSError:
                body = ""
            if any(x.startswith("slicewatch_records_total{") and float(x.split()[-1]) >= 1
                   for x in body.splitlines()):
                return time.perf_counter() - t, vm_rss_mib(proc.pid)
            time.sleep(0.01)
        raise SystemExit(f"no record counted in {deadline} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def baseline(argv: list[str]) -> tuple[float, float]:
    """Seconds from spawn to exit of ``argv``, and its peak RSS (ru_maxrss) in MiB."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} exited with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sw-startup-"))
    spec_text = (REPO / "configs" / "fraud.yaml").read_text(encoding="utf-8")
    spec_text = spec_text.replace("../examples/", f"{REPO}/examples/")
    specs = {"with concept (River)": tmp / "concept.yaml", "no concept": tmp / "plain.yaml"}
    specs["with concept (River)"].write_text(spec_text, encoding="utf-8")
    specs["no concept"].write_text("\n".join(
        x for x in spec_text.splitlines() if "concept: {detector" not in x) + "\n",
        encoding="utf-8")
    one = tmp / "one.jsonl"
    with open(REPO / "examples" / "fraud.jsonl", encoding="utf-8") as f:
        one.write_text(f.readline(), encoding="utf-8")
    cases = {}
    for name, spec in specs.items():
        cases[f"slicewatch run, {name}"] = [
            sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i", str(one),
            "--linger", "-1", "--no-notify", "-q"]
    baselines = {"python -c pass (to exit, peak RSS)": [sys.executable, "-c", "pass"],
                 "python -c 'import pandas' (same)": [sys.executable, "-c", "import pandas"]}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in [*baselines, *cases]}
    for _ in range(args.runs):
        for name, argv in baselines.items():
            results[name].append(baseline(argv))
        for name, argv in cases.items():
            results[name].append(measure(argv))
    print(f"median of {args.runs} runs{'':18}first record (s)   RSS then (MiB)")
    medians = {}
    for name, rs in results.items():
        medians[name] = statistics.median(r[0] for r in rs)
        rss = statistics.median(r[1] for r in rs)
        print(f"{name:38} {medians[name]:12.2f} {rss:16.0f}")
    pandas_s = medians["python -c 'import pandas' (same)"]
    for name in cases:
        print(f"{name}: first record / import pandas = {medians[name] / pandas_s:.2f}")


if __name__ == "__main__":
    main()
