"""docs/quickstart.md, steps 1–4, as a new user would type them: init from a sample, validate,
build a profile, turn drift on, replay with a report."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson

from monitor.cli import main
from monitor.runtime.demo import demo_records

REPO = Path(__file__).resolve().parents[2]


def commands() -> list[list[str]]:
    """The ``slicewatch`` commands of the quickstart's steps 1–4, in order."""
    text = (REPO / "docs" / "quickstart.md").read_text().split("## 5.", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [shlex.split(b.replace("\\\n", " "))[1:] for b in blocks]


def test_the_quickstart_commands_work_on_a_users_logs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    stream = list(demo_records(8, 800))
    write = lambda path, parts: Path(path).write_bytes(  # noqa: E731
        b"".join(orjson.dumps(r) + b"\n" for part in parts for r in part))
    write("logs/sample.jsonl", stream[:1])
    write("logs/reference.jsonl", stream[:3])
    write("logs/live.jsonl", stream)
    init, validate, baseline, replay, report = commands()
    assert init[0] == "init" and validate[0] == "validate" and baseline[:2] == ["baseline",
                                                                                 "build"]
    assert main(init) == 0
    assert main(validate) == 0
    assert main(baseline) == 0
    spec = Path("slicewatch.yaml")
    spec.write_text(spec.read_text() + "    drift:\n      profile: profile.json\n")
    assert main(validate) == 0
    assert main(replay) == 0
    out = capsys.readouterr().out
    assert "6400 records" in out and "report written to report.html" in out
    html = Path("report.html").read_text()
    assert 'data-chart="drift-matrix"' in html and 'data-chart="metric:roc_auc"' in html
    assert main(report) == 0
