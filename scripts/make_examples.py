"""Regenerate the small example inputs in examples/ (deterministic: fixed seeds).

    .venv/bin/python scripts/make_examples.py
"""

from __future__ import annotations

import pathlib

import numpy as np
import orjson
import pandas as pd

from monitor.runtime.demo import demo_records

ROOT = pathlib.Path(__file__).resolve().parent.parent
START = 1_785_000_000  # a fixed event-time origin (2026-07-25), multiple of 300 s


def fraud(path: pathlib.Path) -> None:
    """4 five-minute windows of the demo's fraud stream; country moved under ctx."""
    lines = []
    for records in demo_records(20, 100, seed=11, start=START):
        for r in records:
            r["ctx"] = {"country": r["features"].pop("country")}
            lines.append(orjson.dumps(r))
    path.write_bytes(b"\n".join(lines) + b"\n")


def fraud_profile(path: pathlib.Path) -> None:
    """The reference profile configs/fraud.yaml uses: an incident-free stream, another seed."""
    from monitor.runtime.baseline import build_baselines
    from slices.load import load_spec

    ref = path.with_name("fraud-reference.jsonl")
    lines = []
    for records in demo_records(10, 200, seed=12, start=START - 3000, inject=False):
        for r in records:
            r["ctx"] = {"country": r["features"].pop("country")}
            lines.append(orjson.dumps(r))
    ref.write_bytes(b"\n".join(lines) + b"\n")
    build_baselines(load_spec(str(ROOT / "configs" / "fraud.yaml")), [str(ref)], str(path))
    ref.unlink()


def pricing(path: pathlib.Path) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    city = rng.choice(["berlin", "paris", "lisbon", "oslo"], size=n)
    distance = rng.gamma(2.0, 3.0, size=n).round(2)
    hour = rng.integers(0, 24, size=n)
    price = 3 + 1.4 * distance + 2.0 * ((hour >= 22) | (hour < 5)) + rng.normal(0, 1.5, n)
    predicted = 3 + 1.35 * distance + rng.normal(0, 1.0, n)
    frame = pd.DataFrame({
        "model": "pricing", "version": "2026.11", "request_id": [f"r{i}" for i in range(n)],
        "ts": START + np.sort(rng.uniform(0, 4 * 3600, n)).round(1),
        "features.city": city, "features.distance_km": distance, "features.hour": hour,
        "predicted_price": predicted.round(2), "paid_price": price.round(2),
    })
    frame.to_csv(path, index=False)


if __name__ == "__main__":
    (ROOT / "examples").mkdir(exist_ok=True)
    fraud(ROOT / "examples" / "fraud.jsonl")
    fraud_profile(ROOT / "examples" / "fraud-profile.json")
    pricing(ROOT / "examples" / "pricing.csv")
