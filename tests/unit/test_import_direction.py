"""Imports go one way (issue #12): the core never reaches into a source or the command line;
exit codes live in one module; a finished run closes the results file it opened."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import orjson

import monitor.app
import monitor.kafka_run
from monitor.app import RunOptions, run
from slices.load import load_spec_text

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "slices", "alerts")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_the_daemon_imports_no_source_but_their_common_chunk():
    found = imports(REPO / "monitor" / "daemon.py")
    assert not {m for m in found if m.startswith("monitor.sources.")} - {
        "monitor.sources.base", "monitor.sources.base.Chunk"}


def test_nothing_but_the_entry_point_imports_the_command_line():
    offenders = [str(p.relative_to(REPO)) for p in modules()
                 if p.name != "__main__.py" and any(m == "monitor.cli" or m.startswith(
                     "monitor.cli.") for m in imports(p))]
    assert offenders == []


def test_exit_codes_are_defined_in_one_module():
    defined = set()
    for p in modules():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign):
                names = [n.id for t in node.targets for n in ast.walk(t)
                         if isinstance(n, ast.Name) and n.id.startswith("EXIT_")]
                if names:
                    defined.add(str(p.relative_to(REPO)))
    assert defined == {"monitor/exit_codes.py"}


def test_slices_and_alerts_never_import_monitor():
    for p in modules():
        if p.relative_to(REPO).parts[0] != "monitor":
            assert not [m for m in imports(p) if m.split(".")[0] == "monitor"], p


def test_the_kafka_wiring_has_no_second_command_line():
    assert not hasattr(monitor.kafka_run, "main")
    assert "monitor.kafka_run -c" not in (REPO / "docs" / "kafka.md").read_text()


def test_a_finished_run_closes_its_results_file(tmp_path, monkeypatch):
    writers = []

    class Recorded(monitor.app.ResultsWriter):
        def __init__(self, path: str):
            super().__init__(path)
            writers.append(self)

    monkeypatch.setattr(monitor.app, "ResultsWriter", Recorded)
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"timestamp": 60.0 * i, "prediction": {"score": 0.5}})
                              + b"\n" for i in range(3)))
    spec = load_spec_text("models:\n  - name: m\n    task: binary\n    window: 1m\n")
    run(spec, RunOptions(inputs=(str(data),), listen="", quiet=True,
                         results=str(tmp_path / "results.jsonl")), out=io.StringIO())
    assert len(writers) == 1 and writers[0]._fh.closed
    assert (tmp_path / "results.jsonl").read_bytes().count(b"\n") == 3
