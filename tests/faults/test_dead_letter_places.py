"""Dead letters found where the source's place was not at hand still say where the record
is: late records (found after windowing), CSV rows pandas refuses and rows read row by row,
models with their own schema (decoded per model, then put back in order), Kafka messages
(``partition`` and ``offset``), also through the feature join and when processing raised."""

from __future__ import annotations

import orjson

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.feature_join import FeatureJoin
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.kafka_run import fold_isolating
from monitor.runtime.wiring import _meaning
from slices.load import load_spec_text
from tests.faults.test_ingest_frictions import dead_letters, run_collect, spec_for

SPEC = """
source: {type: file, path: x.jsonl}
models: [{name: m, task: binary, window: 1m}]
"""


def _line(t: float, i: int, **more) -> bytes:
    return orjson.dumps({"model": "m", "prediction_id": f"p{i}", "timestamp": t,
                         "features": {"country": "US"}, "prediction": {"score": 0.5}, **more})


def test_late_records_of_a_file_have_their_line(tmp_path):
    lines = [_line(float(i), i) for i in range(50)] + [_line(200.0, 50)]
    lines += [b"{bad", _line(5.0, 52), _line(201.0, 53), _line(7.0, 54)]  # late: 53 and 55
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run_collect(spec_for(tmp_path, path, ", batch_size: 51"))
    late = [d for d in dead_letters(tmp_path) if d["reason"] == "late"]
    assert [(d["origin"], d["line"]) for d in late] == [(str(path), 53), (str(path), 55)], late
    assert late[0]["record"]["prediction_id"] == "p52"
    assert "model m" in late[0]["detail"]


def test_csv_rows_read_row_by_row_and_refused_by_pandas_have_their_line(tmp_path):
    header = "model,prediction_id,timestamp,features.country,prediction.score"
    rows = [f'm,p{i},{i},"U\nS",0.5' if i == 3 else f"m,p{i},{i},US,0.5" for i in range(10)]
    rows[6] = 'm,p6,6,U",",0.5'  # pandas refuses it (EOF inside string): line 9
    rows[8] = "m,p8,,US,0.5"  # no time: line 11 (row 3 spans lines 5-6)
    rows += ["m,p10,200,US,0.5", "m,p11,1,US,0.5"]  # late: line 14
    path = tmp_path / "p.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    run_collect(spec_for(tmp_path, path, ", batch_size: 11"))
    letters = {d["reason"]: d for d in dead_letters(tmp_path)}
    assert {k: d.get("line") for k, d in letters.items()} == {
        "bad_csv_row": 9, "missing_field:time": 11, "late": 14}, letters


def test_models_with_their_own_schema_keep_lines_and_order(tmp_path):
    """Each model's records are decoded apart: their rejects' lines and the batch's order
    are those of the file (the lines were those of the model's own records before)."""
    spec = spec_for(tmp_path, tmp_path / "p.jsonl", "").replace(
        "    task: binary\n", "    task: binary\n    schema: {score: s}\n", 1) + """
  - {name: n, task: binary, window: 1m}
"""
    lines = [b'{"model": "n", "timestamp": 1, "prediction": {"score": 0.5}}',
             b'{"model": "m", "timestamp": 1, "s": 0.5}',
             b'{"model": "n", "timestamp": 1, "prediction": {"score": 0.5}}',
             b'{"model": "m", "timestamp": 1, "s": "x"}',
             b'{"model": "n", "timestamp": "zz", "prediction": {"score": 0.5}}']
    (tmp_path / "p.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    run_collect(spec)
    letters = {d["reason"]: d["line"] for d in dead_letters(tmp_path)}
    assert letters == {"wrong_type:score": 4, "bad_time": 5}, letters
    # the end-of-run summary names each model's own path (it said 'prediction.score' only)
    assert _meaning("wrong_type:score", load_spec_text(spec)).endswith(
        "schema.score is 's' (model m), 'prediction.score' (model n)")


def _kafka_daemon(tmp_path, feature_join: FeatureJoin | None = None) -> Daemon:
    return Daemon(load_spec_text(SPEC), dead_letter=DeadLetter(str(tmp_path / "dead.jsonl")),
                  feature_join=feature_join, decode_ahead=0)


def _chunk(lines: list[bytes], first: int, gap: int = 1) -> Chunk:
    """Messages of ``preds:2`` at offsets ``first``, ``first + gap``, … (a transaction's
    markers leave gaps)."""
    after = [first + gap * i + 1 for i in range(len(lines))]
    return Chunk("lines", lines, "predictions", "preds", after, "preds:2", place=("offset", after))


def test_kafka_dead_letters_have_partition_and_offset(tmp_path):
    daemon = _kafka_daemon(tmp_path)
    daemon.process(_chunk([_line(float(i), i) for i in range(5)] + [_line(200.0, 5)], 10))
    daemon.process(_chunk([b"{bad", _line(3.0, 7), b""], 40, gap=2))
    daemon.dead_letter.flush()
    got = [(d["reason"], d["origin"], d["partition"], d["offset"]) for d in dead_letters(tmp_path)]
    assert got == [("invalid_json", "preds", 2, 40), ("empty_line", "preds", 2, 44),
                   ("late", "preds", 2, 42)], got


def test_kafka_feature_joined_messages_have_their_offset(tmp_path):
    """Predictions held for their features keep their place while held (and in the state)."""
    daemon = _kafka_daemon(tmp_path, FeatureJoin(load_spec_text(SPEC).schema, delay=30))
    daemon.process(_chunk([_line(float(i), i) for i in range(3)] + [_line(200.0, 3)], 100))
    daemon.process(_chunk([_line(235.0, 5)], 150))  # p3 goes on: the watermark is 200
    daemon.load_state(orjson.loads(orjson.dumps(daemon.state())))
    daemon.process(_chunk([_line(5.0, 4), _line(300.0, 6, prediction={"score": 7})], 200))
    daemon.flush()  # p4 (held) goes on late; p6 (held to the end) is out of range
    daemon.dead_letter.flush()
    got = {d["reason"]: (d["origin"], d["partition"], d["offset"])
           for d in dead_letters(tmp_path)}
    assert got == {"late": ("preds", 2, 200), "score_out_of_range": ("preds", 2, 201)}, got


def test_a_kafka_message_whose_processing_fails_has_its_offset(tmp_path):
    daemon = _kafka_daemon(tmp_path)
    folding = daemon.process_batch

    def process_batch(batch, partition=""):
        if "p8" in set(batch.id):
            raise RuntimeError("boom")
        return folding(batch, partition)

    daemon.process_batch = process_batch
    fold_isolating(daemon, _chunk([_line(1.0, 7), _line(1.0, 8), _line(1.0, 9)], 300, gap=3))
    daemon.dead_letter.flush()
    got = [(d["reason"], d["partition"], d["offset"]) for d in dead_letters(tmp_path)]
    assert got == [("processing_error", 2, 303)], got
