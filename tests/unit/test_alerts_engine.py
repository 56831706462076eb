"""Engine behaviour without a network: for:, lifecycle, grouping, repeat, inhibition,
flapping guard, baselines, persistence across restarts."""

from __future__ import annotations

import pytest

from alerts.engine import AlertEngine, list_firing
from alerts.lifecycle import changes
from alerts.model import Observation
from slices.load_alerting import parse_alerting
from slices.spec import ModelSpec
from slices.yamlpos import Checker, load_text

MODELS = (ModelSpec(name="fraud", task="binary"),)
W = 60.0  # window length of these tests


def spec_of(text: str):
    doc = load_text(text, "spec.yaml")
    checker = Checker(doc)
    spec = parse_alerting(checker, doc.data, MODELS)
    checker.raise_if_any()
    return spec


def make(tmp_path, rules: str, route: str = "{receiver: hook, group_wait: 0s, "
         "group_interval: 1m, repeat_interval: 1h, group_by: [model]}",
         extra: str = "") -> AlertEngine:
    text = (f"alerts:\n{rules}\nreceivers:\n  - {{name: hook, type: webhook, "
            f"url: 'http://127.0.0.1:9/'}}\n  - {{name: pd, type: pagerduty, "
            f"routing_key: k}}\nroute: {route}\n{extra}")
    return AlertEngine(spec_of(text), str(tmp_path / "alerts.sqlite"), clock=lambda: 0.0)


def auc(i: int, value: float, slice_: str = "overall", critical: bool = False,
        version: str = "v1", **kw) -> Observation:
    return Observation(model="fraud", version=version, slice=slice_, window_start=i * W,
                       window_end=(i + 1) * W, metrics={"roc_auc": value}, count=1000,
                       critical=critical, **kw)


AUC_RULE = "  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, for: %d}"


def run(engine, values, slice_="overall", start=0):
    """Observe one window per value; returns the notifications of each window."""
    return [engine.observe([auc(start + i, v, slice_)], now=(start + i + 1) * W)
            for i, v in enumerate(values)]


def test_for_needs_n_consecutive_windows(tmp_path):
    engine = make(tmp_path, AUC_RULE % 3)
    notes = run(engine, [0.6, 0.6, 0.8, 0.6, 0.6, 0.6])
    fired_at = [i for i, n in enumerate(notes) if n]
    assert fired_at == [5]
    [note] = notes[5]
    assert note.status == "firing" and note.alerts[0].value == 0.6
    assert note.alerts[0].starts_at == 6 * W
    assert [a.labels["alertname"] for a in engine.firing()] == ["auc_low"]


def test_fire_then_resolve_and_no_duplicate_within_repeat(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1)
    notes = run(engine, [0.6, 0.6, 0.5, 0.6, 0.9])
    assert [n[0].status if n else None for n in notes] == ["firing", None, None, None,
                                                           "resolved"]
    resolved = notes[4][0].alerts[0]
    assert resolved.status == "resolved" and resolved.ends_at == 5 * W
    assert engine.firing() == []


def test_repeat_interval_resends_firing(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1, route="{receiver: hook, group_wait: 0s, "
                  "group_interval: 1m, repeat_interval: 3m}")
    notes = run(engine, [0.6] * 8)
    assert [i for i, n in enumerate(notes) if n] == [0, 3, 6]
    assert all(n[0].status == "firing" for n in notes if n)


def test_group_wait_batches_and_flush_on_tick(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1, route="{receiver: hook, group_wait: 30s, "
                  "group_interval: 5m, group_by: [model]}")
    first = engine.observe([auc(0, 0.6, "a")], now=60.0)
    second = engine.observe([auc(0, 0.5, "b")], now=70.0)
    assert first == [] and second == []
    assert engine.flush(now=89.0) == []
    [note] = engine.flush(now=90.0)
    assert sorted(a.labels["slice"] for a in note.alerts) == ["a", "b"]
    assert note.group_labels == {"model": "fraud"}
    # a third slice joins: it waits for the group_interval tick, not group_wait
    assert engine.observe([auc(1, 0.6, "c")], now=100.0) == []
    assert engine.flush(now=389.0) == []
    [again] = engine.flush(now=390.0)
    assert sorted(a.labels["slice"] for a in again.alerts) == ["a", "b", "c"]


def test_group_by_splits_groups_and_dedup_keys(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1, route="{receiver: hook, group_wait: 0s, "
                  "group_by: [slice]}")
    notes = engine.observe([auc(0, 0.6, "a"), auc(0, 0.6, "b")], now=60.0)
    assert len(notes) == 2 and len({n.dedup_key for n in notes}) == 2
    assert {n.group_labels["slice"] for n in notes} == {"a", "b"}


def test_routes_matchers_and_continue(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1, route=(
        "{receiver: hook, group_wait: 0s, routes: ["
        "{matchers: ['severity=\"critical\"'], receiver: pd, continue: true},"
        "{matchers: {slice: b}, receiver: hook}]}"))
    [note] = engine.observe([auc(0, 0.6, "a")], now=60.0)
    assert note.receiver == "hook" and note.group_key.startswith("0:")  # root route
    notes = engine.observe([auc(0, 0.6, "b", critical=True)], now=61.0)
    # critical: pd, and (continue) the next matching sibling too
    assert [(n.receiver, n.group_key[:3]) for n in notes] == [("pd", "0.0"), ("hook", "0.1")]


def test_inhibition_mutes_warning_while_critical_fires(tmp_path):
    rules = ("  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, "
             "severity: critical}\n"
             "  - {name: auc_soft, metric: roc_auc, threshold: {lower: 0.8}, "
             "severity: warning}")
    engine = make(tmp_path, rules, route="{receiver: hook, group_wait: 0s, "
                  "group_by: ['...']}")
    notes = engine.observe([auc(0, 0.6, "a")], now=60.0)
    assert [n.alerts[0].labels["alertname"] for n in notes] == ["auc_low"]
    # another slice: only the warning breaks, nothing inhibits it
    other = engine.observe([auc(0, 0.75, "b")], now=61.0)
    assert [(n.alerts[0].labels["alertname"], n.alerts[0].labels["slice"]) for n in other] == [
        ("auc_soft", "b")]
    # critical resolves on slice a, warning still breaks → the warning is now notified
    assert engine.observe([auc(1, 0.75, "a")], now=120.0) == []  # next tick: 60 + 5m
    later = engine.flush(now=360.0)
    got = sorted((n.status, n.alerts[0].labels["alertname"]) for n in later)
    assert got == [("firing", "auc_soft"), ("resolved", "auc_low")]
    assert {a.labels["alertname"] for a in engine.firing()} == {"auc_soft"}


def test_flapping_guard_holds_resolve(tmp_path):
    engine = make(tmp_path, "  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, "
                  "flapping: {window: 6, changes: 3}}")
    values = [0.6, 0.8, 0.6, 0.8, 0.6, 0.8, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8]
    notes = run(engine, values)
    statuses = [(i, n[0].status) for i, n in enumerate(notes) if n]
    # fires, resolves (1 change), fires again, then resolves are held while the last 6
    # windows show >= 3 changes; it resolves once they have calmed.
    assert statuses[:3] == [(0, "firing"), (1, "resolved"), (2, "firing")]
    assert statuses[3][1] == "resolved" and len(statuses) == 4
    held_until = statuses[3][0]
    history = [int(v < 0.7) for v in values[: held_until + 1]][-6:]
    assert changes(history) < 3
    assert changes([int(v < 0.7) for v in values[: held_until]][-6:]) >= 3


def test_change_vs_previous_window(tmp_path):
    engine = make(tmp_path, "  - {name: drop, metric: roc_auc, change: {baseline: previous, "
                  "absolute: -0.05, direction: higher_is_better}}")
    notes = run(engine, [0.90, 0.88, 0.80, 0.80])
    assert [n[0].status if n else None for n in notes] == [None, None, "firing", "resolved"]


def test_change_vs_other_version_and_reference(tmp_path):
    engine = make(tmp_path, "  - {name: worse, metric: roc_auc, change: {baseline: version, "
                  "version: v1, relative: -0.1, direction: higher_is_better}}\n"
                  "  - {name: vs_ref, metric: roc_auc, change: {baseline: reference, "
                  "absolute: -0.1, direction: higher_is_better}}")
    notes = engine.observe([auc(0, 0.90, version="v1"), auc(0, 0.75, version="v2")], now=60.0)
    assert [(n.alerts[0].labels["alertname"], n.alerts[0].labels["version"]) for n in notes] == [
        ("worse", "v2")]
    assert notes[0].alerts[0].threshold.startswith("relative -0.1667 < -0.1 vs version")
    notes = engine.observe([auc(1, 0.70, version="v1", reference_metrics={"roc_auc": 0.9})],
                           now=120.0)
    [note] = notes  # one group (group_by model): the new alert joins the firing one
    assert [a.labels["alertname"] for a in note.alerts] == ["worse", "vs_ref"]


def test_repeated_window_is_ignored(tmp_path):
    engine = make(tmp_path, AUC_RULE % 2)
    engine.observe([auc(0, 0.6)], now=60.0)
    assert engine.observe([auc(0, 0.6)], now=61.0) == []  # same window again: no 2nd count
    assert engine.firing() == []


def test_annotations_rendered(tmp_path):
    engine = make(tmp_path, "  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, "
                  "annotations: {summary: '{{ model }}/{{ slice }}: {{ metric }} {{ value }} "
                  "{{ threshold }}'}}")
    [note] = engine.observe([auc(0, 0.61234, "country=DE")], now=60.0)
    assert note.alerts[0].annotations["summary"] == "fraud/country=DE: roc_auc 0.6123 < 0.7"
    assert "window" not in note.alerts[0].annotations  # only declared + default annotations
    assert "description" in note.alerts[0].annotations


def test_state_survives_restart_and_list_firing(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1)
    engine.observe([auc(0, 0.6)], now=60.0)
    engine.close()
    again = make(tmp_path, AUC_RULE % 1)
    assert [a.labels["alertname"] for a in again.firing()] == ["auc_low"]
    assert [a.labels["alertname"] for a in list_firing(str(tmp_path / "alerts.sqlite"))] == [
        "auc_low"]
    # still firing: no new notification within repeat_interval after the restart
    assert again.observe([auc(1, 0.6)], now=120.0) == []
    [note] = again.observe([auc(2, 0.9)], now=180.0)
    assert note.status == "resolved"
    assert list_firing(str(tmp_path / "alerts.sqlite")) == []
    assert list_firing(str(tmp_path / "missing.sqlite")) == []


def test_metrics_snapshot(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1)
    engine.observe([auc(0, 0.6, "a", critical=True), auc(0, 0.6, "b")], now=60.0)
    snap = engine.metrics_snapshot()
    assert snap["firing"] == {("fraud", "critical"): 1, ("fraud", "warning"): 1}
    assert snap["outbox_depth"] == 1  # one group
    assert snap["notifications_total"][("hook", "sent")] == 0


@pytest.mark.parametrize("bad", [{"base": 0}, {"factor": 0.5}, {"jitter": 1.0}])
def test_backoff_rejects_bad_params(bad):
    from alerts.outbox import Backoff

    with pytest.raises(ValueError, match=next(iter(bad))):
        Backoff(**bad)


def test_state_stays_bounded(tmp_path):
    engine = make(tmp_path, "  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, "
                  "flapping: {window: 3, changes: 2}}")
    many = [auc(0, 0.9, f"s{k}") for k in range(50)]
    engine.observe(many, now=60.0)
    assert engine._series == {}  # nothing breaching, nothing kept
    run(engine, [0.6, 0.9, 0.9, 0.9, 0.9], start=1)
    assert engine._series == {} and engine._groups == {}
    assert len(engine._latest) == 51  # one metrics row per model × version × slice seen


def test_prune_removes_old_done_entries(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1)
    engine.observe([auc(0, 0.6)], now=60.0)
    [entry] = engine.outbox.entries()
    engine.outbox.mark_failed(entry.id, 60.0, "refused", 400)
    engine.observe([auc(1, 0.9)], now=120.0)
    assert engine.outbox.prune(before=100.0) == 1
    assert [e.notification.status for e in engine.outbox.entries()] == ["resolved"]
    assert engine.outbox.alerts(None)[0].status == "resolved"
    engine.outbox.prune(before=1000.0)
    assert engine.outbox.alerts(None) == []


def test_replayed_old_windows_are_never_judged_again(tmp_path):
    """#18.1: fire, resolve, let the series be forgotten, then feed the same old windows
    again (a restart from an older offset): no notification, in this engine or a new one on
    the same database."""
    rule = ("  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, "
            "flapping: {window: 3, changes: 2}}")
    engine = make(tmp_path, rule)
    values = [0.6, 0.6, 0.9] + [0.9] * 12  # fires, resolves, then calm long enough
    notes = run(engine, values)
    assert [n[0].status for n in notes if n] == ["firing", "resolved"]
    assert engine._series == {}  # forgotten by the lifecycle: only the memory is left
    assert all(n == [] for n in run(engine, values)), "an old incident was notified again"
    assert engine.outbox.depth() == 2
    engine.close()
    again = make(tmp_path, rule)
    assert all(n == [] for n in run(again, values))
    # and a window newer than any judged is judged as usual
    [note] = again.observe([auc(len(values), 0.5)], now=1e6)
    assert note.status == "firing"


def test_memory_is_per_alert_and_bounded_by_series(tmp_path):
    engine = make(tmp_path, AUC_RULE % 1)
    for i in range(20):
        engine.observe([auc(i, 0.9, "a"), auc(i, 0.9, "b")], now=(i + 1) * W)
    memory = engine.outbox.load_memory()
    assert len(memory) == 2 and set(memory.values()) == {20 * W}  # one row per series
    # slice b's old window is ignored; slice c (never judged) is judged
    notes = engine.observe([auc(3, 0.5, "b"), auc(3, 0.5, "c")], now=30 * W)
    assert [a.labels["slice"] for n in notes for a in n.alerts] == ["c"]


def test_a_failed_commit_changes_nothing(tmp_path, monkeypatch):
    """#11.5: observe is all or nothing, so the same observations can be retried."""
    import sqlite3

    engine = make(tmp_path, AUC_RULE % 1)
    real = engine.outbox.commit

    def locked(*a, **kw):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(engine.outbox, "commit", locked)
    with pytest.raises(sqlite3.OperationalError):
        engine.observe([auc(0, 0.6)], now=60.0)
    assert engine._series == {} and engine._groups == {} and engine._memory == {}
    monkeypatch.setattr(engine.outbox, "commit", real)
    [note] = engine.observe([auc(0, 0.6)], now=60.0)
    assert note.status == "firing"


def test_events_report_transitions_and_notify_false_sends_nothing(tmp_path):
    """#18.2: a replay (notify=False) judges and reports transitions but enqueues nothing;
    a later notifying run on the same database tells the receiver what still fires."""
    spec = spec_of(f"alerts:\n{AUC_RULE % 1}\nreceivers:\n  - {{name: hook, type: webhook, "
                   "url: 'http://127.0.0.1:9/'}\nroute: {receiver: hook, group_wait: 0s, "
                   "group_by: ['...']}")
    from alerts.engine import AlertEngine

    path = str(tmp_path / "a.sqlite")
    replay = AlertEngine(spec, path, clock=lambda: 0.0, notify=False)
    events: list = []
    for i, (s, v) in enumerate([("a", 0.6), ("a", 0.9), ("b", 0.6)]):
        assert replay.observe([auc(i, v, s)], now=(i + 1) * W, events=events) == []
    assert [(e.status, e.alert.labels["slice"], e.alert.window_end) for e in events] == [
        ("firing", "a", W), ("resolved", "a", 2 * W), ("firing", "b", 3 * W)]
    assert replay.dispatch(now=1e6) == 0 and replay.flush(now=1e6) == []
    assert replay.outbox.entries() == []
    replay.close()
    live = AlertEngine(spec, path, clock=lambda: 0.0)
    [note] = live.flush(now=4 * W)
    assert note.status == "firing" and [a.labels["slice"] for a in note.alerts] == ["b"]


def test_retry_delay_is_capped_per_receiver(tmp_path):
    """#18.8: the default cap is 30 s; a receiver's retry_max_delay lowers it."""
    import random

    from alerts.outbox import Backoff

    assert Backoff().cap == 30.0
    assert max(Backoff().delay(n, random.Random(n)) for n in range(1, 30)) <= 30.0
    engine = make(tmp_path, AUC_RULE % 1)
    engine.observe([auc(0, 0.6)], now=60.0)
    [entry] = engine.outbox.entries()
    for _ in range(12):
        engine.outbox.claim(entry.id, 60.0)
        engine.outbox.mark_retry(entry.id, 60.0, "503", 503, cap=5.0)
    [entry] = engine.outbox.entries()
    assert entry.attempts == 12 and entry.next_attempt_at - 60.0 <= 5.0


def test_missing_rate_rule_skips_the_features_own_missing_slice(tmp_path):
    """#18.11: on ``area_m2=__missing__`` every record misses area_m2 (value 1.0)."""
    from slices.spec import DriftSpec, FeatureSpec

    doc = load_text("alerts:\n  - {name: area_missing, quality: {feature: area_m2, "
                    "check: missing_ratio, upper: 0.05}}\nreceivers:\n  - {name: hook, "
                    "type: webhook, url: 'http://127.0.0.1:9/'}\nroute: {receiver: hook, "
                    "group_wait: 0s, group_by: ['...']}\n", "spec.yaml")
    checker = Checker(doc)
    model = ModelSpec(name="fraud", task="binary", features=(FeatureSpec("area_m2"),),
                      drift=DriftSpec(enabled=True))
    spec = parse_alerting(checker, doc.data, (model,))
    checker.raise_if_any()
    engine = AlertEngine(spec, str(tmp_path / "alerts.sqlite"), clock=lambda: 0.0)

    def q(slice_: str, rate: float) -> Observation:
        return Observation(model="fraud", version="v1", slice=slice_, window_start=0.0,
                           window_end=W, count=100,
                           quality={"area_m2": {"missing_ratio": rate}})

    notes = engine.observe([q("area_m2=__missing__", 1.0), q("city=x,area_m2=__missing__", 1.0),
                            q("overall", 0.2), q("area_m2=[0,50)", 0.0)], now=W)
    assert sorted(a.labels["slice"] for n in notes for a in n.alerts) == ["overall"]


def test_default_descriptions_show_a_baseline_only_for_change_rules(tmp_path):
    """#18.11: value rules ended in "baseline ."."""
    engine = make(tmp_path, AUC_RULE % 1 + "\n  - {name: auc_drop, metric: roc_auc, change: "
                  "{baseline: reference, absolute: -0.05, direction: higher_is_better}}",
                  route="{receiver: hook, group_wait: 0s, group_by: ['...']}")
    notes = engine.observe([auc(0, 0.6, reference_metrics={"roc_auc": 0.9})], now=W)
    text = {a.labels["alertname"]: a.annotations["description"] for n in notes
            for a in n.alerts}
    assert text["auc_low"].endswith("roc_auc = 0.6, threshold < 0.7.")
    assert "baseline" not in text["auc_low"]
    assert text["auc_drop"].endswith("baseline 0.9.")
