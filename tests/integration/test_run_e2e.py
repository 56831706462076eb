"""`slicewatch run` as a user runs it: a real process on a JSONL file, /metrics scraped over
HTTP on 127.0.0.1, values checked against an independent computation; `validate` on a broken
spec; `demo` end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.wait import DEADLINE, HTTP_TIMEOUT, wait_until

REPO = Path(__file__).resolve().parents[2]
SLICEWATCH = [sys.executable, "-m", "monitor.cli"]


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*SLICEWATCH, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"serving (http://127\.0\.0\.1:\d+)/metrics", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"slicewatch did not start: {proc.stdout.read()}")


def scrape(url: str) -> dict:
    text = requests.get(f"{url}/metrics", timeout=HTTP_TIMEOUT).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, name: str, **labels) -> float:
    for fam in families.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{name}{labels}")


@pytest.fixture
def input_with_bad_lines(tmp_path) -> Path:
    lines = (REPO / "examples" / "fraud.jsonl").read_bytes().splitlines()
    bad = [b"{oops", b'{"model": "fraud", "timestamp": "not a time", "prediction": {"score": 1}}',
           b'{"model": "fraud", "timestamp": 1785000100, "prediction": {"score": "0.3"}}']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines[:700] + bad + lines[700:]) + b"\n")
    return path


def expected_last_window() -> tuple[float, float, int]:
    """Overall accuracy and score mean of the last 5-minute window, computed with pandas."""
    recs = [orjson.loads(x) for x in (REPO / "examples" / "fraud.jsonl").read_bytes().splitlines()]
    df = pd.DataFrame({"t": [r["timestamp"] for r in recs],
                       "score": [r["prediction"].get("score", np.nan) for r in recs],
                       "label": [r["label"] for r in recs]})
    df["window"] = (df.t // 300) * 300
    last = df[df.window == df.window.max()]
    scored = last.dropna(subset=["score"])
    acc = float(((scored.score >= 0.5).astype(int) == scored.label).mean())
    return acc, float(scored.score.mean()), len(last)


def test_run_serves_metrics_equal_to_an_independent_computation(tmp_path, input_with_bad_lines):
    dead = tmp_path / "dead.jsonl"
    proc, url = start(["run", "-c", "configs/fraud.yaml", "-i", str(input_with_bad_lines),
                       "--listen", "127.0.0.1:0", "--linger", "-1", "--dead-letter", str(dead),
                       "--alerts-db", str(tmp_path / "alerts.db")])
    try:
        def four_closed() -> dict | None:
            families = scrape(url)
            try:
                closed = value(families, "slicewatch_windows_closed_total", model="fraud")
            except KeyError:
                return None
            return families if closed == 4 else None

        families = wait_until(four_closed, what="4 windows closed on /metrics")
        assert value(families, "slicewatch_records_total", model="fraud") == 2000
        assert value(families, "slicewatch_bad_records_total", reason="invalid_json") == 1
        assert value(families, "slicewatch_bad_records_total", reason="bad_time") == 1
        assert value(families, "slicewatch_bad_records_total", reason="wrong_type:score") == 1
        acc, score_mean, n = expected_last_window()
        got_acc = value(families, "slicewatch_slice_accuracy", slice="overall", version="v3")
        assert got_acc == pytest.approx(acc, abs=1e-12)
        assert value(families, "slicewatch_slice_score_mean", slice="overall") == \
            pytest.approx(score_mean, rel=1e-12)
        assert value(families, "slicewatch_slice_records", slice="overall") == n
        assert value(families, "slicewatch_slice_info", slice="overall", critical="false") == 1
        country_slices = {s.labels["slice"] for s in families["slicewatch_slice_records"].samples
                          if s.labels["slice"].startswith("country=")}
        assert {"country=US", "country=BR"} <= country_slices  # read from ctx.country
        health = requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, out
    reasons = sorted(orjson.loads(x)["reason"] for x in dead.read_bytes().splitlines())
    assert reasons == ["bad_time", "invalid_json", "wrong_type:score"]


def test_validate_reports_every_problem_with_position_and_exits_2(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        "models:\n"
        "  - name: fraud\n"
        "    task: binary\n"
        "    threshold: 1.5\n"
        "    window: 5 parsecs\n"
        "    metrics: [accuracy, mae]\n"
        "    slices:\n"
        "      - overall: true\n"
        "      - where: 'amount > 5)'\n"
        "        nmae: x\n")
    out = subprocess.run([*SLICEWATCH, "validate", "-c", str(spec)], cwd=REPO,
                         capture_output=True, text=True, timeout=DEADLINE)
    assert out.returncode == 2
    lines = [x for x in out.stderr.splitlines() if x.startswith(str(spec))]
    paths = {x.split(": ")[1] for x in lines}
    assert {"models[0].threshold", "models[0].window", "models[0].metrics[1]",
            "models[0].slices[1].where", "models[0].slices[1].nmae"} <= paths, out.stderr
    assert all(re.match(rf"{re.escape(str(spec))}:\d+:\d+: ", x) for x in lines)
    assert any(x.startswith(f"{spec}:4:") and "threshold" in x for x in lines)
    assert "Traceback" not in out.stderr


def test_validate_ok_on_the_example_specs():
    for name in ("fraud.yaml", "pricing.yaml"):
        out = subprocess.run([*SLICEWATCH, "validate", "-c", f"configs/{name}"], cwd=REPO,
                             capture_output=True, text=True, timeout=DEADLINE)
        assert out.returncode == 0, out.stderr


def test_pricing_example_runs_on_csv():
    out = subprocess.run([*SLICEWATCH, "run", "-c", "configs/pricing.yaml", "--listen", "",
                          "-q"], cwd=REPO, capture_output=True, text=True,
                         timeout=2 * DEADLINE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3000 records, 0 rejected, 0 late, 5 windows" in out.stdout


def test_demo_shows_windows_and_slices(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = subprocess.run([*SLICEWATCH, "demo", "--listen", "127.0.0.1:0", "--windows", "8",
                          "--per-window", "1500", "--seconds", "2", "--linger", "0",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=2 * DEADLINE, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("── fraud · window") == 8
    assert "country=BR" in out.stdout and "overall" in out.stdout
    assert "12000 records, 0 rejected, 0 late, 8 windows" in out.stdout
    # the injected incident (windows 5-6) pages the demo's receiver, then resolves
    lines = out.stdout.splitlines()
    fired = [i for i, x in enumerate(lines) if "FIRING" in x and "country=BR:" in x]
    resolved = [i for i, x in enumerate(lines) if "RESOLVED" in x and "country=BR:" in x]
    assert fired and resolved and fired[0] < resolved[-1], out.stdout
    assert any("FIRING" in x and "device=web" in x for x in lines), out.stdout
    # drift against the demo's reference profile: amount in the incident windows only
    windows = out.stdout.split("── fraud · window")[1:]
    amount = [any(x.startswith("  drift ▲ amount:") for x in w.splitlines()) for w in windows]
    assert amount[4] and amount[5] and not any(amount[:4]) and not any(amount[6:]), amount
