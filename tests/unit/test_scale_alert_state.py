"""The scaled evaluator's alert lifecycle travels as plain data (issue #14 follow-up): an
engine restored from another's :meth:`AlertEngine.export_state` (another host, another
database) knows what fired, what is pending under ``for:`` and what was notified — it does
not notify a firing alert again, and carries a pending ``for:`` streak on."""

from __future__ import annotations

import json

from alerts.engine import AlertEngine
from monitor.state.encoding import decode_state, encode_state
from tests.unit.test_alerts_engine import AUC_RULE, W, auc, spec_of

TEXT = ("alerts:\n%s\nreceivers:\n  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/'}\n"
        "route: {receiver: hook, group_wait: 0s, group_interval: 1m, repeat_interval: 1h, "
        "group_by: [model]}\n")


def engine(tmp_path, name: str, rule: str) -> AlertEngine:
    return AlertEngine(spec_of(TEXT % rule), str(tmp_path / f"{name}.sqlite"),
                       clock=lambda: 0.0)


def moved(state: dict) -> dict:
    """Through the evaluator's Kafka record encoding (plain data, no pickle)."""
    json.dumps(state)
    return decode_state(encode_state({"alerts": state}))["alerts"]


def test_a_firing_alert_is_not_notified_again_after_a_takeover(tmp_path):
    a = engine(tmp_path, "a", AUC_RULE % 2)
    notes = [a.observe([auc(i, 0.6)], now=(i + 1) * W) for i in range(2)]
    assert [len(n) for n in notes] == [0, 1]  # fired at the second window, notified
    for e in a.outbox.entries("pending"):
        a.outbox.mark_sent(e.id, 2 * W, 200)
    b = engine(tmp_path, "b", AUC_RULE % 2)
    b.import_state(moved(a.export_state()), now=2 * W)
    assert [x.labels["alertname"] for x in b.firing()] == ["auc_low"]
    assert b.outbox.entries("pending") == []  # delivered by a: not queued again
    # the same window closed again after the takeover: judged before, ignored
    assert b.observe([auc(1, 0.6)], now=2 * W + 1) == []
    # the next window, still breaching: no new notification (repeat_interval 1h)
    assert b.observe([auc(2, 0.6)], now=3 * W) == []
    [resolved] = b.observe([auc(3, 0.9)], now=4 * W)
    assert resolved.status == "resolved"
    fresh = engine(tmp_path, "fresh", AUC_RULE % 2)  # what a takeover did before
    notes = [fresh.observe([auc(i, 0.6)], now=(i + 1) * W) for i in (2, 3)]
    assert [len(n) for n in notes] == [0, 1]


def test_a_pending_streak_and_undelivered_notifications_carry_over(tmp_path):
    a = engine(tmp_path, "a", AUC_RULE % 3)
    a.observe([auc(0, 0.6)], now=W)
    a.observe([auc(1, 0.6)], now=2 * W)  # pending: 2 of 3 windows
    b = engine(tmp_path, "b", AUC_RULE % 3)
    b.import_state(moved(a.export_state()), now=2 * W)
    [note] = b.observe([auc(2, 0.6)], now=3 * W)  # the third window fires, as in one process
    assert note.status == "firing"
    c = engine(tmp_path, "c", AUC_RULE % 3)  # b died before delivering: c queues it
    c.import_state(moved(b.export_state()), now=3 * W)
    [entry] = c.outbox.entries("pending")
    assert entry.notification.id == note.id and entry.dedup_key == note.dedup_key
    c.import_state(moved(b.export_state()), now=3 * W)
    assert len(c.outbox.entries("pending")) == 1  # not queued twice


def test_a_rule_removed_from_the_spec_is_left_out(tmp_path):
    a = engine(tmp_path, "a", AUC_RULE % 1)
    a.observe([auc(0, 0.6)], now=W)
    other = "  - {name: other, metric: roc_auc, threshold: {lower: 0.1}}"
    b = engine(tmp_path, "b", other)
    b.import_state(moved(a.export_state()), now=W)
    assert b.firing() == []
    # what a had queued still goes out, as after a restart of one process
    assert [e.notification.status for e in b.outbox.entries("pending")] == ["firing"]
