"""Inputs no fixture had, each bounded, counted and never a traceback or a hang."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest

from monitor.cli import main
from monitor.ingest.lines import LineReader, Pushback


def test_an_oversized_line_given_back_is_skipped_without_copying_what_is_left():
    """A block read ahead and given back (``Pushback.unread``) used to be re-sliced on every
    64 KiB piece of an oversized line skipped: quadratic in the block (up to 64 MiB). Its
    reading now allocates only what it returns: the peak stays far under a second copy of
    the block."""
    block = b'{"a": "' + b"x" * (24 << 20) + b'"}\n{"b": 1}\n'
    src = Pushback(io.BytesIO(b'{"c": 2}\n'))
    src.unread(block)
    reader = LineReader(src, 1 << 20)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        items = list(iter(lambda: reader.next(final=True), None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [getattr(i, "reason", i) for i in items] == ["too_large", b'{"b": 1}\n', b'{"c": 2}\n']
    assert reader.offset == len(block) + 9
    assert peak < 4 << 20, peak  # the old slicing held a second copy: > 24 MiB


PROFILE_SPEC = """
source: {type: file, path: x.jsonl}
models:
  - name: m
    task: binary
    window: 1m
    features: {c: categorical}
    drift: {profile: p.json}
"""


@pytest.mark.parametrize("value", ["x", -1, 1e308, None, {"a": 1}])
def test_a_profile_with_values_of_the_wrong_type_is_a_located_spec_error(
        tmp_path, monkeypatch, capsys, value):
    """A profile of the right shape whose counts are of the wrong type or range was a
    traceback (TypeError, IndexError, OverflowError…) from ``validate`` and ``run``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(PROFILE_SPEC)
    counts = {"kind": "categorical", "vocabulary": ["a"], "counts": value, "missing": 0,
              "mismatches": 0}
    (tmp_path / "p.json").write_text(json.dumps({
        "format_version": 1, "model": "m", "task": "binary",
        "overall": {"task": "binary", "summaries": {"c": counts}}}))
    assert main(["validate", "-c", "spec.yaml"]) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:8:22: models[0].drift.profile: " in err, err
    assert "p.json: overall.summaries.c.counts: expected " in err, err  # file, JSON path
    assert "baseline build" in err, err
    assert "Traceback" not in err


def test_a_quoted_field_over_the_limit_is_one_too_large_row():
    """A CSV row whose quoted field spans lines past max_record_bytes was cut at the limit and
    every later line of the field became a ragged row (3 million bad_csv_row dead letters for
    a 6 MB field); now the field's lines are dropped until it closes: one too_large reject at
    the row's first line, and the next row reads as it is."""
    from monitor.ingest.csvrows import CsvRows

    rows = CsvRows(b"a,b\n", limit=64)
    lines = [b'1,"x\n'] + [b"y\n"] * 200 + [b'"\n', b"2,z\n"]
    got = [rows.add(line, n) for n, line in enumerate(lines, start=2)]
    bad = [r for r in got if r is not None]
    assert [(r.reason, r.line) for r in bad] == [("too_large", 2)], bad
    assert bad[0].raw.startswith('1,"x\ny\n') and len(bad[0].raw) <= 64 + 3
    frame, refused, at = rows.take()
    assert refused == []
    assert frame.to_dict(orient="records") == [{"a": 2, "b": "z"}] and at == [204]
    rows.add(b'3,"open\n', 205)
    rows.add(b"y" * 100 + b"\n", 206)
    assert rows.pending and rows.finish().line == 205  # unterminated at the end: its line


def test_a_reference_without_a_categorical_feature_builds_a_profile(tmp_path, monkeypatch,
                                                                    capsys):
    """A declared text feature absent from every reference record (a CSV without its
    column, read row by row: a ragged row) was an IndexError traceback from ``baseline
    build`` (no value to share)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(
        "schema: {time: ts, score: score, label: label}\n"
        "models:\n  - {name: m, task: binary, window: 1m, features: {c: categorical}}\n")
    (tmp_path / "ref.csv").write_text("ts,score,label\n" + "".join(
        f"{1_700_000_000 + i},0.5,{i % 2}\n" for i in range(300)) + "1,2\n")  # row by row
    assert main(["baseline", "build", "-c", "spec.yaml", "--data", "ref.csv", "-o", "p.json",
                 "-q"]) == 0, capsys.readouterr().err
    c = json.loads((tmp_path / "p.json").read_text())["overall"]["summaries"]["c"]
    assert c["missing"] == 300 and c["vocabulary"] == []
