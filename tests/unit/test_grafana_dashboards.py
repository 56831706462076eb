"""Generated dashboards: JSON model checks, committed files up to date, thresholds, globs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from monitor.export.families import FAMILIES, family
from monitor.generate import write_dashboards
from monitor.generate.dashboards import dashboards, uid
from monitor.generate.panels import DATASOURCE_UID, GRID_WIDTH, Bound, threshold_steps
from monitor.generate.promql import glob_regex, sel
from monitor.runtime.demo import DEMO_SPEC
from slices.errors import SlicewatchError
from slices.globs import slice_matches
from slices.load import load_spec, load_spec_text

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
ALERTING = DEMO_SPEC % {"path": "x", "dead": "d", "listen": "127.0.0.1:0"} + """
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/h"}]
alerts:
  - {name: auc_warn, metric: roc_auc, threshold: {lower: 0.8}, severity: warning}
  - {name: auc_crit, metric: roc_auc, threshold: {lower: 0.7}, severity: critical}
  - {name: fail, metric: failure_rate, threshold: {upper: 0.05}}
"""
DRIFT = ALERTING.replace("      device: categorical\n", "      device: categorical\n"
                         "    drift: {rolling_windows: 2, concept: ADWIN}\n")


def specs():
    return [load_spec(str(p)) for p in CONFIGS] + [
        load_spec_text(ALERTING, "alerting.yaml"), load_spec_text(DRIFT, "drift.yaml")]


def all_boards():
    return [(s.file, name, board) for s in specs() for name, board in dashboards(s).items()]


def _walk(board):
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


@pytest.mark.parametrize(("spec", "name", "board"), all_boards(),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_json_model(spec, name, board):
    panels = list(_walk(board))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= GRID_WIDTH and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
    refs = [p["datasource"] for p in panels if p["type"] != "row"]
    refs += [t["datasource"] for p in panels for t in p.get("targets", [])]
    refs += [v["datasource"] for v in board["templating"]["list"]]
    refs += [a["datasource"] for a in board["annotations"]["list"] if "expr" in a]
    assert refs and all(r == {"type": "prometheus", "uid": DATASOURCE_UID} for r in refs)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    variables = {v["name"] for v in board["templating"]["list"]}
    for p in panels:
        for t in p.get("targets", []):
            used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval"}
            assert used <= variables, (p["title"], used - variables)
            for metric in re.findall(r"\bslicewatch_\w+", t["expr"]):
                family(metric)  # raises for a name not in the families table


UIDS = ("import json\nfrom monitor.generate.dashboards import dashboards\n"
        "from tests.unit.test_grafana_dashboards import specs\n"
        "print(json.dumps([[n, b['uid']] for s in specs() for n, b in dashboards(s).items()]))")


@pytest.mark.parametrize("hash_seed", ["1", "2"])
def test_uids_are_stable_and_distinct(hash_seed):
    first = [(n, b["uid"]) for s in specs() for n, b in dashboards(s).items()]
    out = subprocess.run([sys.executable, "-c", UIDS], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert first == [tuple(x) for x in json.loads(out.stdout)]  # another process, another hash
    by_file = {n: u for n, u in first}
    assert len(set(by_file.values())) == len(by_file)
    assert uid("model", "fraud") != uid("model", "pricing") != uid("ops", "pricing")


def test_committed_files_are_up_to_date(tmp_path):
    for config in CONFIGS:
        write_dashboards(load_spec(str(config)), str(tmp_path))
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(REPO / "grafana"): p.read_text()
                 for p in (REPO / "grafana").rglob("*") if p.is_file()}
    assert sorted(fresh) == sorted(committed), "regenerate: python -m monitor.generate dashboards"
    for path, text in fresh.items():
        assert committed[path] == text, f"grafana/{path} is stale; regenerate it"


def test_provisioning_resolves_panels_datasource(tmp_path):
    written = write_dashboards(load_spec(str(CONFIGS[0])), str(tmp_path),
                               prometheus_url="http://prom:9090", dashboards_path="/dash")
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/slicewatch.yaml").read_text())
    (source,) = ds["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (DATASOURCE_UID, "prometheus",
                                                              "http://prom:9090")
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/slicewatch.yaml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/dash"
    boards = [json.loads(Path(p).read_text()) for p in written if p.endswith(".json")]
    assert boards and all(Path(p).parent == tmp_path / "dashboards"
                          for p in written if p.endswith(".json"))


def test_optional_families_only_when_the_spec_uses_them():
    plain = json.dumps(dashboards(load_spec(str(REPO / "configs/pricing.yaml"))))
    for name, fam in FAMILIES.items():
        if fam.when in ("drift", "concept", "alerting", "kafka", "labels"):
            assert name not in plain, name
    rich = json.dumps(dashboards(load_spec_text(DRIFT, "drift.yaml")))
    for name in ("slicewatch_drift_score", "slicewatch_drift_pvalue_adjusted",
                 "slicewatch_data_missing_ratio", "slicewatch_concept_drift_events_total",
                 "slicewatch_alerts_firing", "slicewatch_notifications_total"):
        assert name in rich, name
    assert "slicewatch_kafka_consumer_lag" not in rich


def test_critical_slices_come_first_and_thresholds_are_drawn():
    board = dashboards(load_spec_text(ALERTING, "alerting.yaml"))["slicewatch-model-fraud.json"]
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows.index("Critical slices") < rows.index("Slice metrics")
    auc = next(p for p in board["panels"] if p["title"] == "roc_auc")
    steps = auc["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "red", "value": None}, {"color": "yellow", "value": 0.7},
                     {"color": "green", "value": 0.8}]
    assert auc["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line+area"
    critical = next(p for p in board["panels"] if p["title"] == "roc_auc (critical slices)")
    assert 'slicewatch_slice_info{' in critical["targets"][0]["expr"]
    assert 'critical="true"' in critical["targets"][0]["expr"]


@given(st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.sampled_from(["lower", "upper"]),
                          st.sampled_from(["critical", "error", "warning", "info"])),
                min_size=1, max_size=5),
       st.floats(-10, 10, allow_nan=False))
def test_threshold_colour_is_the_most_severe_rule_broken(bounds, x):
    bs = [Bound(v, side, sev) for v, side, sev in bounds]
    steps = threshold_steps(bs)
    colour = steps[0]["color"]
    for s in steps[1:]:
        if x >= s["value"]:
            colour = s["color"]
    broken = [b for b in bs if (b.side == "lower" and x < b.value)
              or (b.side == "upper" and x > b.value)]
    rank = ["critical", "error", "warning", "info"]
    colours = {"critical": "red", "error": "orange", "warning": "yellow", "info": "blue"}
    if x in {b.value for b in bs}:
        return  # on a line: Grafana's step starts there; the rule is not broken at equality
    expected = colours[min((b.severity for b in broken), key=rank.index)] if broken else "green"
    assert colour == expected


@given(st.lists(st.text("ab*?[]!=,.()", min_size=1, max_size=6), min_size=1, max_size=3),
       st.text("ab=,.()[]", max_size=6))
def test_glob_regex_matches_like_the_alert_engine(patterns, value):
    regex = re.compile(glob_regex(patterns))  # slice semantics: tests/unit/test_slice_globs.py
    expected = slice_matches(tuple(patterns), value)
    assert (regex.fullmatch(value) is not None) == expected, (patterns, value, regex.pattern)


def test_selector_rejects_unknown_families_and_labels():
    with pytest.raises(SlicewatchError, match="slicewatch_nope"):
        sel("slicewatch_nope", model="m")
    with pytest.raises(SlicewatchError, match="'country' is not a label"):
        sel("slicewatch_records_total", country="US")
