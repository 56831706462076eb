"""Command-line rough edges a new user hit: ``run --follow`` on a missing path names it in one
line, ``--role worker`` on a file source is a usage error (exit 2), and ``validate`` warns (exit
0) when ``source.path`` matches no file."""

from __future__ import annotations

import pytest

from monitor.cli import main
from tests.faults.test_cli_first_contact import SPEC  # source.path: preds.jsonl


@pytest.fixture()
def user(tmp_path, monkeypatch):
    """A spec whose ``source.path`` (preds.jsonl) does not exist yet."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path


def test_follow_on_a_missing_path_names_it_in_one_line(user, capsys):
    assert main(["run", "-c", "spec.yaml", "--follow", "--listen", "", "-q",
                 "-i", "nothere.jsonl"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("slicewatch: error: no file matches 'nothere.jsonl' ("), err
    assert "[" not in err, err


def test_a_role_on_a_file_source_is_a_usage_error(user, capsys):
    (user / "preds.jsonl").write_text("")
    assert main(["run", "-c", "spec.yaml", "--role", "worker", "--listen", "", "-q"]) == 2
    assert "--role worker needs source.type kafka" in capsys.readouterr().err


def test_validate_warns_when_the_source_path_matches_no_file(user, capsys):
    assert main(["validate", "-c", "spec.yaml"]) == 0
    err = capsys.readouterr().err
    assert "spec.yaml:4:28: source.path: warning: no file matches" in err, err
    assert "preds.jsonl" in err
    (user / "preds.jsonl").write_text("")
    assert main(["validate", "-c", "spec.yaml"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_run_i_does_not_warn_about_the_source_path_it_replaces(user, capsys):
    (user / "other.jsonl").write_text('{"ts": 60, "prediction": {"score": 0.5}}\n')
    assert main(["run", "-c", "spec.yaml", "-i", "other.jsonl", "--listen", "", "-q"]) == 0
    assert "source.path" not in capsys.readouterr().err
    assert main(["run", "-c", "spec.yaml", "--listen", "", "-q"]) == 1  # no -i: warned once
    assert capsys.readouterr().err.count("source.path: warning: no file matches") == 1


def test_a_spec_the_roles_cannot_scale_is_a_usage_error(tmp_path, monkeypatch, capsys):
    """check_scalable's refusal exits 2 like the other spec errors (before any broker)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(
        "source: {type: kafka, kafka: {bootstrap_servers: '127.0.0.1:9', group_id: g,"
        " topics: {predictions: p}}}\ncheckpoint: cp.db\n"
        "models: [{name: m, task: binary, window: 1000 records}]\n")
    assert main(["run", "-c", "spec.yaml", "--role", "worker", "--listen", "", "-q"]) == 2
    err = capsys.readouterr().err
    assert "slicewatch: error: --role worker/evaluator cannot run this spec exactly" in err
    assert "model m: count windows" in err and "Traceback" not in err
