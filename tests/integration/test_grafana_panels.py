"""Every panel query of every generated dashboard returns data from a real Prometheus that
scrapes real daemons.

Daemons (subprocesses, replay then linger) run the demo spec, configs/fraud.yaml and
configs/pricing.yaml on generated inputs that also contain rejected and late records, plus an
"extended" demo spec with drift, a concept detector and alerting. Prometheus scrapes each
through a file_sd target; each query's template variables are resolved the way Grafana does
(``label_values`` against Prometheus, regex-escaped multi values), restricted to that
daemon's ``instance``, so other daemons scraped by the same Prometheus cannot answer for it.

Two checks per query: the instant query returns a non-empty vector, and every metric name
and label the query names (matchers, ``by``/``on`` lists, ``{{legend}}`` labels) is one the
daemon really exports.

Scrapes time out after 1 s (scripts/services): on a loaded machine a daemon's /metrics can take
longer, the scrape fails and Prometheus marks every series of that daemon stale until the next
good scrape — an instant query then returns nothing. So each query is retried until it returns
data (deadline ``tests.wait.DEADLINE``); a query that never does still fails.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests

from monitor.export.families import FAMILIES
from monitor.generate.dashboards import dashboards
from monitor.generate.promql import regex_escape
from monitor.runtime.demo import DEMO_SPEC, demo_records
from slices.load import load_spec, load_spec_text
from tests.wait import DEADLINE, HTTP_TIMEOUT, wait_until

REPO = Path(__file__).resolve().parents[2]
JOB = "slicewatch-test"
RATE_INTERVAL = "20s"
ALL = "$__all"  # Grafana: max($__interval + scrape, 4 × scrape), scrape = 1 s here

# Families a daemon does not export yet: their queries are xfail(strict=True) — once exported
# they XPASS, which fails, and the name must leave this set. Empty: everything is wired.
PENDING: set[str] = set()

EXTENDED = DEMO_SPEC.replace(
    "      device: categorical\n",
    "      device: categorical\n    drift: {rolling_windows: 2, concept: ADWIN}\n"
    "    compare: {baseline: v3, paired: true}\n") + """
receivers:
  - {name: am, type: alertmanager, url: "%(alertmanager)s"}
alerts:
  - {name: auc_low, model: fraud, metric: roc_auc, threshold: {lower: 0.99}, severity: warning}
  - {name: drifting, model: fraud, drift: true}
"""
SPECS = {  # name → spec text / path (paths and addresses are placeholders for generation)
    "demo": DEMO_SPEC % {"path": "x.jsonl", "dead": "d.jsonl", "listen": "127.0.0.1:0"},
    "fraud": REPO / "configs" / "fraud.yaml",
    "pricing": REPO / "configs" / "pricing.yaml",
    "extended": EXTENDED % {"path": "x.jsonl", "dead": "d.jsonl", "listen": "127.0.0.1:0",
                            "alertmanager": "http://127.0.0.1:9"},
}


def _spec(name: str):
    src = SPECS[name]
    return load_spec(str(src)) if isinstance(src, Path) else load_spec_text(src, f"{name}.yaml")


def _exprs(board: dict) -> list[tuple[str, str]]:
    """(what, expr) of every panel target and annotation query of a dashboard."""
    out = []
    for p in board["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]))
    for a in board["annotations"]["list"]:
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", a["expr"]))
    return out


def _cases():
    for spec_name in SPECS:
        for file, board in dashboards(_spec(spec_name)).items():
            for what, expr in _exprs(board):
                pending = sorted(n for n in set(re.findall(r"\bslicewatch_\w+", expr))
                                 if n in PENDING)
                marks = [pytest.mark.xfail(strict=True, reason=f"not exported yet: "
                                           f"{', '.join(pending)}")] if pending else []
                yield pytest.param(spec_name, file, what, expr, marks=marks,
                                   id=f"{spec_name}:{file}:{what}")


# ------------------------------------------------------------------------------ inputs


def _fraud_records(windows: int = 12, per_window: int = 500) -> list[bytes]:
    """Demo records (country in features and ctx, so the demo spec and configs/fraud.yaml
    both read it) with records in both specs' critical slices (3 per window — below their
    min_size, so early windows suppress them — and 60 per window in the last three), two
    rejected lines and late records (two hours before the stream) at the end."""
    rng = np.random.default_rng(11)
    lines: list[bytes] = []
    start = None
    for w, records in enumerate(demo_records(windows, per_window, seed=3)):
        t0 = records[0]["timestamp"]
        start = start or t0
        for i in range(60 if w >= windows - 3 else 3):
            records.append({
                "model": "fraud", "model_version": "v3", "prediction_id": f"c{w}-{i}",
                "timestamp": t0 + 1 + i * 0.5,
                "features": {"amount": 800.0, "account_age_days": 5.0, "country": "US",
                             "device": "ios"},
                "prediction": {"score": float(rng.uniform())}, "label": int(rng.random() < .3),
                "tags": ["new_user"], "outcome": "ok"})
        records.sort(key=lambda r: r["timestamp"])
        for r in records:
            r["ctx"] = {"country": r["features"]["country"]}
            lines.append(orjson.dumps(r))
    lines += [b"{not json", b'{"model": "fraud", "prediction_id": "no-time"}']
    late = orjson.loads(lines[0])
    for i in range(5):
        lines.append(orjson.dumps({**late, "prediction_id": f"late-{i}",
                                   "timestamp": start - 7200}))
    return lines


def _with_canary(lines: list[bytes]) -> list[bytes]:
    """``lines`` plus a shadow v4 of every other fraud v3 record (same prediction id, a
    noisier score), next to it: the extended spec compares v4 with v3."""
    rng = np.random.default_rng(12)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        score = rec.get("prediction", {}).get("score")
        if i % 2 == 0 and rec.get("model_version") == "v3" and score is not None:
            score = float(np.clip(score + rng.normal(0, 0.2), 0, 1))
            out.append(orjson.dumps({**rec, "model_version": "v4",
                                     "prediction": {"score": score}}))
    return out


def _pricing_csv(path: Path) -> None:
    """examples/pricing.csv plus a rejected row (no time), a late row, and a later hour with
    two night rides (below night_long's min_size, so suppressed)."""
    with open(REPO / "examples" / "pricing.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, first, last = rows[0], rows[1], rows[-1]
    col = {name: i for i, name in enumerate(header)}
    bad = list(first)
    bad[col["ts"]] = ""  # no event time: rejected (a text value would turn the column into text)
    late = list(first)
    late[col["request_id"]] = "late-1"
    extra = []
    for i in range(2):
        row = list(last)
        row[col["request_id"]] = f"night-{i}"
        row[col["ts"]] = str(float(last[col["ts"]]) + 7200 + i)
        row[col["features.hour"]] = "23"
        row[col["features.distance_km"]] = "15"
        extra.append(row)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([*rows, bad, *extra, late])


def _small_batches(config: Path, out: Path) -> Path:
    """A copy of ``config`` reading 500-record batches, so late records arrive after their
    window closed (within one batch they would not be late)."""
    text, n = re.subn(r"batch_size: \d+", "batch_size: 500", config.read_text())
    assert n == 1, config
    # paths in a spec are relative to its file: keep pointing at the repository's examples
    text = text.replace("../examples/", f"{REPO}/examples/").replace("../out/", f"{out.parent}/")
    out.write_text(text)
    return out


# ------------------------------------------------------------------------------ daemons


class Daemon:
    """A ``slicewatch run`` subprocess replaying its input then serving /metrics."""

    def __init__(self, args: list[str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", *args, "--listen", "127.0.0.1:0",
             "--linger", "-1", "-q"], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.address: str | None = None
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"serving http://([\d.]+:\d+)/metrics", line)
            if m and self.address is None:
                self.address = m.group(1)
            if "input done" in line:
                self.done.set()

    def wait_ready(self, timeout: float = DEADLINE) -> str:
        def ready() -> str | None:
            if self.done.is_set() and self.address:
                return self.address
            assert self.proc.poll() is None, "daemon exited:\n" + "".join(self.lines)
            return None

        return wait_until(ready, timeout, what="daemon finished its replay", interval=0.05,
                          detail=lambda: "".join(self.lines))

    def reap(self) -> None:
        """Wait for the process to end after ``terminate()`` (killed after the deadline)."""
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def daemons(tmp_path_factory, prometheus_url, prometheus_targets_dir, alertmanager_url):
    """name → instance (``127.0.0.1:PORT``) of a scraped daemon, once Prometheus has enough
    samples of it for rate() over the rate interval."""
    tmp = tmp_path_factory.mktemp("grafana-panels")
    fraud_input = tmp / "fraud.jsonl"
    fraud_input.write_bytes(b"\n".join(_fraud_records()) + b"\n")
    ext_input = tmp / "extended.jsonl"
    ext_input.write_bytes(b"\n".join(_with_canary(_fraud_records())) + b"\n")
    pricing_input = tmp / "pricing.csv"
    _pricing_csv(pricing_input)
    texts = {
        "demo": DEMO_SPEC % {"path": fraud_input, "dead": tmp / "demo-dl.jsonl",
                             "listen": "127.0.0.1:0"},
        "extended": EXTENDED % {"path": ext_input, "dead": tmp / "ext-dl.jsonl",
                                "listen": "127.0.0.1:0", "alertmanager": alertmanager_url},
    }
    fraud_spec = _small_batches(REPO / "configs/fraud.yaml", tmp / "fraud.yaml")
    pricing_spec = _small_batches(REPO / "configs/pricing.yaml", tmp / "pricing.yaml")
    args = {"fraud": ["-c", str(fraud_spec), "-i", str(fraud_input),
                      "--dead-letter", str(tmp / "fraud-dl.jsonl")],
            "pricing": ["-c", str(pricing_spec), "-i", str(pricing_input)]}
    for name, text in texts.items():
        (tmp / f"{name}.yaml").write_text(text)
        args[name] = ["-c", str(tmp / f"{name}.yaml")]
    running = {name: Daemon(a, tmp) for name, a in args.items()}
    target_files = []
    try:
        instances = {name: d.wait_ready() for name, d in running.items()}
        tag = uuid.uuid4().hex[:8]
        for name, instance in instances.items():
            path = prometheus_targets_dir / f"grafana-{name}-{tag}.json"
            tmp_file = path.with_suffix(".tmp")
            tmp_file.write_text(json.dumps([{"targets": [instance],
                                             "labels": {"spec": name}}]))
            os.replace(tmp_file, path)
            target_files.append(path)
        for instance in instances.values():
            _wait_for_samples(prometheus_url, instance)
        yield instances
    finally:
        for path in target_files:
            path.unlink(missing_ok=True)
        for d in running.values():  # all told to stop first: they shut down together
            d.proc.terminate()
        for d in running.values():
            d.reap()


def _wait_for_samples(prom: str, instance: str, timeout: float = DEADLINE) -> None:
    query = f'count_over_time(slicewatch_up_time_seconds{{instance="{instance}"}}[{RATE_INTERVAL}])'

    def enough() -> bool:
        result = _query(prom, query)
        return bool(result) and float(result[0]["value"][1]) >= 8

    wait_until(enough, timeout, what=f"8 samples of {instance} in Prometheus", interval=0.5)


def _query(prom: str, expr: str) -> list[dict]:
    r = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=HTTP_TIMEOUT)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _series(prom: str, selector: str) -> list[dict]:
    r = requests.get(f"{prom}/api/v1/series", params={
        "match[]": selector, "start": time.time() - 120, "end": time.time()},
        timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, (selector, r.text)
    return r.json()["data"]


# ------------------------------------------------------------------------------ variables


def _escape_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _substitute(text: str, values: dict[str, str], multi: dict[str, bool]) -> str:
    """Grafana's Prometheus interpolation: multi-value variables are regex-escaped."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name == "__rate_interval":
            return RATE_INTERVAL
        if name == "__interval":
            return "15s"
        if name not in values:
            raise AssertionError(f"unknown template variable ${name} in {text!r}")
        value = values[name]
        if value == ALL:
            return ".*"  # the variables' allValue
        return _escape_string(regex_escape(value) if multi[name] else value)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, text)


def _needed(board: dict, expr: str) -> set[str]:
    """Variables ``expr`` uses, with those their own queries use."""
    queries = {v["name"]: v["query"]["query"] for v in board["templating"]["list"]}
    todo = set(re.findall(r"\$\{?(\w+)", expr)) & set(queries)
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        needed.add(name)
        todo |= (set(re.findall(r"\$\{?(\w+)", queries[name])) & set(queries)) - needed
    return needed


def _resolve(prom: str, board: dict, instance: str, expr: str) -> dict[str, str]:
    """Resolve the variables ``expr`` needs, in dashboard order, picking this daemon's
    job/instance, ``overall`` for slice and the first value of the others (``feature``:
    All, Grafana's default, since not every check applies to every feature); every variable
    query must return values."""
    values: dict[str, str] = {}
    multi = {v["name"]: v["multi"] for v in board["templating"]["list"]}
    needed = _needed(board, expr)
    for var in board["templating"]["list"]:
        if var["name"] not in needed:
            continue
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"])
        assert m, var["query"]
        selector = _substitute(m.group(1), values, multi)
        found = sorted({s[m.group(2)] for s in _series(prom, selector) if m.group(2) in s})
        if var["regex"]:
            found = [f for f in found if re.search(var["regex"].strip("/"), f)]
        assert found, f"variable ${var['name']}: {var['query']['query']} returned nothing"
        wanted = {"job": JOB, "instance": instance, "slice": "overall"}.get(var["name"])
        if var["name"] == "feature":
            values["feature"] = ALL
        elif wanted is not None:
            assert wanted in found, (var["name"], wanted, found)
            values[var["name"]] = wanted
        else:
            values[var["name"]] = found[0]
    return values


# ------------------------------------------------------------------------------ static check

_LABEL_LISTS = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _names(expr: str, legend: str = "") -> tuple[set[str], set[str]]:
    metrics = set(re.findall(r"\bslicewatch_\w+", expr))
    labels = set(_MATCHER.findall(expr)) | set(_LEGEND.findall(legend))
    for group in _LABEL_LISTS.findall(expr):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    return metrics, labels


def _exported(prom: str, instance: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in _series(prom, f'{{__name__=~"slicewatch_.*",instance="{instance}"}}'):
        out.setdefault(s["__name__"], set()).update(k for k in s if k != "__name__")
    return out


@pytest.fixture(scope="module")
def exported(daemons, prometheus_url):
    return {name: _exported(prometheus_url, inst) for name, inst in daemons.items()}


# ------------------------------------------------------------------------------ tests

_BOARDS = {name: dashboards(_spec(name)) for name in SPECS}


@pytest.mark.parametrize(("spec_name", "file", "what", "expr"), list(_cases()))
def test_panel_query_returns_data(spec_name, file, what, expr, daemons, exported,
                                  prometheus_url):
    board = _BOARDS[spec_name][file]
    instance = daemons[spec_name]
    values = _resolve(prometheus_url, board, instance, expr)
    legend = next((t.get("legendFormat", "") for p in board["panels"]
                   for t in p.get("targets", []) if t["expr"] == expr), "")
    metrics, labels = _names(expr, "" if legend == "__auto" else legend)
    live = exported[spec_name]
    for metric in metrics:
        assert metric in live, f"{what}: {metric} is not exported by the daemon"
    allowed = set().union(*(live[m] for m in metrics)) | {"job", "instance"}
    assert labels <= allowed, f"{what}: labels {sorted(labels - allowed)} not exported"
    multi = {v["name"]: v["multi"] for v in board["templating"]["list"]}
    # slice=overall first; events (concept drift) exist only on the slices that had one, so
    # fall back to Grafana's default selection, All.
    tries = [values] + ([{**values, "slice": ALL}] if "slice" in values else [])
    queries = [_substitute(expr, vals, multi) for vals in tries]

    def data() -> bool:
        for query in queries:
            if what.startswith("annotation"):  # Grafana runs annotation queries over the range
                r = requests.get(f"{prometheus_url}/api/v1/query_range", params={
                    "query": query, "start": time.time() - 600, "end": time.time(), "step": 5},
                    timeout=HTTP_TIMEOUT).json()
                assert r["status"] == "success", (what, query, r)
                found = r["data"]["result"]
            else:
                found = _query(prometheus_url, query)
            if found:
                return True
        return False

    wait_until(data, what=f"{what}: data for {queries[-1]}", interval=0.5)


def test_every_family_in_the_table_is_checked_or_pending(exported):
    """The families table is tied to what daemons export: each family exported by some test
    daemon has exactly the table's labels (plus job/instance)."""
    seen = {}
    for live in exported.values():
        for name, labels in live.items():
            seen.setdefault(name, set()).update(labels)
    for name, labels in seen.items():
        assert name in FAMILIES, f"{name} is exported but missing from the families table"
        expected = set(FAMILIES[name].labels) | {"job", "instance", "spec"}
        assert labels <= expected and set(FAMILIES[name].labels) <= labels, (name, labels)
