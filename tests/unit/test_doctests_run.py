"""The docstring examples of the packages run with the suite (``--doctest-modules`` in the
pytest configuration): every module holding one is collected by a plain ``pytest``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "slices", "alerts")
EXAMPLE = re.compile(r"^\s*>>> (?!#)", re.MULTILINE)  # a statement, not a comment


def test_every_module_with_examples_is_collected():
    with_examples = {str(p.relative_to(REPO)) for pkg in PACKAGES
                     for p in (REPO / pkg).rglob("*.py") if EXAMPLE.search(p.read_text())}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *PACKAGES], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    collected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    assert len(with_examples) > 30
    assert with_examples <= collected, (with_examples - collected, out.stdout[-2000:])


def test_the_whole_suite_includes_the_packages():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'testpaths = \["tests", "monitor", "slices", "alerts"\]', text)
