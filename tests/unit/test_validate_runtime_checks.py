"""``validate`` refuses what ``run`` would fail on later, located in the YAML: librdkafka
settings (a consumer configuration built, never started) and concept detectors that do not
fit the model (River parameters, DDM on a regression model)."""

from __future__ import annotations

import pytest

from monitor.runtime.preflight import check
from slices.errors import SpecError
from slices.load import load_spec_text

SPEC = """checkpoint: c.db
source:
  type: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:1
    topics: {predictions: t}
    group_id: g
    config: {%s}
models:
  - name: m
    task: %s
    drift: {rolling_windows: 1, concept: %s}
"""


def problems(config: str = "", task: str = "binary", concept: str = "DDM") -> list[str]:
    try:
        load_spec_text(SPEC % (config, task, concept), "s.yaml", probe=check)
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_fitting_spec_passes():
    assert problems("fetch.wait.max.ms: 100") == []


@pytest.mark.parametrize(("config", "task", "concept", "want"), [
    ("no.such.setting: 1", "binary", "DDM",
     "s.yaml:8:14: source.kafka.config.no.such.setting: unknown librdkafka setting "
     "'no.such.setting' (see librdkafka's CONFIGURATION.md)"),
    ("fetch.wait.max.ms: abc", "binary", "DDM",
     "s.yaml:8:33: source.kafka.config.fetch.wait.max.ms: librdkafka refuses the value 'abc' "
     "for 'fetch.wait.max.ms'"),
    ("fetch.wait.max.ms: -5", "binary", "DDM",
     "s.yaml:8:33: source.kafka.config.fetch.wait.max.ms: librdkafka refuses the value -5 for "
     "'fetch.wait.max.ms' (is outside allowed range 0..300000)"),
    ("", "regression", "DDM",
     "s.yaml:12:42: models[0].drift.concept: detector 'DDM' takes a 0/1 error stream and "
     "cannot watch a regression model's absolute errors; use ADWIN, PageHinkley or KSWIN"),
    ("", "binary", "{detector: ADWIN, params: {nope: 1}}",
     "s.yaml:12:42: models[0].drift.concept: detector 'ADWIN' has no parameter 'nope'; "
     "allowed: delta, clock, max_buckets, min_window_length, grace_period"),
])
def test_hostile_specs_get_one_located_error(config, task, concept, want):
    assert problems(config, task, concept) == [want]


def test_every_problem_at_once_in_one_template():
    found = problems("no.such.setting: 1", "regression", "DDM")
    assert len(found) == 2
    assert all(p.startswith("s.yaml:") and p.split(":")[1].isdigit() and p.split(":")[2]
               .isdigit() for p in found)
