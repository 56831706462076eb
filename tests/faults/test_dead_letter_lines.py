"""A dead letter of a file says where its record is: the 1-based ``line`` (JSONL, CSV; read
through Arrow in blocks or line by line) or the 0-based ``row`` (Parquet), so a user can find
the bad record. Each bad record is put at a known place, across batch boundaries."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.ingest.file import FileSource
from tests.faults.test_ingest_frictions import dead_letters, predictions, run_collect, spec_for


def good(n: int) -> list[dict]:
    return [dict(r, timestamp=float(i)) for i, r in enumerate(predictions(n))]


def test_jsonl_dead_letters_have_their_line(tmp_path):
    lines = [orjson.dumps(r) for r in good(100)]
    bad = {7: b"{not json", 33: b'{"model": "m", "timestamp": 1, "prediction": {}}',
           58: b"", 91: b'{"model": "m", "prediction": {"score": 0.5}}'}
    for at in sorted(bad):  # ascending: each lands on its 1-based line
        lines.insert(at - 1, bad[at])
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run_collect(spec_for(tmp_path, path, ", batch_size: 20"))
    letters = dead_letters(tmp_path)
    assert sorted(d["line"] for d in letters) == sorted(bad), letters
    for d in letters:
        assert "row" not in d
        if d["reason"] != "empty_line":
            text = lines[d["line"] - 1].decode()
            assert d["record"] == text or d["record"] == orjson.loads(text), d


def test_csv_dead_letters_have_their_line(tmp_path):
    header = "model,prediction_id,timestamp,features.country,prediction.score"
    rows = [f"m,p{i},{i},US,0.9" for i in range(100)]
    rows[29] = "m,p29,,US,0.9"  # line 31: no time, in a regular block (Arrow)
    rows[64] = "m,p64,64,US,0.9,extra"  # line 66: a ragged row (row by row)
    path = tmp_path / "p.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    run_collect(spec_for(tmp_path, path, ", batch_size: 20"))
    letters = {d["reason"]: d for d in dead_letters(tmp_path)}
    assert letters["missing_field:time"]["line"] == 31, letters
    assert letters["bad_csv_row"]["line"] == 66, letters


def test_parquet_dead_letters_have_their_row(tmp_path):
    rows = good(100)
    for i in (3, 47):
        del rows[i]["timestamp"]
    table = pa.Table.from_pylist([{"model": r["model"], "prediction_id": r["prediction_id"],
                                   "timestamp": r.get("timestamp"),
                                   "features.country": r["features"]["country"],
                                   "prediction.score": r["prediction"]["score"]}
                                  for r in rows])
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    run_collect(spec_for(tmp_path, path, ", batch_size: 20"))
    letters = dead_letters(tmp_path)
    assert sorted(d["row"] for d in letters) == [3, 47], letters
    assert all("line" not in d for d in letters)


def test_places_of_followed_resumed_and_row_by_row_chunks(tmp_path):
    """Chunk places the tests above do not reach: a followed file read as it grows, a file
    resumed from a saved offset, and CSV rows read line by line (``arrow=False``)."""
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"a\nb\nc\n")
    src = FileSource([str(path)], follow=True, batch_size=2)
    tails: dict = {}
    assert [c.place for c in src._tail_once(str(path), tails)] == [("line", 1), ("line", 3)]
    with path.open("ab") as fh:
        fh.write(b"d\ne\n")
    assert [c.place for c in src._tail_once(str(path), tails)] == [("line", 4)]
    saved = tails[str(path)].to_state()
    saved["offset"] = 4  # after "a\nb\n"
    resumed = FileSource([str(path)], batch_size=10, resume={saved["key"]: saved})
    assert [c.place for c in resumed.chunks()] == [("line", 3)]
    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n1,2\n3\n4,5\n")
    chunks = list(FileSource([str(csv)], arrow=False, batch_size=10).chunks())
    bad = [r for c in chunks if c.kind == "lines" for r in c.payload]
    assert [(r.reason, r.line) for r in bad] == [("bad_csv_row", 3)], bad
