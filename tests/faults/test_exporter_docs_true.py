"""The docs stay true: every metric family (and label set) named in README.md and docs/ is
exported by a running daemon and every exported family is documented; every option of every
subcommand's ``--help`` is documented and every option the docs give a command exists.

The metric check runs a real daemon (``python -m monitor.cli run``) on the bundled fraud
example (drift, concept drift, alert rules), and one on a canary stream of two versions
(version comparison), and scrapes ``/metrics`` over HTTP. Failures list
exactly what is undocumented or missing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli import _parser
from monitor.export.collector import SLICE_METRIC_HELP, slice_metric_name

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Families only a Kafka source exports (checked by the Kafka integration tests' runs).
KAFKA_ONLY = re.compile(r"slicewatch_kafka_")
NAME = re.compile(r"slicewatch_[a-z0-9_]*[a-z0-9](?![a-z0-9_<])")  # not slicewatch_slice_<metric>
ROW = re.compile(r"^\|\s*`(slicewatch_[a-z0-9_]+)`\s*\|\s*[a-z]+\s*\|([^|]*)\|")
BRACED = re.compile(r"`(slicewatch_[a-z0-9_]+)\{([a-z_, ]+)\}")


def _family(name: str) -> str:
    return name.removesuffix("_total")


def documented_families() -> dict[str, str]:
    """family → the doc file that names it first."""
    out: dict[str, str] = {}
    for doc in DOCS:
        for name in NAME.findall(doc.read_text()):
            out.setdefault(_family(name), doc.name)
    return out


def documented_labels() -> dict[str, set[str]]:
    """family → label names, from the metric tables (``same`` = the row above) and from
    ``name{a,b}`` mentions."""
    out: dict[str, set[str]] = {}
    for doc in DOCS:
        previous: set[str] = set()
        for line in doc.read_text().splitlines():
            if m := ROW.match(line):
                cell = m.group(2).strip()
                labels = previous if cell == "same" else \
                    {x.strip() for x in cell.split(",") if x.strip()}
                out[_family(m.group(1))] = previous = labels
            for name, labels in BRACED.findall(line):
                out.setdefault(_family(name), {x.strip() for x in labels.split(",")})
    return out


# Families that need two model versions in one window (a model with ``compare``): a second
# daemon runs this spec on a canary stream (v3 and v4 in the same windows).
COMPARE_SPEC = """
models:
  - name: canary
    task: binary
    window: 1m
    compare: {baseline: v3, candidate: v4}
    metrics: [count, accuracy, roc_auc, log_loss, ece]
    features: {c: categorical}
    slices: [{overall: true}]
source: {type: file, path: canary.jsonl}
"""


def _canary(path: Path) -> None:
    import json
    import random

    rng = random.Random(0)
    with path.open("w") as fh:
        # ECE's interval needs 1000 labelled records in a window: 6000 a version, all in
        # the first minute.
        for i in range(6000):
            y = int(rng.random() < 0.4)
            for version in ("v3", "v4"):
                score = min(max(rng.gauss(0.35 + 0.3 * y, 0.2), 0.0), 1.0)
                fh.write(json.dumps({"model": "canary", "model_version": version,
                                     "prediction_id": f"{version}-{i}", "timestamp": i * 0.009,
                                     "features": {"c": "ab"[i % 2]},
                                     "prediction": {"score": score}, "label": y}) + "\n")


def _scrape(spec: Path, tmp: Path, done: str) -> str:
    """``/metrics`` of ``slicewatch run -c spec`` once ``done`` is in it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(spec),
         "-q", "--listen", f"127.0.0.1:{port}", "--linger", "-1",
         "--alerts-db", str(tmp / "alerts.db"), "--dead-letter", str(tmp / "dead.jsonl")],
        cwd=tmp, env={"PYTHONPATH": str(REPO), "PATH": ""}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the daemon never finished the example"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                            timeout=30) as resp:
                    text = resp.read().decode()
            except OSError:
                text = ""
            if done in text:
                return text
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ) -> dict:
    """family → set of label-name sets, from real daemons' /metrics (the fraud example, and
    a canary stream for the version comparison)."""
    from concurrent.futures import ThreadPoolExecutor

    tmp = tmp_path_factory.mktemp("docs")
    canary = tmp_path_factory.mktemp("canary")
    (canary / "spec.yaml").write_text(COMPARE_SPEC)
    _canary(canary / "canary.jsonl")
    with ThreadPoolExecutor(2) as pool:  # the two daemons run side by side
        jobs = [pool.submit(_scrape, REPO / "configs/fraud.yaml", tmp,
                            'slicewatch_windows_closed_total{model="fraud"} 4.0'),
                pool.submit(_scrape, canary / "spec.yaml", canary,
                            "slicewatch_version_diff_upper{")]
        texts = [job.result() for job in jobs]
    out: dict[str, set[frozenset]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            out.setdefault(fam.name, set()).update(frozenset(s.labels) for s in fam.samples)
    return out


def _slice_family_documented(name: str, docs_text: str) -> bool:
    """``slicewatch_slice_<metric>`` is documented by its template and the metric's name."""
    metric = next((m for m in SLICE_METRIC_HELP if slice_metric_name(m) == name), None)
    return metric is not None and "slicewatch_slice_<metric>" in docs_text and \
        f"`{metric}`" in docs_text


def test_every_exported_family_is_documented(exported):
    docs = documented_families()
    text = "\n".join(d.read_text() for d in DOCS)
    undocumented = sorted(n for n in exported
                          if n not in docs and not _slice_family_documented(n, text))
    assert not undocumented, ("exported but not named in README.md or docs/*.md: "
                              + ", ".join(undocumented))


def test_every_documented_family_is_exported(exported):
    missing = sorted(f"{n} ({doc})" for n, doc in documented_families().items()
                     if n not in exported and not KAFKA_ONLY.match(n))
    assert not missing, "named in the docs but not exported by a daemon: " + ", ".join(missing)


def test_documented_label_sets_are_the_exported_ones(exported):
    wrong = []
    for name, labels in sorted(documented_labels().items()):
        for got in exported.get(name, ()):
            if set(got) != labels:
                wrong.append(f"{name}: docs {{{','.join(sorted(labels))}}}, exported "
                             f"{{{','.join(sorted(got))}}}")
                break
    assert not wrong, "label sets that differ:\n" + "\n".join(wrong)


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every (sub)command."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _options() -> dict[tuple[str, ...], set[str]]:
    return {path: {o for a in p._actions for o in a.option_strings if o.startswith("--")}
            - {"--help"} for path, p in _commands(_parser())}


def test_every_option_in_help_is_documented():
    text = "\n".join(d.read_text() for d in DOCS)
    missing = sorted(f"slicewatch {' '.join(path)} {opt}".replace("  ", " ")
                     for path, opts in _options().items() for opt in opts
                     if not re.search(re.escape(opt) + r"(?![a-z-])", text))
    assert not missing, "options in --help but not in README.md or docs/*.md: " + \
        ", ".join(missing)


def test_every_documented_option_exists():
    known = set().union(*_options().values()) | {"--help"}
    named = set()
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            for command in re.findall(r"slicewatch [^`|;]*", line):  # a slicewatch command
                named |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command))
    unknown = sorted(named - known)
    assert not unknown, "options the docs give slicewatch that no subcommand has: " + \
        ", ".join(unknown)
