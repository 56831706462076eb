"""The results history is what docs/results-format.md says: every line a real run writes
validates against docs/results.schema.json, and appending is an explicit choice."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from monitor.cli import main
from monitor.outputs.results import ResultsExistError, ResultsWriter

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                     "results.schema.json").read_text())


@pytest.fixture
def history(replayed_history):
    return replayed_history  # tests/conftest.py: 8 windows of 1500 records, one replay


def test_every_line_a_run_writes_matches_the_schema(history):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    lines = [orjson.loads(x) for x in history["results"].read_bytes().splitlines()]
    kinds = {x.get("type") for x in lines}
    assert {"result", "histogram", "run", "alert"} <= kinds
    for line in lines:
        validator.validate(line)


def test_the_schema_can_fail():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not validator.is_valid({"type": "result", "model": "m"})
    assert not validator.is_valid({"type": "histogram", "model": "m", "version": "",
                                   "slice": "overall", "window_start": 0, "feature": "a",
                                   "kind": "numeric", "counts": [-1]})


def test_the_run_line_counts_the_run(history):
    runs = [orjson.loads(x) for x in history["results"].read_bytes().splitlines()
            if b'"type":"run"' in x]
    assert len(runs) == 1
    assert runs[0]["records"] == {"fraud": 8 * 1500} and runs[0]["windows"] == {"fraud": 8}


def test_an_existing_history_is_refused_unless_appending(history, tmp_path, capsys):
    path = tmp_path / "h.jsonl"
    path.write_bytes(history["results"].read_bytes())
    with pytest.raises(ResultsExistError, match="--results-append"):
        ResultsWriter(str(path), append=False)
    args = ["run", "-c", str(history["spec"]), "--listen", "", "-q", "--alerts-db",
            str(tmp_path / "a.db"), "--results", str(path)]
    before = path.read_bytes()
    assert main(args) == 2
    assert "--results-append" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main([*args, "--results-append"]) == 0
    after = path.read_bytes()
    assert after.startswith(before) and after.count(b'"type":"run"') == 2
    assert main(["run", "-c", str(history["spec"]), "--results-append"]) == 2
