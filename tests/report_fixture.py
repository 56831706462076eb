"""A real run's results history (the demo's fraud stream, drift injected half-way), for
the report and results-format tests."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from monitor.runtime.app import RunOptions, run
from monitor.runtime.demo import demo_records, demo_spec, write_demo_profile
from slices.load import load_spec_text


def replay_history(tmp: Path, windows: int = 8, per_window: int = 1500) -> dict[str, Path]:
    """Write the stream, its profile and spec under ``tmp``, replay it with ``--results``
    and return the paths (``results``, ``profile``, ``spec``, ``data``)."""
    data, profile = tmp / "preds.jsonl", tmp / "profile.json"
    write_demo_profile(str(profile), per_window)
    with open(data, "wb") as fh:
        for records in demo_records(windows, per_window):
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
    text = demo_spec(str(data), listen="127.0.0.1:0", profile=str(profile),
                     webhook="http://127.0.0.1:9/unused", dead=str(tmp / "dead.jsonl"))
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(text)
    results = tmp / "results.jsonl"
    run(load_spec_text(text), RunOptions(listen="", quiet=True, results=str(results),
                                         alerts_db=str(tmp / "alerts.db")), out=io.StringIO())
    return {"results": results, "profile": profile, "spec": spec_path, "data": data}
