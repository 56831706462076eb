"""#18.1 and #18.2 through the real CLI (``python -m monitor.cli run``) on a file replay.

The data: 14 five-minute windows of a binary classifier, wrong in windows 0–1 and right
afterwards, so ``accuracy_low`` fires with window 0 and resolves with window 2; then stays
calm for 11 windows (longer than the lifecycle's flapping memory of 10 windows).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.outputs.results import read_alerts, read_results
from tests.faults.test_alerts_slow_receiver import Healthy

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "monitor.cli"]
T0 = 1_785_000_000
WINDOWS, PER_WINDOW, BAD = 14, 40, (0, 1)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def _write_windows(path: Path, first: int, last: int) -> None:
    with path.open("a") as fh:
        for w in range(first, last):
            for i in range(PER_WINDOW):
                label = i % 2
                score = (0.9 if label == 0 else 0.1) if w in BAD else (0.9 if label else 0.1)
                fh.write(json.dumps({"model": "fraud", "model_version": "v3",
                                     "prediction_id": f"p{w}-{i}",
                                     "timestamp": T0 + 300 * w + i, "features": {"amount": 1.0},
                                     "prediction": {"score": score}, "label": label,
                                     "outcome": "ok", "ctx": {"country": "US"}}) + "\n")


@pytest.fixture
def hook():
    server = Healthy()
    yield server
    server.close()


@pytest.fixture
def setup(tmp_path, hook):
    data = tmp_path / "in.jsonl"
    _write_windows(data, 0, WINDOWS)
    base = (REPO / "configs" / "fraud.yaml").read_text().split("\n    drift:\n")[0]  # no profile
    spec = tmp_path / "spec.yaml"
    spec.write_text(base.replace("../examples/fraud.jsonl", str(data))
                    .replace("../out/", f"{tmp_path}/") + f"""
alerts:
  - name: accuracy_low
    metric: accuracy
    slices: [overall]
    threshold: {{lower: 0.5}}
receivers:
  - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/"}}
route: {{receiver: hook, group_wait: 0s, group_interval: 1s}}
""")
    return spec, tmp_path


def test_a_replay_prints_and_records_its_alerts_and_notifies_no_one(setup, hook):
    spec, tmp = setup
    results = tmp / "results.jsonl"
    out = cli("run", "-c", str(spec), "--listen", "", "--results", str(results),
              "--alerts-db", str(tmp / "alerts.db"))
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stdout.splitlines() if x.startswith("  alert ")]
    assert len(lines) == 2, out.stdout
    assert lines[0].startswith("  alert ▲ FIRING   accuracy_low [warning] fraud v3 overall: "
                               "accuracy = 0 (< 0.5), window ending 2026-07-25 ")
    assert lines[1].startswith("  alert ▼ resolved accuracy_low [warning] fraud v3 overall: "
                               "accuracy = 1 (>= 0.5)")
    alerts = read_alerts(str(results))
    assert [(a["type"], a["status"], a["alertname"], a["window_end"]) for a in alerts] == [
        ("alert", "firing", "accuracy_low", T0 + 300),
        ("alert", "resolved", "accuracy_low", T0 + 900)]
    assert len({k[3] for k in read_results(str(results))}) == WINDOWS  # results still read
    assert hook.requests == []  # a replay of the past notifies only with --notify


def test_a_restart_from_an_older_offset_notifies_nothing_again(setup, hook):
    spec, tmp = setup
    args = ("run", "-c", str(spec), "--listen", "", "-q", "--notify",
            "--alerts-db", str(tmp / "alerts.db"))
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    assert [b["status"] for _, b, _ in hook.requests] == ["firing", "resolved"]
    out = cli(*args)  # the same windows again, a new process on the same alert database
    assert out.returncode == 0, out.stderr
    assert [b["status"] for _, b, _ in hook.requests] == ["firing", "resolved"]


def test_kill_9_in_follow_mode_20_windows_after_an_incident_pages_nothing_again(setup, hook):
    """#18.1 as the issue puts it: ``--follow`` with a checkpoint; the incident fires and
    resolves, 20 windows later the daemon is killed with SIGKILL and restarted on the same
    checkpoint and alert database: no notification is sent again."""
    import signal

    from tests.wait import wait_until

    spec, tmp = setup
    data = tmp / "in.jsonl"
    data.write_text("")  # the fixture's 14 windows → 24
    _write_windows(data, 0, 24)  # incident in windows 0-1, resolved by 2, then 21 calm ones
    spec.write_text(spec.read_text() + f"checkpoint: {tmp / 'cp.db'}\n")
    results = tmp / "results.jsonl"
    args = [*CLI, "run", "-c", str(spec), "-i", str(data), "--follow", "--listen", "", "-q",
            "--results", str(results), "--alerts-db", str(tmp / "alerts.db")]

    def windows() -> set:
        return {k[3] for k in read_results(str(results))} if results.exists() else set()

    first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(windows()) >= 22, what="22 windows closed")
        wait_until(lambda: [b["status"] for _, b, _ in hook.requests] == ["firing", "resolved"],
                   what="the incident paged and resolved")
    finally:
        first.kill()  # SIGKILL, 20 windows after the incident
        first.wait(60)
    assert first.returncode == -signal.SIGKILL
    done = len(windows())
    second = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _write_windows(data, 24, 28)  # the stream goes on
        wait_until(lambda: len(windows()) >= done + 3, what="the restarted daemon closes more")
    finally:
        second.send_signal(signal.SIGTERM)
        out = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, out
    assert "resumed from checkpoint" in out, out
    assert [b["status"] for _, b, _ in hook.requests] == ["firing", "resolved"]
