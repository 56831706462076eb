"""Rough edges a new user hit (issue #16), each reproduced: label files in CSV or Parquet,
CSV on stdin, tags in CSV cells, dead letters that say why and keep the record."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest

from monitor.ingest.reasons import REASONS
from monitor.runtime.app import RunOptions, run
from monitor.runtime.preflight import check
from slices.errors import SpecError
from slices.load import load_spec, load_spec_text

REPO = Path(__file__).resolve().parents[2]
SPEC = """
version: 1
source: {{type: file, path: {path}, dead_letter: {dead}{extra}}}
server: {{listen: "127.0.0.1:0"}}
models:
  - name: m
    task: binary
    window: 1m
    metrics: [accuracy]
    features: {{country: categorical}}
    slices:
      - overall: true
      - tags: [new_user, promo]
"""


def spec_for(tmp_path: Path, path: str, extra: str = "") -> str:
    return SPEC.format(path=path, dead=tmp_path / "dead.jsonl", extra=extra)


def predictions(n: int = 120) -> list[dict]:
    return [{"model": "m", "prediction_id": f"p{i}", "timestamp": 60.0 * (i // 40) + i % 40,
             "features": {"country": "US" if i % 2 else "BR"},
             "prediction": {"score": 0.9 if i % 3 else 0.1}} for i in range(n)]


def run_collect(text: str, **opts) -> tuple[list, object]:
    seen: list = []
    summary = run(load_spec_text(text), RunOptions(listen="", quiet=True, **opts),
                  out=io.StringIO(), listeners=[lambda w, results: seen.extend(results)])
    return seen, summary


def dead_letters(tmp_path: Path) -> list[dict]:
    path = tmp_path / "dead.jsonl"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_label_files_are_read_by_extension(tmp_path, fmt):
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in predictions()))
    labels = pd.DataFrame({"prediction_id": [f"p{i}" for i in range(120)],
                           "label": [1 if i % 3 else 0 for i in range(120)],
                           "timestamp": [1.0] * 120})
    path = tmp_path / f"labels.{fmt}"
    if fmt == "csv":
        labels.to_csv(path, index=False)
    elif fmt == "parquet":
        labels.to_parquet(path)
    else:
        path.write_text(labels.to_json(orient="records", lines=True))
    seen, summary = run_collect(spec_for(tmp_path, preds, f", labels: [{path}]"))
    overall = [r for r in seen if r.slice == "overall"]
    assert len(overall) == 3 and summary.rejected == 0
    assert all(r.metrics["accuracy"] == 1.0 for r in overall)  # every label joined


def test_a_label_file_of_unknown_format_fails_validate(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_for(tmp_path, tmp_path / "p.jsonl", f", labels: {tmp_path}/l.txt"))
    with pytest.raises(SpecError) as err:
        load_spec(str(spec), probe=check)
    assert "source.labels" in str(err.value.problems[0])
    assert "cannot tell the format" in str(err.value.problems[0])


def csv_text(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_csv(index=False)


def flat(r: dict, tags: str = "") -> dict:
    return {"model": r["model"], "prediction_id": r["prediction_id"],
            "timestamp": r["timestamp"], "features.country": r["features"]["country"],
            "prediction.score": r["prediction"]["score"], "tags": tags}


def test_csv_on_stdin(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_for(tmp_path, "unused.csv", ", format: csv"))
    data = csv_text([flat(r) for r in predictions()])
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i",
                          "-", "-q", "--listen", ""], input=data, capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "120 records, 0 rejected" in out.stdout


def test_parquet_on_stdin_is_refused_clearly(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_for(tmp_path, "unused.parquet", ", format: parquet"))
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i",
                          "-", "-q", "--listen", ""], input=b"", capture_output=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 1
    assert b"cannot read Parquet from stdin" in out.stderr and b"Traceback" not in out.stderr


def test_csv_tags_are_json_list_text(tmp_path):
    rows = predictions()
    cells = ['["new_user", "promo"]', "new_user", "", "[new_user"]
    path = tmp_path / "p.csv"
    path.write_text(csv_text([flat(r, cells[i % 4]) for i, r in enumerate(rows)]))
    seen, summary = run_collect(spec_for(tmp_path, path))
    count = {}
    for r in seen:
        count[r.slice] = count.get(r.slice, 0) + r.count
    assert count["tag=new_user"] == 60 and count["tag=promo"] == 30
    assert count["overall"] == 90 and summary.rejected == 30
    bad = dead_letters(tmp_path)
    assert {d["reason"] for d in bad} == {"bad_tags"}
    assert "not a JSON list of strings" in bad[0]["detail"]
    assert bad[0]["record"]["tags"] == "[new_user"


def emitted_reasons() -> tuple[set[str], set[str]]:
    """Reason codes the code can emit: string literals given to ``Reject(...)``,
    ``_Reasons.flag(..., why)``, ``Daemon._letter(reason, ...)`` and ``tracker.bad[...]``;
    f-string reasons come back as patterns (``nan_{role}`` → ``nan_*``)."""
    literals, patterns = set(), set()
    for path in (REPO / "monitor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            arg = None
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in ("Reject", "_letter") and node.args:
                    arg = node.args[0]
                elif name == "flag" and len(node.args) == 2:
                    arg = node.args[1]
            elif isinstance(node, ast.Subscript) and getattr(node.value, "attr", "") == "bad":
                arg = node.slice
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literals.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                patterns.add("".join(v.value if isinstance(v, ast.Constant) else "*"
                                     for v in arg.values))
    return literals, patterns


def documented_reasons() -> set[str]:
    text = (REPO / "docs" / "record-format.md").read_text().split("## Bad records", 1)[1]
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([^`]+)`", row)}


def test_every_reason_the_code_emits_is_documented():
    literals, patterns = emitted_reasons()
    assert {"late", "invalid_json", "missing_field:id", "bad_tags"} <= literals
    assert patterns >= {"nan_*", "wrong_type:*"}
    docs = documented_reasons()
    assert literals <= docs, literals - docs
    assert literals <= set(REASONS), literals - set(REASONS)
    for pattern in patterns:
        rx = re.compile(re.escape(pattern).replace(r"\*", r"\w+") + "$")
        assert any(rx.match(d) for d in docs) and any(rx.match(r) for r in REASONS)
    assert set(REASONS) <= docs


def test_dead_letters_say_why_and_late_ones_keep_their_line(tmp_path):
    rows = predictions(80)
    lines = [orjson.dumps(r) for r in rows]
    late = dict(rows[0], prediction_id="late-1", timestamp=5.0, extra_field={"kept": True})
    lines.insert(60, orjson.dumps(late))  # after the first window closed
    lines.insert(10, b'{"model": "m", "timestamp": 1, "prediction": {}}')  # no prediction
    lines.insert(5, b"{not json")
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    spec = spec_for(tmp_path, path, ", batch_size: 20").replace(
        "window: 1m", "window: 1m\n    allowed_lateness: 0s")
    run_collect(spec)
    letters = {d["reason"]: d for d in dead_letters(tmp_path)}
    assert set(letters) == {"invalid_json", "missing_prediction", "late"}
    assert all(d["detail"] for d in letters.values())
    assert letters["late"]["record"] == late  # the record as logged, every field kept
    assert "watermark" in letters["late"]["detail"]
