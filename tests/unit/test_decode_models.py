"""A model-level ``schema:`` overrides the top-level one for that model's records."""

from __future__ import annotations

import orjson

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Decoder
from monitor.ingest.decode_models import PerModelDecoder, decoder_for
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
schema: {time: ts, score: out.p}
models:
  - {name: fraud, task: binary}
  - name: pricing
    task: regression
    schema: {value: out.price, label: truth.paid}
"""


def test_each_model_is_decoded_with_its_own_schema():
    spec = load_spec_text(SPEC)
    decoder = decoder_for(spec)
    assert isinstance(decoder, PerModelDecoder)
    lines = [orjson.dumps({"model": "fraud", "ts": 1, "out": {"p": 0.9}, "label": 1}),
             orjson.dumps({"model": "pricing", "ts": 2, "out": {"price": 12.5},
                           "truth": {"paid": 10.0}}),
             b"{bad", orjson.dumps({"model": "other", "ts": 3, "out": {"p": 0.1}})]
    batch, rejects = decoder.decode_lines(lines)
    assert sorted(r.reason for r in rejects) == ["invalid_json", "unknown_model"]
    by_model = {m: i for i, m in enumerate(batch.model)}
    assert batch.score[by_model["fraud"]] == 0.9
    assert batch.value[by_model["pricing"]] == 12.5
    assert batch.label[by_model["pricing"]] == 10.0


def test_without_model_schemas_the_plain_decoder_is_used():
    assert isinstance(decoder_for(load_spec_text("models: [{name: m, task: binary}]")), Decoder)


def test_the_daemon_evaluates_both_models():
    spec = load_spec_text(SPEC)
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)])
    lines = [orjson.dumps({"model": "pricing", "ts": i, "out": {"price": 10.0 + i % 3},
                           "truth": {"paid": 10.0}}) for i in range(30)]
    daemon.run([Chunk("lines", lines)])
    (overall,) = [r for r in got if r.model == "pricing"]
    assert overall.count == 30
    assert overall.metrics["mae"] == 1.0  # |0|, |1|, |2| in equal parts
