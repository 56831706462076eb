"""Live inputs: stdin is processed while the pipe stays open and stops on SIGINT; a file run
with a checkpoint survives kill -9 without losing or repeating anything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import orjson
import pytest

START = (int(time.time()) // 60 - 30) * 60  # 30 minutes ago, on a window boundary
SPEC = """
{checkpoint}
models:
  - name: fraud
    task: binary
    window: 1m
    features: {{country: categorical}}
    slices:
      - overall: true
      - feature_keys: [country]
"""


def records(first: int, last: int) -> bytes:
    """Two records per second of event time in [first, last), scores and labels varied."""
    out = []
    for i in range(first * 2, last * 2):
        out.append(orjson.dumps({"timestamp": START + i / 2, "label": i % 3 == 0,
                                 "prediction": {"score": (i * 37 % 100) / 100},
                                 "features": {"country": "US" if i % 4 else "BR"}}) + b"\n")
    return b"".join(out)


def write_spec(tmp_path, checkpoint: str | None = None) -> str:
    path = tmp_path / ("spec-cp.yaml" if checkpoint else "spec.yaml")
    path.write_text(SPEC.format(checkpoint=f"checkpoint: {checkpoint}" if checkpoint else ""))
    return str(path)


def start(spec: str, port: int, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "-c", spec, "--listen",
                             f"127.0.0.1:{port}", "-q", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def counter(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return -1
    found = re.search(rf'^{name}\{{model="fraud"\}} (\S+)$', text, re.M)
    return float(found[1]) if found else -1


def wait_for(condition, what: str, deadline: float = 120) -> None:
    end = time.time() + deadline
    while not condition():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    proc.wait(60)  # stdin (if piped) still open: communicate() would close it
    out, err = (x.decode() for x in proc.communicate(timeout=60))
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def test_stdin_is_processed_while_the_pipe_is_open_and_sigint_stops_it(tmp_path, free_port):
    port = free_port()
    proc = start(write_spec(tmp_path), port, "-i", "-", stdin=subprocess.PIPE)
    try:
        proc.stdin.write(records(0, 2))  # 4 records, far fewer than a batch
        proc.stdin.flush()
        wait_for(lambda: counter(port, "slicewatch_records_total") == 4, "4 records processed")
        t0 = time.time()
        out, _ = stop(proc)  # the pipe is still open
        assert time.time() - t0 < 30
        assert "4 records" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def results(path) -> Counter:
    with open(path, "rb") as fh:
        return Counter(line for line in fh if line.strip())


def keyed(path) -> dict:
    """Results by (slice, window start): (the other fields, the metrics; None → NaN)."""
    out = {}
    for line in results(path):
        r = orjson.loads(line)
        if r.get("type", "result") != "result":  # the run's summary line
            continue
        metrics = {k: float("nan") if v is None else v for k, v in r.pop("metrics").items()}
        out[(r["slice"], r["window_start"])] = (r, metrics)
    return out


def test_kill_9_between_saves_then_restart_equals_an_uninterrupted_run(tmp_path, free_port):
    data = tmp_path / "full.jsonl"
    data.write_bytes(records(0, 600))  # ten one-minute windows
    reference = tmp_path / "reference.jsonl"
    # the uninterrupted run, meanwhile (another process: it overlaps the live run's waits)
    with open(tmp_path / "reference.log", "wb") as log:
        uninterrupted = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", write_spec(tmp_path), "-i",
             str(data), "--listen", "", "-q", "--results", str(reference)],
            stdout=subprocess.DEVNULL, stderr=log)

    spec = write_spec(tmp_path, str(tmp_path / "cp.db"))
    live, out = tmp_path / "live.jsonl", tmp_path / "results.jsonl"
    live.write_bytes(records(0, 250))
    args = ("-i", str(live), "--follow", "--results", str(out))
    port = free_port()
    proc = start(spec, port, *args)
    try:
        wait_for(lambda: out.exists() and len({orjson.loads(x).get("window_start")
                                                for x in results(out)} - {None}) == 4,
                 "four windows closed")
        with open(live, "ab") as fh:  # more of window 5: processed, closes nothing
            fh.write(records(250, 280))
        wait_for(lambda: counter(port, "slicewatch_records_total") == 560, "560 records")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    with open(live, "ab") as fh:
        fh.write(records(280, 600))
    port = free_port()
    proc = start(spec, port, *args)
    try:
        wait_for(lambda: counter(port, "slicewatch_records_total") == 1200, "1200 records")
        wait_for(lambda: counter(port, "slicewatch_windows_closed_total") == 9, "9 windows")
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    final = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", spec, "-i",
                            str(live), "--listen", "", "-q", "--results", str(out)],
                           check=True, capture_output=True, text=True, timeout=300)
    assert "1200 records, 0 rejected, 0 late, 10 windows" in final.stdout
    assert uninterrupted.wait(300) == 0, (tmp_path / "reference.log").read_text()
    assert max(results(out).values()) == 1  # no window written twice
    got, want = keyed(out), keyed(reference)
    assert got.keys() == want.keys()
    for key, (fields, metrics) in want.items():  # summed in other batches: float rounding
        assert got[key][0] == fields
        assert got[key][1] == pytest.approx(metrics, rel=1e-9, nan_ok=True), key


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_replay_with_a_checkpoint_resumes_instead_of_starting_over(tmp_path, fmt):
    data = tmp_path / f"a.{fmt}"
    if fmt == "jsonl":
        data.write_bytes(records(0, 120))
    else:
        rows = [orjson.loads(x) for x in records(0, 120).splitlines()]
        data.write_text("timestamp,prediction.score\n" + "".join(
            f"{r['timestamp']},{r['prediction']['score']}\n" for r in rows))
    spec = write_spec(tmp_path, str(tmp_path / "cp.db"))
    cmd = [sys.executable, "-m", "monitor.cli", "run", "-c", spec, "-i", str(data),
           "--listen", "", "-q", "--results", str(tmp_path / "r.jsonl")]
    first = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    assert "240 records" in first.stdout and "2 windows" in first.stdout
    again = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    assert "resumed from checkpoint" in again.stdout
    assert "240 records" in again.stdout and "2 windows" in again.stdout  # nothing twice
    assert max(results(tmp_path / "r.jsonl").values()) == 1
    assert os.path.getsize(tmp_path / "r.jsonl") > 0
