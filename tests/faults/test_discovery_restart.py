"""#17: the ``discovered`` alert rule's memory across a kill -9 (a file source with
``checkpoint:``). The slices discovered lately — judged "not in the top-k" when they leave, so
a streak ends — are part of the discovery stage's checkpointed state: a restart mid-streak
fires at the same window as an uninterrupted run.

The stream: six one-minute windows; ``country=BR`` with ``amount`` in [100,500) errs 50 %
in windows 0, 2, 3, 4 and 5, not in window 1. With ``for: 2`` an uninterrupted run fires with
window 3 (window 1 ends the streak of window 0). The daemon is killed once window 0 is judged
and restarted before window 1 closes: without the memory, window 1 would not judge the slice
at all, the streak of window 0 would survive and the alert would fire with window 2.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson

from alerts.outbox import Outbox
from monitor.outputs.results import read_alerts, read_results
from tests.unit.test_discovery_daemon import records
from tests.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
T0 = 1_785_000_000  # a minute boundary
PLANTED = (0, 2, 3, 4, 5)
SLICE = "country=BR,amount=[100,500)"
SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {country: categorical, device: categorical, plan: categorical, amount: numeric}
    slices: [{overall: true}]
    discovery: {top_k: 3, min_support: 40, buckets: {amount: [100, 500]}}
alerts:
  - name: hidden_slice
    model: m
    discovered: true
    for: 2
    min_count: 50
receivers: [{name: r, type: webhook, url: "http://127.0.0.1:9/"}]
route: {receiver: r, group_wait: 0s}
"""


def lines(window: int) -> list[bytes]:
    recs = records(3000, T0 + window * 60.0, window, planted=window in PLANTED)
    return [orjson.dumps(r) + b"\n" for r in recs]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, **kw)


def fired(*results: Path) -> list[tuple[str, str, str]]:
    """(status, slice, window end) of every alert transition, in order."""
    return [(a["status"], a["labels"]["slice"], a["window_end"])
            for path in results if path.exists() for a in read_alerts(str(path))]


def judged_until(db: Path) -> float:
    """The last window end the alert engine judged (its memory in the alert database)."""
    if not db.exists():
        return float("-inf")
    outbox = Outbox(str(db))
    try:
        return max(outbox.load_memory().values(), default=float("-inf"))
    finally:
        outbox.close()


def test_a_kill_9_mid_streak_fires_at_the_same_window_as_an_uninterrupted_run(tmp_path):
    full = tmp_path / "full.jsonl"
    full.write_bytes(b"".join(line for w in range(6) for line in lines(w)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    reference = tmp_path / "reference.jsonl"
    out = run("-c", str(spec), "-i", str(full), "--listen", "", "-q", "--no-notify",
              "--results", str(reference), "--alerts-db", str(tmp_path / "ref-alerts.db"))
    assert out.returncode == 0, out.stderr
    expected = fired(reference)
    starts = sorted({k[3] for k in read_results(str(reference))})
    ends = [T0 + 60.0 * (w + 1) for w in range(6)]
    assert starts == [end - 60.0 for end in ends]
    # the scenario holds: the planted slice fires with window 3, not 2
    assert ("firing", SLICE, ends[3]) in expected, expected
    assert not [f for f in expected if f[1] == SLICE and f[2] in ends[:3]], expected

    spec.write_text(SPEC + f"checkpoint: {tmp_path / 'cp.db'}\n")
    live, alerts_db = tmp_path / "live.jsonl", tmp_path / "alerts.db"
    first_results, second_results = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    window1 = lines(1)
    live.write_bytes(b"".join(lines(0) + window1[:100]))  # window 1 begins: 0 closes
    first = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i", str(live),
         "--follow", "--listen", "", "-q", "--no-notify", "--results", str(first_results),
         "--alerts-db", str(alerts_db)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        end0 = T0 + 60.0
        wait_until(lambda: judged_until(alerts_db) >= end0, what="window 0 judged",
                   detail=lambda: f"judged until {judged_until(alerts_db)}")
    finally:
        first.kill()  # SIGKILL in the middle of the streak begun by window 0
        first.wait(60)
    assert first.returncode == -signal.SIGKILL
    with live.open("ab") as fh:  # the rest of the stream, then a replay to its end
        fh.write(b"".join(window1[100:] + [line for w in range(2, 6) for line in lines(w)]))
    out = run("-c", str(spec), "-i", str(live), "--listen", "", "--no-notify",
              "--results", str(second_results), "--alerts-db", str(alerts_db))
    assert out.returncode == 0, out.stderr
    assert "resumed from checkpoint" in out.stdout, out.stdout
    assert fired(first_results, second_results) == expected
