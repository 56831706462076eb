"""A replay interrupted by one SIGINT reports only complete windows (README: "a replay that
was cut short does not report its partial windows"), alerts on none that is incomplete, and
says in one line how many records it left unreported."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from alerts import list_firing
from monitor.outputs.results import read_results
from monitor.runtime.app import RunOptions, run
from slices.load import load_spec

REPO = Path(__file__).resolve().parents[2]
SLICEWATCH = [sys.executable, "-m", "monitor.cli"]
WINDOWS, PER_WINDOW = 20, 4000

SPEC = """
version: 1
source: {type: file, path: %(input)s, batch_size: 2000}
models:
  - name: m
    task: binary
    window: 1m
    metrics: [count, accuracy, score_mean]
    features: {x: numeric, c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/never"}]
alerts:
  - name: short_window        # breached only by a window with fewer records than a full one
    model: m
    metric: count
    slices: [overall]
    threshold: {lower: %(full)d}
"""


def write_input(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = WINDOWS * PER_WINDOW
    score = rng.random(n)
    label = (rng.random(n) < score).astype(int)
    x = rng.normal(size=n)
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps({
                "model": "m", "prediction_id": str(i), "timestamp": 60.0 * i / PER_WINDOW,
                "features": {"x": float(x[i]), "c": "ab"[i % 2]},
                "prediction": {"score": float(score[i])}, "label": int(label[i])}) + b"\n")


def full_replay(tmp_path: Path) -> tuple[dict, Path]:
    """The uninterrupted run, in this process."""
    results, db = tmp_path / "full.results.jsonl", tmp_path / "full.alerts.db"
    run(load_spec(str(tmp_path / "spec.yaml")),
        RunOptions(listen="", quiet=True, results=str(results), alerts_db=str(db)),
        out=io.StringIO())
    return read_results(str(results)), db


def interrupted_replay(tmp_path: Path) -> tuple[dict, str, Path]:
    """``slicewatch run`` in a subprocess, SIGINT once its first window's results are out."""
    results, db = tmp_path / "cut.results.jsonl", tmp_path / "cut.alerts.db"
    proc = subprocess.Popen([*SLICEWATCH, "run", "-c", str(tmp_path / "spec.yaml"), "--results",
                             str(results), "--alerts-db", str(db), "--listen", ""],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (
            results.exists() and results.stat().st_size):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return read_results(str(results)), out.decode(), db


def alert_names(db: Path) -> set[str]:
    return {a.labels["alertname"] for a in list_firing(str(db))}


def test_interrupted_replay_reports_only_complete_windows(tmp_path):
    data = tmp_path / "in.jsonl"
    write_input(data)
    (tmp_path / "spec.yaml").write_text(SPEC % {"input": data, "full": PER_WINDOW})
    full, full_db = full_replay(tmp_path)
    assert len({k[3] for k in full}) == WINDOWS and alert_names(full_db) == set()

    cut, out, db = interrupted_replay(tmp_path)
    starts = {k[3] for k in cut}
    assert 1 <= len(starts) < WINDOWS, out  # it was stopped mid-stream
    for key, record in cut.items():  # every reported window is the full run's window
        assert record == full[key]
    m = re.search(r"stopped: (\d+) record\(s\) in (\d+) incomplete window\(s\) left "
                  r"unreported", out)
    assert m, out
    summary = re.search(r"slicewatch: (\d+) records", out)
    assert int(m.group(1)) == int(summary.group(1)) - len(starts) * PER_WINDOW
    table = re.findall(r"^ +overall +(\d+) ", out, flags=re.M)  # the console table
    assert out.count("── m · window") == len(table) == len(starts), out
    assert set(table) == {str(PER_WINDOW)}, out
    assert alert_names(db) == set()  # no alert for a partial window
