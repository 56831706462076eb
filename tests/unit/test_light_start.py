"""A light process (issue 13): the run path loads River only when a concept detector is
configured, and never Numba."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "llvmlite", "river", "sklearn")

PROBE = f"""
import json, sys
from monitor.cli import main
code = main(sys.argv[1:])
print("LOADED", json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))
"""


def loaded_by_run(spec: Path, data: Path) -> list[str]:
    """The heavy modules a `slicewatch run` of ``spec`` over ``data`` imported, in a fresh
    interpreter (no HTTP server, no close-worker child sharing its modules)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, "run", "-c", str(spec), "-i", str(data),
                           "--listen", "", "-q"], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("LOADED")]
    assert line, proc.stdout + proc.stderr
    code, names = json.loads(line[-1].removeprefix("LOADED "))
    assert code == 0, proc.stdout + proc.stderr
    return names


def fraud_spec(tmp_path: Path, concept: bool) -> Path:
    text = (REPO / "configs" / "fraud.yaml").read_text(encoding="utf-8")
    text = text.replace("../examples/", f"{REPO}/examples/")
    if not concept:
        lines = [x for x in text.splitlines() if "concept: {detector" not in x]
        assert len(lines) < len(text.splitlines()), "fraud.yaml has no concept line any more"
        text = "\n".join(lines) + "\n"
    spec = tmp_path / "fraud.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


@pytest.mark.parametrize("concept", [False, True])
def test_river_loads_only_with_a_concept_detector_and_numba_never(tmp_path, concept):
    loaded = loaded_by_run(fraud_spec(tmp_path, concept), REPO / "examples" / "fraud.jsonl")
    assert "numba" not in loaded and "llvmlite" not in loaded
    assert ("river" in loaded) == concept

