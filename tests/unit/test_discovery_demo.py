"""The demo plants a degradation in an undeclared conjunction (device=android ×
amount=[100,500)) during its incident; discovery ranks it first then, and the demo's table
shows it (issue 17)."""

from __future__ import annotations

import io

import orjson

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.outputs.table import TablePrinter
from monitor.runtime.daemon import Daemon
from monitor.runtime.demo import demo_records, demo_spec, incident
from slices.load import load_spec_text

PLANTED = "device=android,amount=[100,500)"


def test_the_demo_shows_the_planted_conjunction_discovered_first_during_the_incident():
    spec = load_spec_text(demo_spec("unused.jsonl"), "<demo spec>")
    assert PLANTED not in {s.name for s in spec.models[0].slices}  # nobody declared it
    out = io.StringIO()
    windows = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None),
                    listeners=[TablePrinter({"fraud": "binary"}, out=out),
                               lambda w, rs: windows.append(w)])
    chunks = [Chunk("lines", [orjson.dumps(r) for r in records])
              for records in demo_records(8, 3000, start=0.0)]
    daemon.run(chunks)
    assert len(windows) == 8
    for w, window in enumerate(windows):
        top = [d.slice for d in window.discovered if d.scope == "window" and d.rank == 1]
        # amount=[100,500) errs more in every window (labels are least certain there); the
        # planted conjunction leads only while it is broken
        assert (top == [PLANTED]) == incident(w, 8), (w, top)
    assert f" {PLANTED}  v3: error" in out.getvalue()
