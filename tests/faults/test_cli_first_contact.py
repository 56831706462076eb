"""What a new user meets first, each defect found by trying the README and docs as one would:
an output path that cannot be written is one line (no traceback), ``init`` does not overwrite
an edited spec, ``--report`` is checked before a replay, a replay says why records were
rejected and where they went, the table does not point at a ``/metrics`` that is not
served, the alert database is private, and the example spec's predicate means what its name
says."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import orjson
import pytest

from alerts.outbox import Outbox
from monitor.cli import main
from monitor.outputs.table import TablePrinter
from monitor.runtime.app import RunOptions, run
from slices.load import load_spec, load_spec_text
from slices.predicate import parse_predicate

REPO = Path(__file__).resolve().parents[2]
SPEC = """
version: 1
schema: {time: ts}
source: {type: file, path: preds.jsonl}
models:
  - name: m
    task: binary
    window: 1m
    features: {c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
"""


@pytest.fixture()
def user(tmp_path, monkeypatch):
    """A directory with a spec and 30 records in it; ``blocked`` is a regular file, so any
    path under it cannot be created."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "preds.jsonl").write_bytes(b"".join(
        orjson.dumps({"ts": 1.785e9 + i, "features": {"c": "ab"[i % 2]},
                      "prediction": {"score": 0.9}, "label": 1}) + b"\n" for i in range(30)))
    (tmp_path / "blocked").write_text("")
    return tmp_path


@pytest.mark.parametrize("argv", [
    ["init", "--from", "preds.jsonl", "-o", "blocked/spec.yaml"],
    ["prom-rules", "-c", "spec.yaml", "-o", "blocked/rules.yml"],
    ["grafana", "-c", "spec.yaml", "-o", "blocked/grafana"],
    ["run", "-c", "spec.yaml", "--listen", "", "-q", "--dead-letter", "blocked/dead.jsonl"],
    ["run", "-c", "spec.yaml", "--listen", "", "-q", "--results", "blocked/h/results.jsonl"],
], ids=lambda a: " ".join(a[:1] + [x for x in a if x.startswith("-") and x != "-q"][-1:]))
def test_an_unwritable_output_is_one_line_naming_it(user, capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("slicewatch: error: ") and "blocked" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_init_does_not_overwrite_an_edited_spec(user, capsys):
    (user / "mine.yaml").write_text("# my edits\n")
    assert main(["init", "--from", "preds.jsonl", "-o", "mine.yaml"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (user / "mine.yaml").read_text() == "# my edits\n"
    assert main(["init", "--from", "preds.jsonl", "-o", "mine.yaml", "--force"]) == 0
    assert main(["validate", "-c", "mine.yaml"]) == 0


def test_report_path_is_checked_before_the_replay(user, capsys):
    assert main(["run", "-c", "spec.yaml", "--listen", "", "-q",
                 "--report", "missing-dir/report.html"]) == 2
    out = capsys.readouterr()
    assert "--report missing-dir/report.html: its directory does not exist" in out.err
    assert "records" not in out.out  # nothing was replayed


def _replay(text: str, **opts) -> str:
    out = io.StringIO()
    run(load_spec_text(text), RunOptions(listen="", quiet=True, **opts), out=out)
    return out.getvalue()


def test_a_replay_says_why_records_were_rejected_and_where_they_went(user):
    lines = (user / "preds.jsonl").read_bytes().replace(b'"ts"', b'"timestamp"')
    (user / "preds.jsonl").write_bytes(lines + b'{"ts": 1, "features"')  # + a partial line
    text = SPEC.replace("preds.jsonl", str(user / "preds.jsonl"))
    out = _replay(text)
    assert ("slicewatch: rejected: 30 missing_field:time (no event time at the schema path; "
            "schema.time is 'ts'), 1 invalid_json (the line is not JSON); not kept: set "
            "source.dead_letter or pass --dead-letter FILE to see them") in out, out
    assert "every record was rejected: compare the spec's schema paths" in out
    out = _replay(text, dead_letter=str(user / "dead.jsonl"))
    assert f"each with its reason in {user / 'dead.jsonl'}" in out
    assert len((user / "dead.jsonl").read_bytes().splitlines()) == 31


def test_a_clean_replay_prints_no_reject_line(user):
    out = _replay(SPEC.replace("preds.jsonl", str(user / "preds.jsonl")))
    assert "30 records, 0 rejected" in out and "rejected:" not in out


def test_the_table_points_at_metrics_only_when_they_are_served(user):
    text = SPEC.replace("preds.jsonl", str(user / "preds.jsonl"))
    spec = load_spec_text(text)
    for rest, opts in [("not shown (--results FILE keeps them all)", {}),
                       (f"in {user / 'h.jsonl'}", {"results": str(user / "h.jsonl")})]:
        out = io.StringIO()
        printer = TablePrinter({"m": "binary"}, out=out, max_rows=1, rest=rest)
        run(spec, RunOptions(listen="", quiet=True, **opts), out=io.StringIO(),
            listeners=[printer])
        assert f"… 2 more slices {rest}" in out.getvalue()
    out = _replay(text)
    assert "on /metrics" not in out


def test_the_alert_database_is_created_private(tmp_path):
    Outbox(str(tmp_path / "alerts.db")).close()
    assert stat.S_IMODE(os.stat(tmp_path / "alerts.db").st_mode) == 0o600


class _Rides:
    """A batch of rides for a predicate (the protocol of ``slices.predicate``)."""

    def __init__(self, **columns: list):
        self.columns = {k: np.asarray(v, dtype=float) for k, v in columns.items()}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def column(self, name: str) -> np.ndarray | None:
        return self.columns.get(name)

    def has_tag(self, tag: str) -> np.ndarray:
        return np.zeros(len(self), dtype=bool)


def test_the_pricing_examples_night_long_slice_is_long_night_rides():
    spec = load_spec(str(REPO / "configs" / "pricing.yaml"))
    rule = next(r for r in spec.models[0].slices if r.name == "night_long")
    rides = _Rides(hour=[23, 23, 3, 12], distance_km=[3, 15, 15, 15])
    assert parse_predicate(rule.where).mask(rides).tolist() == [False, True, True, False]


@pytest.mark.parametrize("argv", [["--windows", "0"], ["--per-window", "-5"],
                                  ["--seconds", "nan"]])
def test_demo_sizes_are_checked(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", *argv])
    assert stop.value.code == 2 and f"argument {argv[0]}: " in capsys.readouterr().err


def test_the_table_shows_a_version_whole_or_visibly_cut(user):
    """pricing's ``2026.11`` was printed ``2026.1`` (another version, to a reader)."""
    path = user / "preds.jsonl"
    for version, shown in [("2026.11", " 2026.11 "),
                           ("2026.11-release-candidate-7", " 2026.11-re…ndidate-7 ")]:
        path.write_bytes(b"".join(
            orjson.dumps({"ts": float(i), "model_version": version, "features": {"c": "a"},
                          "prediction": {"score": 0.9}, "label": 1}) + b"\n"
            for i in range(30)))
        out = io.StringIO()
        run(load_spec_text(SPEC.replace("preds.jsonl", str(path))),
            RunOptions(listen=""), out=out)
        assert shown in out.getvalue(), out.getvalue()


def test_a_reference_with_every_record_rejected_says_so(user, capsys):
    lines = (user / "preds.jsonl").read_bytes().replace(b'"ts"', b'"timestamp"')
    (user / "ref.jsonl").write_bytes(lines)
    assert main(["baseline", "build", "-c", "spec.yaml", "--data", "ref.jsonl",
                 "-o", "profile.json", "-q"]) == 1
    assert "all 30 reference record(s) were rejected" in capsys.readouterr().err


def test_alerts_list_says_since_when_with_a_readable_value(tmp_path, capsys):
    from alerts.engine import AlertEngine
    from alerts.model import Observation
    from tests.unit.test_alerts_engine import spec_of

    spec = spec_of("""
alerts:
  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}}
receivers: [{name: ok, type: webhook, url: "http://127.0.0.1:9/"}]
route: {receiver: ok}
""")
    engine = AlertEngine(spec, str(tmp_path / "alerts.db"))
    engine.observe([Observation(model="fraud", version="v1", slice="a", window_start=0.0,
                                window_end=60.0, metrics={"roc_auc": 0.5123456789}, count=10)])
    engine.close()
    assert main(["alerts", "list", "--db", str(tmp_path / "alerts.db")]) == 0
    line = capsys.readouterr().out
    assert "auc_low" in line and " value=0.5123 < 0.7  since 20" in line, line


def test_slicewatch_alone_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: slicewatch" in err and "validate  check a spec" in err
