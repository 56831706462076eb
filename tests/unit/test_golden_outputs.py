"""A small deterministic replay, its results history (JSONL) and its /metrics text, compared
byte for byte with the files under ``tests/unit/golden/``: the public formats stay stable.

Regenerate after an intended format change: ``SLICEWATCH_REGOLDEN=1 pytest`` this file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import orjson
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SlicewatchCollector
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.outputs.results import ResultsWriter
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

GOLDEN = Path(__file__).resolve().parent / "golden"
SPEC = """
models:
  - name: fraud
    task: binary
    window: 1m
    max_versions: 1
    metrics: [accuracy, roc_auc, log_loss, failure_rate]
    features:
      amount: {type: numeric, min_samples: 50}
      country: {type: categorical, min_samples: 50}
    slices: [{overall: true}, {feature_keys: [country]}, {buckets: {amount: [0, 50, 100]}}]
    drift:
      rolling_windows: 1
      features: [amount, country]
      concept: DDM
"""
#: Lines that depend on the wall clock (or the threads' timing), not on the input.
CLOCK = re.compile(r"^(slicewatch_window_close_delay|[a-z_]+_created|slicewatch_up_time_seconds|"
                   r"slicewatch_decode_ahead_waits)")


def records() -> list[bytes]:
    """Four one-minute windows; from the third on ``amount`` shifts and BR's scores turn
    noise; a second model version appears (folded: ``max_versions: 1``)."""
    rng = np.random.default_rng(12)
    out = []
    for i in range(4 * 600):
        t, shifted = i / 10.0, i >= 2 * 600
        country = ("US", "BR", "DE")[i % 3]
        label = int(rng.random() < 0.3)
        score = rng.random() if shifted and country == "BR" else \
            float(np.clip(0.7 * label + 0.3 * rng.random(), 0, 1))
        amount = float(rng.gamma(2.0, 20.0) * (1.8 if shifted else 1.0))
        outcome = "timeout" if i % 37 == 0 else "ok"
        out.append(orjson.dumps({
            "model": "fraud", "model_version": "v2" if i % 4 == 3 else "v1",
            "prediction_id": f"p{i}", "timestamp": t, "label": label, "outcome": outcome,
            "features": {"amount": round(amount, 3), "country": country},
            "prediction": {"score": round(score, 4)} if outcome == "ok" else {}}))
    out.append(b"{not json")
    return out


def failing_listener(window, results) -> None:
    raise RuntimeError("a listener that always fails (slicewatch_listener_errors_total)")


def replay(tmp_path: Path) -> tuple[bytes, bytes]:
    writer = ResultsWriter(str(tmp_path / "results.jsonl"))
    daemon = Daemon(load_spec_text(SPEC), dead_letter=DeadLetter(None),
                    listeners=[writer, failing_listener])
    lines = records()
    daemon.run([Chunk("lines", lines[i:i + 500]) for i in range(0, len(lines), 500)])
    writer.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    metrics = "".join(line + "\n" for line in generate_latest(registry).decode().splitlines()
                      if not CLOCK.match(line))
    return (tmp_path / "results.jsonl").read_bytes(), metrics.encode()


def check(name: str, got: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("SLICEWATCH_REGOLDEN") == "1":
        path.write_bytes(got)
    assert got == path.read_bytes(), f"{name} changed; SLICEWATCH_REGOLDEN=1 if intended"


def test_results_history_and_metrics_match_the_golden_files(tmp_path):
    results, metrics = replay(tmp_path)
    assert b'"drift"' in results and b'"quality"' in results and b'concept_drift' in results
    for family in (b"slicewatch_drift_score{", b"slicewatch_versions_folded_total{",
                   b"slicewatch_listener_errors_total{", b"slicewatch_data_missing_ratio{",
                   b"slicewatch_concept_drift_events_total{"):
        assert family in metrics
    check("results.jsonl", results)
    check("metrics.txt", metrics)


def test_the_replay_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert replay(tmp_path / "a") == replay(tmp_path / "b")
