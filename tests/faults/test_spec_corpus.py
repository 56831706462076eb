"""The contract between ``validate`` and ``run`` (issue #18.5), on a corpus of small specs.

tests/faults/spec_corpus/ holds one spec per way a spec can be wrong (each reading the tiny
input beside it); its ``# expect:`` lines name what the problem says. For every bad spec
``validate`` exits 2 with that problem, and ``run`` exits 2 with the same lines and never a
traceback: nothing ``run`` would reject, at its start or mid-stream, passes ``validate``.
``good.yaml`` is the control: both commands accept it and ``run`` processes the input.

``run`` goes through the command's own entry point (``monitor.cli.main``) in one child
process for the whole corpus (a spec ``run`` wrongly accepted would run: the child has a
deadline); two specs also run as real ``slicewatch run`` processes for the exit code.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor import cli

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "spec_corpus"
SPECS = sorted(p.name for p in CORPUS.glob("*.yaml"))
BAD = [s for s in SPECS if s != "good.yaml"]
LOCATED = re.compile(r"^.+:\d+:\d+: .+?: .+")

RUN_ALL = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from monitor import cli
    out = {}
    for path in sys.argv[1:]:
        err, std = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                rc = cli.main(["run", "-q", "-c", path])
        except BaseException:  # noqa: BLE001 - what the user would have seen
            rc, err = "crash", io.StringIO(err.getvalue() + traceback.format_exc())
        out[path] = {"rc": rc, "stderr": err.getvalue(), "stdout": std.getvalue()}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The corpus copied to a scratch directory (runs write checkpoints beside the spec)."""
    where = tmp_path_factory.mktemp("corpus") / "spec_corpus"
    shutil.copytree(CORPUS, where)
    shutil.copy(REPO / "examples" / "fraud-profile.json", where / "fraud-profile.json")
    return where


@pytest.fixture(scope="module")
def runs(corpus) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUN_ALL, *(str(corpus / s) for s in SPECS)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {Path(k).name: v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["validate", "-c", str(path)])
    return rc, out.getvalue(), err.getvalue()


def expected(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def test_corpus_is_there():
    assert len(BAD) >= 20 and "good.yaml" in SPECS
    assert all(expected(CORPUS / s) for s in SPECS), "every corpus spec says what it expects"


@pytest.mark.parametrize("name", BAD)
def test_validate_rejects_what_run_rejects(corpus, runs, name):
    rc, out, err = validate(corpus / name)
    assert rc == 2, f"validate accepted {name}: {out}{err}"
    problems = err.splitlines()[:-1]
    assert problems and all(LOCATED.match(line) for line in problems), err
    for text in expected(CORPUS / name):
        assert text in err, (text, err)
    ran = runs[name]
    assert "Traceback" not in ran["stderr"], ran["stderr"]
    assert ran["rc"] == 2, ran
    assert ran["stderr"] == err


def test_good_spec_validates_and_runs(corpus, runs):
    rc, _, err = validate(corpus / "good.yaml")
    assert (rc, err) == (0, ""), err
    assert runs["good.yaml"]["rc"] == 0, runs["good.yaml"]
    assert "40 records, 0 rejected" in runs["good.yaml"]["stdout"]


@pytest.mark.parametrize("name", ["kafka_no_checkpoint.yaml", "ks_on_categorical.yaml"])
def test_run_process_exit_code(corpus, name):
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-q", "-c",
                           str(corpus / name)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert (proc.returncode, proc.stderr) == (2, validate(corpus / name)[2])
