"""Bad input never crashes the daemon: every line is accepted, late or rejected with a reason,
whatever it holds, and each record's outcome in a batch is the one it has on its own."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode_models import decoder_for
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = load_spec_text("""
models:
  - name: m
    task: binary
    window: 1m
    features: {amount: numeric, country: categorical}
    slices: [{overall: true}, {feature_keys: [country]}, {buckets: {amount: [0, 10]}},
             {name: w, where: 'amount > 5 and "t" in tags'}, {tags: [t]}]
""")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                       children, max_size=3),
    max_leaves=8)

records = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["m", "x"]) | json_values,
    "timestamp": st.floats(0, 1e6) | st.text(max_size=25) | json_values,
    "prediction": st.fixed_dictionaries({}, optional={"score": st.floats(0, 1) | json_values,
                                                      "class": json_values}) | json_values,
    "features": st.fixed_dictionaries({}, optional={"amount": json_values | st.floats(),
                                                    "country": json_values}) | json_values,
    "label": json_values, "tags": st.lists(st.sampled_from(["t", "u"])) | json_values,
    "outcome": st.sampled_from(["ok", "error", "timeout", "bogus"]) | json_values,
})
valid = st.fixed_dictionaries(  # mostly accepted (or late): outcomes other than rejects
    {"model": st.just("m"), "timestamp": st.floats(0, 3600),
     "prediction": st.fixed_dictionaries({"score": st.floats(0, 1)})},
    optional={"features": st.fixed_dictionaries({}, optional={
        "amount": st.floats(0, 20), "country": st.sampled_from(["US", "BR"])}),
        "tags": st.lists(st.sampled_from(["t", "u"]))})
lines = st.lists(valid | records | st.binary(max_size=30), max_size=40)


class Recorded(DeadLetter):
    """The dead letter, kept in memory: ``(reason, raw)`` of each reject."""

    def __init__(self):
        super().__init__(None)
        self.got: list[tuple[str, object]] = []

    def write(self, reason, record, *, detail="", origin="", **place):
        self.got.append((reason, record))


def identify(batches: list[list]) -> list[list[bytes]]:
    """The lines of ``batches``: each record gets a unique id (``r<n>``) that its outcome is
    found by; binary lines stay as they are."""
    out, n = [], 0
    for batch in batches:
        out.append([])
        for item in batch:
            if isinstance(item, dict):
                item, n = json.dumps({**item, "prediction_id": f"r{n}"}).encode(), n + 1
            out[-1].append(item)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(lines, min_size=1, max_size=4))
def test_every_record_gets_the_outcome_it_gets_alone(batches):
    """Each record is accepted, late, or rejected with the reason it gets when decoded on
    its own; late exactly when an earlier batch moved the watermark past its window."""
    batches = identify(batches)
    dead = Recorded()
    daemon = Daemon(SPEC, dead_letter=dead)
    decoder = decoder_for(SPEC)
    alone: dict[str, tuple[str, float]] = {}  # record id → (outcome alone, time if accepted)
    others: Counter = Counter()  # outcomes alone of lines that are no JSON object
    watermark, want_late = -np.inf, set()
    for batch in batches:
        on_time = []
        for line in batch:
            ok, rejects = decoder.decode_lines([line])
            outcome = rejects[0].reason if rejects else "accepted"
            if outcome in ("invalid_json", "empty_line", "not_an_object"):  # no record to
                others[outcome] += 1  # find it by: counted by reason
                continue
            rid = json.loads(line)["prediction_id"]
            alone[rid] = (outcome, float(ok.time[0]) if len(ok) else np.nan)
            if len(ok):
                end = (ok.time[0] // 60 + 1) * 60  # the record's 1-minute window ends here
                (want_late.add(rid) if end <= watermark else on_time.append(ok.time[0]))
        daemon.process(Chunk("lines", batch))
        watermark = max([watermark, *on_time])
    daemon.flush()

    got = {}
    unmatched: Counter = Counter()
    for reason, raw in dead.got:
        rid = raw.get("prediction_id", raw.get("id")) if isinstance(raw, dict) else None
        if isinstance(rid, str) and rid in alone:
            assert rid not in got, f"{rid} has two outcomes"
            got[rid] = reason
        else:
            unmatched[reason] += 1
    for rid, (outcome, _) in alone.items():
        if rid in want_late:
            assert got.get(rid) == "late", rid
        else:
            assert got.get(rid, "accepted") == outcome, rid
    assert unmatched == others
    t = daemon.tracker
    assert sum(t.records.values()) == sum(o == "accepted" for o, _ in alone.values()) - len(
        want_late)
    assert sum(t.late.values()) == len(want_late)
    assert sum(t.bad.values()) == sum(others.values()) + sum(
        o != "accepted" for o, _ in alone.values())
