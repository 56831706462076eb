"""The HTML report is built from a results history alone (and profiles): every section a
reader expects is there, the page needs no network, and big runs stay bounded."""

from __future__ import annotations

import re

import orjson
import pytest

from monitor.cli import main
from monitor.outputs.report import ReportError, write_report
from monitor.outputs.report.charts import MAX_POINTS, time_buckets


@pytest.fixture
def history(replayed_history):
    return replayed_history  # tests/conftest.py: one replay for the session


def charts_of(html: str) -> set[str]:
    return set(re.findall(r'class="sw-chart" data-chart="([^"]+)"', html))


def test_report_has_every_section(history, tmp_path):
    out = tmp_path / "r.html"
    size = write_report(str(history["results"]), str(out), profiles=[str(history["profile"])])
    html = out.read_text()
    assert size == out.stat().st_size
    names = charts_of(html)
    assert {"metric:roc_auc", "metric:accuracy", "drift-matrix", "drift-timeline",
            "timeline", "quality"} <= names
    assert "distribution:amount" in names  # the shifted feature: reference vs window
    assert "<th>records</th><td>12000</td>" in html  # from the run line
    assert "<th>windows</th><td>8</td>" in html


def test_report_is_self_contained(history, tmp_path):
    out = tmp_path / "r.html"
    write_report(str(history["results"]), str(out))
    html = out.read_text()
    assert "<script src" not in html and "cdn.plot.ly" not in html.split("</script>", 1)[1]
    assert "Plotly.newPlot" in html


def test_history_without_results_is_an_error_not_a_traceback(tmp_path):
    bad = tmp_path / "h.jsonl"
    bad.write_text('not json\n{"type": "alert"}\n')
    with pytest.raises(ReportError, match="no result lines"):
        write_report(str(bad), str(tmp_path / "r.html"))
    assert main(["report", "--results", str(bad), "-o", str(tmp_path / "r.html")]) == 1


def test_unknown_and_broken_lines_are_skipped_and_said(history, tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(history["results"].read_bytes() + b'garbage\n{"type": "future"}\n')
    out = tmp_path / "r.html"
    write_report(str(mixed), str(out))
    assert "2 line(s) of the history were skipped" in out.read_text()


def test_report_command_and_run_report(history, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", "--results", str(history["results"]), "--profile",
                 str(history["profile"]), "-o", str(out), "-q"]) == 0
    assert "distribution:amount" in charts_of(out.read_text())
    replay = tmp_path / "replay.html"
    assert main(["run", "-c", str(history["spec"]), "--listen", "", "-q", "--alerts-db",
                 str(tmp_path / "a.db"), "--report", str(replay)]) == 0
    assert "drift-matrix" in charts_of(replay.read_text())
    assert f"report written to {replay}" in capsys.readouterr().out


def test_time_buckets_bound_the_points():
    starts = [60.0 * i for i in range(5000)]
    assert len(set(time_buckets(starts).tolist())) == MAX_POINTS
    assert time_buckets([0.0, 60.0]).tolist() == [0.0, 60.0]


def synthetic_history(path, slices: int, features: int, windows: int) -> None:
    """A results history of the given size (values vary, some drift decisions)."""
    with open(path, "wb") as fh:
        for w in range(windows):
            for s in range(slices):
                drift = [{"feature": f"f{f}", "test": "ks", "distance": ((w * 7 + s * 3 + f) % 97)
                          / 100, "threshold": 0.1, "pvalue_adjusted": 0.01,
                          "status": "drift" if (w + s + f) % 11 == 0 else "ok"}
                         for f in range(features)]
                quality = {f"f{f}": {"missing_ratio": ((w + f) % 5) / 100}
                           for f in range(features)}
                fh.write(orjson.dumps({
                    "type": "result", "model": "m", "version": "v1",
                    "slice_name": "s", "slice": "overall" if s == 0 else f"k=v{s}",
                    "critical": s == 1, "window_start": 60.0 * w, "window_end": 60.0 * w + 60,
                    "count": 100, "reported": True,
                    "metrics": {"accuracy": (s + w) % 10 / 10, "roc_auc": 0.5 + s % 5 / 10,
                                "roc_auc_lower": 0.45, "roc_auc_upper": 0.7},
                    "extra": {"drift": drift, "quality": quality,
                              "concept_drift_events": 1 if w % 50 == s else 0,
                              "concept_drift_event_times": []}}) + b"\n")


def test_a_big_run_gives_a_bounded_page(tmp_path):
    hist = tmp_path / "big.jsonl"
    synthetic_history(hist, slices=40, features=10, windows=300)
    out = tmp_path / "big.html"
    size = write_report(str(hist), str(out))
    html = out.read_text()
    assert {"metric:roc_auc", "drift-matrix", "drift-timeline", "timeline",
            "quality"} <= charts_of(html)
    assert "overall interval" in html  # roc_auc_lower/_upper draw a band
    assert size < 8_000_000  # plotly.js is ~4.8 MB of it
