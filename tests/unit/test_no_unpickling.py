"""Project hook: nothing read from disk or the network may be unpickled. Flags any
``pickle.load(`` / ``pickle.loads(`` / ``Unpickler`` in monitor/, slices/ and alerts/ except
monitor/runtime/close_worker.py (which unpickles only the jobs the daemon itself pickled for its own
spawned worker process)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {"monitor/runtime/close_worker.py"}
PATTERN = re.compile(r"pickle\s*\.\s*loads?\s*\(|\bUnpickler\b|\bfrom\s+pickle\s+import\b")


def offenders(root: Path = REPO) -> list[str]:
    out = []
    for package in ("monitor", "slices", "alerts"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in ALLOWED:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PATTERN.search(line):
                    out.append(f"{rel}:{n}: {line.strip()}")
    return sorted(out)


def test_no_unpickling_outside_the_close_worker():
    assert offenders() == []


def test_the_hook_catches_what_it_should(tmp_path):
    (tmp_path / "monitor").mkdir()
    (tmp_path / "slices").mkdir()
    (tmp_path / "alerts").mkdir()
    (tmp_path / "monitor" / "x.py").write_text("import pickle\nv = pickle.loads(b)\n")
    (tmp_path / "alerts" / "y.py").write_text("class U(pickle.Unpickler): pass\n")
    (tmp_path / "slices" / "z.py").write_text("s = pickle.dumps(v)\n")
    assert offenders(tmp_path) == ["alerts/y.py:1: class U(pickle.Unpickler): pass",
                                   "monitor/x.py:2: v = pickle.loads(b)"]
