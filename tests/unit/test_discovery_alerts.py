"""The ``discovered`` alert kind (issue 17): fires when a discovered slice stays in the top-k
for ``for:`` windows in a row, resolves when it leaves; validated like the other kinds."""

from __future__ import annotations

import dataclasses

import pytest

from alerts import AlertEngine, Observation
from monitor.core.types import ClosedWindow
from monitor.discovery.recent import RecentlyDiscovered
from monitor.discovery.types import DiscoveredSlice
from monitor.outputs.alerting import with_discovered
from slices.errors import SpecError
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {country: categorical, device: categorical}
    %s
alerts:
  - name: hidden_slice
    model: m
    discovered: true
    for: 2
    min_count: 50
receivers: [{name: r, type: webhook, url: "http://127.0.0.1:9/"}]
route: {receiver: r, group_wait: 0s}
"""
DISCOVERY = "discovery: {top_k: 3}"


def found(slice_, w, records=120):
    return DiscoveredSlice("m", "", "window", 1, slice_, "", 2, records, 0.4, 0.1, 2.0, 1e-9,
                           1e-8, 30, w * 60.0, w * 60.0 + 60)


def closed(recent, w, found_now):
    """Window ``w`` as the discovery stage hands it on: its discovered slices and those
    discovered lately but not in it."""
    absent = recent.step("", [d.slice for d in found_now])
    return ClosedWindow("m", w * 60.0, w * 60.0, w * 60.0 + 60, {}, tuple(found_now),
                        tuple(("", name) for name in absent))


def test_fires_after_for_windows_in_the_top_k_and_resolves_when_it_leaves(tmp_path):
    spec = load_spec_text(SPEC % DISCOVERY)
    recent = RecentlyDiscovered()
    engine = AlertEngine(spec.alerting, str(tmp_path / "engine.db"), notify=False)
    plan = [["country=BR,device=web"], ["country=BR,device=web"], ["country=BR,device=web"],
            [], []]
    transitions = []
    for w, names in enumerate(plan):
        window = closed(recent, w, [found(n, w) for n in names])
        overall = Observation("m", "", "overall", w * 60.0, w * 60.0 + 60, {"accuracy": 0.9},
                              count=1000)
        obs = with_discovered(window, overall)
        events = []
        engine.observe([obs], now=1000.0 + w, events=events)
        transitions.append([(e.status, e.alert.labels["slice"]) for e in events])
    assert transitions == [[], [("firing", "country=BR,device=web")], [],
                           [("resolved", "country=BR,device=web")], []]


def test_one_window_in_the_top_k_or_too_few_records_does_not_fire(tmp_path):
    spec = load_spec_text(SPEC % DISCOVERY)
    recent = RecentlyDiscovered()
    engine = AlertEngine(spec.alerting, str(tmp_path / "engine.db"), notify=False)
    fired = []
    for w, found_now in enumerate([[found("device=web", 0)], [], [found("device=web", 2)],
                                   [found("country=BR", 3, records=10)],
                                   [found("country=BR", 4, records=10)]]):
        window = closed(recent, w, found_now)
        overall = Observation("m", "", "overall", w * 60.0, w * 60.0 + 60, count=1000)
        events = []
        engine.observe([with_discovered(window, overall)], now=1000.0 + w,
                       events=events)
        fired += events
    assert fired == []


def test_a_discovered_alert_needs_a_model_with_discovery():
    with pytest.raises(SpecError, match="needs a model with a 'discovery:' block"):
        load_spec_text(SPEC % "slices: [{overall: true}]", "s.yaml")
    bad = (SPEC % DISCOVERY).replace("discovered: true", "discovered: false")
    with pytest.raises(SpecError, match="discovered must be true"):
        load_spec_text(bad, "s.yaml")
    assert dataclasses.is_dataclass(load_spec_text(SPEC % DISCOVERY).alerting.rules[0])
