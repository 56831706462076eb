"""Imports go one way (issue #12): the core never reaches into a source or the command line;
exit codes live in one module; a finished run closes the results file it opened."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import orjson

import monitor.runtime.kafka_run
import monitor.runtime.wiring
from monitor.runtime.app import RunOptions, run
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


#: What each package of ``monitor/`` may import (besides itself, ``slices`` and the standard
#: library); the picture is docs/architecture.md. The core never imports the shell.
MAY_IMPORT = {
    "core": set(),
    "drift": {"core"},
    "discovery": {"core"},
    "state": set(),
    "ingest": {"core", "state"},
    "export": {"core", "discovery"},
    "outputs": {"core", "drift", "discovery", "alerts"},
    "generate": {"core", "drift", "export", "alerts"},
    "runtime": {"core", "drift", "discovery", "state", "ingest", "export", "outputs",
                "generate", "alerts"},
    # scale-out roles (issue #14): the daemon's code reused by workers and the evaluator
    "scale": {"core", "drift", "state", "ingest", "export", "outputs", "alerts", "runtime"},
}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "monitor" and len(parts) > 1 else parts[0]


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for path in (REPO / "monitor").rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        here = package_of(module)
        if here not in MAY_IMPORT:
            continue
        for target in imports(path):
            there = package_of(target)
            if target.split(".")[0] not in PACKAGES or there in {here, "slices"}:
                continue
            if there not in MAY_IMPORT[here]:
                wrong.append(f"{module} → {target}")
    assert wrong == []


def test_the_tree_has_no_loose_modules_beside_its_packages():
    loose = sorted(p.name for p in (REPO / "monitor").glob("*.py"))
    assert loose == ["__init__.py", "cli.py"]
    assert set(MAY_IMPORT) == {p.name for p in (REPO / "monitor").iterdir()
                               if (p / "__init__.py").exists()}


def test_the_daemon_imports_no_source_but_their_common_chunk():
    sources = {"monitor.ingest.file", "monitor.ingest.kafka", "monitor.ingest.lines",
               "monitor.ingest.csvrows"}
    found = imports(REPO / "monitor" / "runtime" / "daemon.py")
    assert "monitor.ingest.source" in found
    assert not {m for m in found if m in sources or m.rsplit(".", 1)[0] in sources}


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
    assert defined == {"monitor/runtime/exit_codes.py"}


def test_slices_and_alerts_never_import_monitor():
    for p in modules():
        if p.relative_to(REPO).parts[0] != "monitor":
            assert not [m for m in imports(p) if m.split(".")[0] == "monitor"], p


def test_the_kafka_wiring_has_no_second_command_line():
    assert not hasattr(monitor.runtime.kafka_run, "main")
    assert "monitor.runtime.kafka_run -c" not in (REPO / "docs" / "kafka.md").read_text()


def test_a_finished_run_closes_its_results_file(tmp_path, monkeypatch):
    writers = []

    class Recorded(monitor.runtime.wiring.ResultsWriter):
        def __init__(self, path: str, **kwargs):
            super().__init__(path, **kwargs)
            writers.append(self)

    monkeypatch.setattr(monitor.runtime.wiring, "ResultsWriter", Recorded)
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"timestamp": 60.0 * i, "prediction": {"score": 0.5}})
                              + b"\n" for i in range(3)))
    spec = load_spec_text("models:\n  - name: m\n    task: binary\n    window: 1m\n")
    run(spec, RunOptions(inputs=(str(data),), listen="", quiet=True,
                         results=str(tmp_path / "results.jsonl")), out=io.StringIO())
    assert len(writers) == 1 and writers[0]._fh.closed
    lines = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()]
    assert [x["type"] for x in lines] == ["result"] * 3 + ["run"]


def test_no_import_cycles_not_even_lazy_ones():
    names = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for p in modules()}
    graph = {}
    for name, path in names.items():
        targets = {t if t in names else t.rsplit(".", 1)[0] for t in imports(path)}
        graph[name] = {t for t in targets if t in names and t != name
                       and not name.startswith(t + ".")}   # a package's own __init__ is no cycle
    cycles, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(" → ".join([*trail[trail.index(nxt):], nxt]))
            elif state[nxt] == 0:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    assert cycles == []
