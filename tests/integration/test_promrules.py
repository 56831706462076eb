"""Generated Prometheus rules pass ``promtool check rules`` and their generated unit tests pass
``promtool test rules``; the tests are strict enough to catch a wrong ``for`` or bound, and a
real Prometheus loads the rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from monitor.generate import write_prom_rules
from slices.load import load_spec, load_spec_text
from tests.wait import DEADLINE, HTTP_TIMEOUT, wait_until

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")

SPEC = """
version: 1
source: {type: file, path: x.jsonl}
models:
  - name: fraud
    task: binary
    window: 5m
    features: {amount: numeric, country: categorical}
    drift: {rolling_windows: 2, concept: ADWIN}
    slices:
      - overall: true
      - feature_keys: [country]
      - {name: vip, where: 'amount > 500', critical: true}
  - name: pricing
    task: regression
    window: 1h
    features: {distance_km: numeric}
    slices: [{overall: true}]
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/hook"}]
alerts:
  - name: auc_low
    model: fraud
    metric: roc_auc
    threshold: {lower: 0.7}
    for: 2
    labels: {team: risk}
    annotations:
      summary: >-
        {{ rule }} {{ metric }} = {{ value }} on {{ model }}/{{ slice }} ({{ threshold }}),
        {{ count }} records, {{ window_start }} – {{ window_end }}
  - {name: failure_high, metric: failure_rate, threshold: {upper: 0.05},
     slices: ["country=*", "overall"], min_count: 50, severity: critical}
  - {name: mae_band, model: pricing, metric: mae, threshold: {lower: 0.5, upper: 3}, for: 3}
  - name: auc_drop
    model: fraud
    metric: roc_auc
    change: {baseline: previous, absolute: -0.05, direction: higher_is_better}
  - {name: drifting, model: fraud, drift: {features: [amount]}, for: 2}
  - {name: concept, model: fraud, concept_drift: true, severity: error}
  - {name: missing, model: fraud, quality: {check: missing_rate, upper: 0.1}, for: 2}
"""


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is not installed (Debian package prometheus)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=DEADLINE)


def generate(tmp_path: Path, spec) -> tuple[Path, Path]:
    rules, test, inhibit = (Path(p) for p in write_prom_rules(spec, str(tmp_path / "rules.yml")))
    assert test == tmp_path / "rules.test.yml"
    assert inhibit == tmp_path / "rules.alertmanager.yml"
    return rules, test


def test_rules_pass_promtool_check_and_their_tests(tmp_path):
    rules, test = generate(tmp_path, load_spec_text(SPEC, "spec.yaml"))
    check = promtool("check", "rules", str(rules), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    doc = yaml.safe_load(rules.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in alerts}
    # auc_drop is change-only: not translatable, reported in the header
    assert names == {"auc_low", "failure_high", "mae_band", "drifting", "concept", "missing"}
    assert "# not translated: auc_drop (fraud)" in rules.read_text()
    by = {(r["alert"], r["labels"]["severity"], r["labels"]["model"]): r for r in alerts}
    assert by[("auc_low", "warning", "fraud")]["for"] == "5m"  # 2 windows of 5m
    assert by[("auc_low", "critical", "fraud")]["for"] == "5m"  # critical slice variant
    assert by[("mae_band", "warning", "pricing")]["for"] == "2h"  # 3 windows of 1h
    assert "for" not in by[("failure_high", "critical", "fraud")]
    assert ("failure_high", "critical", "pricing") in by  # no model: every model
    assert by[("auc_low", "warning", "fraud")]["labels"]["team"] == "risk"
    tests = yaml.safe_load(test.read_text())
    assert len(tests["tests"]) == len(alerts)
    run = promtool("test", "rules", test.name, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(("pattern", "replacement"), [
    (r"for: 5m", "for: 10m"),  # N windows must fire after N windows, not N + 1
    (r"< 0\.7", "< 0.6"),  # a wrong bound
    (r"severity: critical", "severity: warning"),  # the critical-slice escalation
])
def test_generated_tests_catch_wrong_rules(tmp_path, pattern, replacement):
    rules, test = generate(tmp_path, load_spec_text(SPEC, "spec.yaml"))
    text, n = re.subn(pattern, replacement, rules.read_text())
    assert n
    rules.write_text(text)
    run = promtool("test", "rules", test.name, cwd=tmp_path)
    assert run.returncode != 0, f"promtool accepted rules with {pattern!r} → {replacement!r}"


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=str)
def test_example_specs(tmp_path, config):
    rules, test = generate(tmp_path, load_spec(str(config)))
    assert promtool("check", "rules", str(rules), cwd=tmp_path).returncode == 0
    run = promtool("test", "rules", test.name, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_loads_the_rules(tmp_path, prometheus_url, prometheus_rules_dir):
    rules, _ = generate(tmp_path, load_spec_text(SPEC, "spec.yaml"))
    target = prometheus_rules_dir / f"promrules-{time.time_ns()}.yml"
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:  # unique group names: other tests share this Prometheus
        group["name"] += f"-{target.stem}"
    target.write_text(yaml.safe_dump(doc))
    try:
        requests.post(f"{prometheus_url}/-/reload", timeout=HTTP_TIMEOUT).raise_for_status()

        def my_groups() -> list[dict]:
            groups = requests.get(f"{prometheus_url}/api/v1/rules", timeout=HTTP_TIMEOUT).json()
            return [g for g in groups["data"]["groups"] if g["name"].endswith(target.stem)]

        mine = wait_until(my_groups, what=f"rule groups of {target.name} loaded", interval=0.5)
        loaded = {r["name"] for g in mine for r in g["rules"]}
        assert loaded == {r["alert"] for g in doc["groups"] for r in g["rules"]}
        assert all(r["health"] != "err" for g in mine for r in g["rules"])
    finally:
        target.unlink(missing_ok=True)
        requests.post(f"{prometheus_url}/-/reload", timeout=HTTP_TIMEOUT)


AMTOOL = shutil.which("amtool")


@pytest.mark.parametrize("inhibit, expected", [
    ("", [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
           "equal": ["model", "slice"]}]),
    ("""inhibit_rules:
  - source_matchers: ['severity="critical"', 'alertname=~"auc_.*"']
    target_matchers: ['severity!="critical"']
    equal: [model]
""", [{"source_matchers": ['severity="critical"', 'alertname=~"auc_.*"'],
       "target_matchers": ['severity!="critical"'], "equal": ["model"]}]),
])
def test_inhibition_snippet_loads_in_alertmanager(tmp_path, inhibit, expected):
    """#18.10: Prometheus-side alerting gets the daemon's inhibition as an Alertmanager
    ``inhibit_rules`` snippet; merged into a config, ``amtool check-config`` accepts it."""
    assert AMTOOL, "amtool is not installed (Debian package prometheus-alertmanager)"
    spec = load_spec_text(SPEC + inhibit, "spec.yaml")
    generate(tmp_path, spec)
    snippet = yaml.safe_load((tmp_path / "rules.alertmanager.yml").read_text())
    assert snippet == {"inhibit_rules": expected}
    rules = yaml.safe_load((tmp_path / "rules.yml").read_text())
    severities = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"]}
    assert {"critical", "warning"} <= severities  # the labels the matchers look at exist
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "team"},
                                      "receivers": [{"name": "team"}], **snippet}))
    out = subprocess.run([AMTOOL, "check-config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(expected)} inhibit rules" in out.stdout
