"""Bad input never crashes the daemon: every non-blank line is either accepted or rejected
with a reason, whatever it holds."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.daemon import Daemon
from monitor.deadletter import DeadLetter
from monitor.sources.base import Chunk
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
    "prediction_id": json_values,
})
lines = st.lists(records.map(lambda r: json.dumps(r).encode()) | st.binary(max_size=30),
                 max_size=40)


@settings(max_examples=150)
@given(st.lists(lines, min_size=1, max_size=4))
def test_any_input_is_accepted_or_rejected_never_raised(batches):
    daemon = Daemon(SPEC, dead_letter=DeadLetter(None))
    for batch in batches:
        daemon.process(Chunk("lines", batch))
    daemon.flush()
    t = daemon.tracker
    total = sum(len(batch) for batch in batches)  # a blank line is counted too (empty_line)
    assert sum(t.records.values()) + sum(t.bad.values()) == total
