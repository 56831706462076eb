"""Mutations of a real profile (built by ``baseline build``): each one either loads and a
replay against it runs cleanly, or is refused when the profile is read with an error that
names the file and the JSON path (``validate`` and ``run``: exit 2), never a traceback later
(at a window close, in the drift tests, in the multivariate or CBPE stages).

Mutations (seeded, deterministic): type swaps, wrong shapes (a list cut, grown, a matrix row
cut), negative, NaN, infinite and huge numbers, missing keys, extra nesting, over one concrete
path of every field of the profile (list positions and slice keys picked at random)."""

from __future__ import annotations

import copy
import io
import json
import random
import re
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.cli import main
from monitor.drift.errors import ProfileError
from monitor.drift.profile import load_profile

SEED = 20261203

SPEC = """
version: 1
schema: {time: ts, score: score, label: label, features: features}
source: {type: file, path: run.jsonl}
models:
  - name: m
    task: binary
    window: 150 records
    features: {amount: numeric, country: categorical, age: numeric}
    slices: [{overall: true}, {feature_keys: [country]}]
    metrics: [accuracy, roc_auc]
    drift: {profile: p.json, per_slice: true, label: true}
alerts:
  - {name: acc, model: m, metric: accuracy,
     change: {baseline: reference, absolute: -0.1, direction: higher_is_better}}
  - {name: mv, model: m, multivariate_drift: true}
  - {name: est, model: m, estimated: {metric: accuracy, threshold: {lower: 0.3}}}
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/"}]
"""


def _records(n: int, seed: int, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        amount = float(rng.lognormal(3 + shift, 1))
        lines.append(orjson.dumps({
            "ts": 1_700_000_000 + i, "score": float(rng.random()),
            "label": int(rng.integers(2)),
            "features": {"amount": amount if i % 40 else None,
                         "country": str(rng.choice(["US", "BR", "DE"])),
                         "age": int(rng.integers(18, 80))}}))
    return b"\n".join(lines) + b"\n"


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _pattern(path: tuple) -> tuple:
    """A path with its list positions and slice keys generalised: one field of the format."""
    out = []
    for i, p in enumerate(path):
        if isinstance(p, int):
            out.append("#")
        elif (i, path[0]) == (1, "slices") or path[:2] == ("multivariate", "slice_bands"):
            out.append("<slice>")
        else:
            out.append(p)
    return tuple(out)


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


_SWAPS = ["x", [], {}, True, None, 7, 0.5, [1, 2], {"a": 1}]
_NUMBERS = [-1, -1e308, 1e308, float("nan"), float("inf"), -float("inf"), 10 ** 30, 0, 2.5]


def _mutations(doc: dict, rng: random.Random) -> list[tuple[str, dict]]:
    by_pattern: dict[tuple, list[tuple]] = {}
    for path in _paths(doc):
        if path:
            by_pattern.setdefault(_pattern(path), []).append(path)
    out = []
    for pattern in sorted(by_pattern, key=repr):
        path = rng.choice(by_pattern[pattern])
        value = _get(doc, path)
        ops = ["swap", "number", "nest", "delete"]
        if isinstance(value, list):
            ops += ["cut", "grow", "row"]
        for op in rng.sample(ops, 3):
            m = copy.deepcopy(doc)
            parent = _get(m, path[:-1])
            if op == "swap":
                new = rng.choice([s for s in _SWAPS if type(s) is not type(value)])
                _set(m, path, new)
                what = f"{new!r}"
            elif op == "number":
                new = rng.choice(_NUMBERS)
                _set(m, path, new)
                what = f"{new!r}"
            elif op == "nest":
                _set(m, path, [value] if rng.random() < 0.5 else {"value": value})
                what = "nested"
            elif op == "delete":
                del parent[path[-1]]
                what = "deleted"
            elif op == "cut":
                if not value:
                    continue
                _set(m, path, value[:-1])
                what = "cut by one"
            elif op == "grow":
                _set(m, path, [*value, value[-1] if value else 1])
                what = "grown by one"
            else:  # a matrix row cut, or a list of lists
                rows = _get(m, path)
                if not rows or not isinstance(rows[0], list) or not rows[0]:
                    _set(m, path, [rows])
                    what = "wrapped"
                else:
                    rows[0] = rows[0][:-1]
                    what = "first row cut"
            out.append((f"{'.'.join(map(str, path))} {op} {what}", m))
    return out


_LOCATED = re.compile(r"^(?P<file>\S+p\.json): (?P<where>profile format_version|[^: ]+): ")


def _location_exists(doc: dict, where: str) -> bool:
    """``where`` (``a.b[2].c``) names a node of ``doc``, or the parent of a missing field."""
    if where == "profile format_version":  # "profile format_version 'x' is not supported"
        return True
    parts = [int(p) if p.isdigit() else p
             for p in re.findall(r"[^.\[\]]+", where)]
    node = doc
    for p in parts[:-1]:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict | list)


def _run(argv: list[str]) -> tuple[int | str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code: int | str = main(argv)
        except BaseException as exc:  # what escapes: the failure reported
            code = f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile_fuzz")
    (root / "spec.yaml").write_text(SPEC)
    (root / "ref.jsonl").write_bytes(_records(900, 0))
    (root / "run.jsonl").write_bytes(_records(150, 1) + _records(150, 2, shift=2.0))
    code, err = _run(["baseline", "build", "-c", str(root / "spec.yaml"),
                      "--data", str(root / "ref.jsonl"), "-o", str(root / "p.json"), "-q"])
    assert code == 0, err
    return root, json.loads((root / "p.json").read_text())


def test_the_profile_built_holds_every_part_the_fuzzer_mutates(built):
    _, doc = built
    assert {"overall", "slices", "metrics", "multivariate", "calibration"} <= set(doc)
    assert doc["multivariate"]["band"] is not None and doc["multivariate"]["slice_bands"]
    assert {s["kind"] for s in doc["overall"]["summaries"].values()} == {"numeric",
                                                                        "categorical"}


def test_every_mutation_of_a_profile_loads_and_runs_or_is_refused_where_it_is_read(
        built, monkeypatch):
    root, doc = built
    monkeypatch.chdir(root)
    mutations = _mutations(doc, random.Random(SEED))
    assert len(mutations) > 300
    failures, refused, ran = [], [], 0
    for what, m in mutations:
        (root / "p.json").write_text(json.dumps(m))
        try:
            load_profile(root / "p.json")
        except ProfileError as exc:
            msg = str(exc)
            found = _LOCATED.match(msg.replace(" format_version ", " format_version: ", 1))
            if found is None or not _location_exists(m, found["where"]):
                failures.append(f"{what}: not located: {msg[:200]}")
            refused.append((what, found["where"] if found else ""))
            continue
        except Exception as exc:  # any other: the failure reported
            failures.append(f"{what}: load raised {type(exc).__name__}: {exc}")
            continue
        code, err = _run(["run", "-c", "spec.yaml", "--listen", "", "-q"])
        ran += 1
        if code != 0 or "Traceback" in err:
            failures.append(f"{what}: loads, then run gave {code}: {err[-300:]}")
    assert not failures, "\n".join(failures)
    assert ran >= 20 and len(refused) >= 200, (ran, len(refused))
    # refused at the start of run too: exit 2, the spec's location and the profile's path
    for what, where in refused[:: max(1, len(refused) // 5)]:
        (root / "p.json").write_text(json.dumps(dict(mutations)[what]))
        code, err = _run(["run", "-c", "spec.yaml", "--listen", "", "-q"])
        assert code == 2, (what, code, err)
        assert "spec.yaml:" in err and "models[0].drift.profile: " in err and "p.json: " in err
        assert where in err and "Traceback" not in err, (what, err)
