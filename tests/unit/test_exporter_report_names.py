"""The console table keeps distinct slice names distinct (no cut at 34 characters)."""

from __future__ import annotations

import io

import orjson

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.outputs.table import TablePrinter
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {country_of_residence: categorical, device_family_name: categorical}
    slices: [{feature_keys: [country_of_residence, device_family_name]}]
"""


def test_long_crosses_print_distinct_names():
    out = io.StringIO()
    spec = load_spec_text(SPEC)
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[TablePrinter(
        {"m": "binary"}, out=out)])
    lines = [orjson.dumps({"model": "m", "prediction_id": f"{i}", "timestamp": i,
                           "features": {"country_of_residence": "BR",
                                        "device_family_name": f"android_{d}"},
                           "prediction": {"score": 0.5}, "label": 1})
             for i, d in enumerate(["phone", "tablet", "watch"] * 5)]
    daemon.run([Chunk("lines", lines)])
    names = [line.split()[0] for line in out.getvalue().splitlines()
             if "country_of_residence=" in line]
    assert len(names) == 3 and len(set(names)) == 3, out.getvalue()
