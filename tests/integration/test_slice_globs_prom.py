"""Slice patterns in Prometheus (#18.9): the regex the generated rules use selects, in
Prometheus' own engine (promtool, Go RE2), exactly the slices the alert engine selects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.generate.promql import glob_regex, quote
from slices.globs import slice_matches

PROMTOOL = shutil.which("promtool")
LABELS = ["overall", "neighbourhood=riverside", "neighbourhood=__other__",
          "neighbourhood=riverside,property_type=house", "property_type=house",
          "amount=[0,10)", "amount=[100,+inf)", "amount=[0,10),country=US", "tag=new_user",
          "a=b,c", "where, with=odd name"]
PATTERNS = [["neighbourhood=*"], ["neighbourhood=*,property_type=*"], ["*=*,*=*"], ["*"],
            ["amount=*", "overall"], ["amount=[[]0*"], ["*=house"], ["a=?,?"], ["[!a]*"]]


@pytest.mark.parametrize("patterns", PATTERNS, ids=lambda p: ",".join(p))
def test_prometheus_selects_what_the_engine_selects(tmp_path: Path, patterns):
    assert PROMTOOL, "promtool is not installed (Debian package prometheus)"
    selected = [x for x in LABELS if slice_matches(tuple(patterns), x)]
    series = [{"series": f'slicewatch_slice_count{{slice={quote(x)}}}', "values": "1"}
              for x in LABELS]
    expr = f"slicewatch_slice_count{{slice=~{quote(glob_regex(patterns))}}}"
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": "0m", "exp_samples": [
            {"labels": f'slicewatch_slice_count{{slice={quote(x)}}}', "value": 1}
            for x in selected]}]}]}
    path = tmp_path / "globs.test.yml"
    path.write_text(yaml.safe_dump(test))
    run = subprocess.run([PROMTOOL, "test", "rules", path.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
