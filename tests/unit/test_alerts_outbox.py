"""Outbox: ordering per dedup key, backoff with jitter and Retry-After, claims, bounds."""

from __future__ import annotations

import random

import pytest

from alerts.model import Alert, Notification
from alerts.outbox import Backoff, Outbox
from alerts.receivers.base import retry_after


def note(key: str, status: str = "firing", n: int = 0) -> Notification:
    a = Alert(fingerprint=f"f{n}", labels={"alertname": "x", "n": str(n)}, annotations={},
              status=status, starts_at=0.0)
    return Notification(receiver="hook", group_key=key, dedup_key=key, status=status,
                        alerts=(a,), group_labels={}, created_at=0.0)


@pytest.fixture
def box(tmp_path):
    b = Outbox(str(tmp_path / "o.sqlite"), Backoff(base=1.0, factor=2.0, cap=8.0, jitter=0.5,
                                                   max_age=100.0), random.Random(7), lease=5.0)
    yield b
    b.close()


def test_later_entry_waits_for_earlier_of_same_key(box):
    box.commit([note("k1", n=1), note("k2", n=2), note("k1", "resolved", n=3)], now=0.0)
    due = box.due(0.0)
    assert [(e.dedup_key, e.notification.alerts[0].labels["n"]) for e in due] == [
        ("k1", "1"), ("k2", "2")]
    first = due[0]
    assert box.claim(first.id, 0.0)
    box.mark_retry(first.id, 0.0, "503")
    # k1's resolve stays blocked while its trigger is pending (even in backoff)
    assert [e.dedup_key for e in box.due(100.0)] == ["k1", "k2"]
    assert box.due(100.0)[0].id == first.id
    box.mark_sent(first.id, 1.0, 200)
    assert [e.notification.status for e in box.due(1.0) if e.dedup_key == "k1"] == ["resolved"]


def test_failed_entry_unblocks_the_key(box):
    box.commit([note("k", n=1), note("k", n=2)], now=0.0)
    [e] = box.due(0.0)
    box.mark_failed(e.id, 0.0, "400 bad request: nope", 400)
    [nxt] = box.due(0.0)
    assert nxt.notification.alerts[0].labels["n"] == "2"
    [failed] = box.entries("failed")
    assert failed.response_status == 400 and "nope" in failed.last_error


def test_backoff_exponential_with_jitter_and_cap():
    b = Backoff(base=1.0, factor=2.0, cap=8.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, raw in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert all(raw * 0.5 <= d <= raw for d in delays)
        assert max(delays) - min(delays) > 0.3 * raw  # jitter spreads retries
    assert b.delay(1, rng, retry_after=30.0) == 30.0
    assert b.delay(1, rng, retry_after=1e9) == b.max_retry_after
    assert Backoff(jitter=0.0).delay(3, rng) == 4.0


def test_retry_schedule_and_give_up(box):
    box.commit([note("k")], now=0.0)
    [e] = box.due(0.0)
    now = 0.0
    for attempt in range(1, 5):
        assert box.mark_retry(e.id, now, "503", 503)
        [row] = box.entries()
        delay = row.next_attempt_at - now
        raw = min(8.0, 2.0 ** (attempt - 1))
        assert raw * 0.5 <= delay <= raw and row.attempts == attempt
        assert box.due(now + delay * 0.99) == []
        now += delay
        assert [x.id for x in box.due(now)] == [e.id]
    assert not box.mark_retry(e.id, 100.0, "503", 503)  # past max_age
    [row] = box.entries()
    assert row.status == "failed" and row.last_error.startswith("gave up after 5 attempts")
    assert box.depth() == 0


def test_retry_after_honoured(box):
    box.commit([note("k")], now=0.0)
    [e] = box.due(0.0)
    box.mark_retry(e.id, 0.0, "429", 429, retry_after=42.0)
    assert box.entries()[0].next_attempt_at == 42.0


def test_claim_is_exclusive_until_lease_expires(box, tmp_path):
    box.commit([note("k")], now=0.0)
    [e] = box.due(0.0)
    other = Outbox(box.path)
    assert box.claim(e.id, 0.0)
    assert not other.claim(e.id, 1.0)
    assert other.due(1.0) == []
    assert other.claim(e.id, 6.0)  # lease (5 s) expired: the other dispatcher may take it
    other.mark_sent(e.id, 6.0, 202)
    assert not box.claim(e.id, 100.0)  # sent entries are never taken again
    other.close()


def test_survives_reopen(tmp_path):
    path = str(tmp_path / "o.sqlite")
    first = Outbox(path)
    first.commit([note("a"), note("b")], now=0.0, state={"x": 1})
    first.close()
    second = Outbox(path)
    assert second.depth() == 2 and second.load_state() == {"x": 1}
    assert second.next_due() == 0.0
    second.close()


def test_retry_after_header_forms():
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("garbage") is None


def test_pending_entries_per_receiver_are_bounded(tmp_path):
    """#11.6: a receiver's queue holds at most max_pending; the rest is recorded failed
    ('outbox full') and returned so the engine counts it as dropped. Other receivers are
    not affected."""
    b = Outbox(str(tmp_path / "o.sqlite"), max_pending=2)
    other = Notification(**{**note("k9", n=9).__dict__, "receiver": "slack"})
    refused = b.commit([note("k1", n=1), note("k2", n=2), note("k3", n=3), other], now=0.0)
    assert [n.dedup_key for n in refused] == ["k3"]
    assert [(e.receiver, e.dedup_key) for e in b.entries("pending")] == [
        ("hook", "k1"), ("hook", "k2"), ("slack", "k9")]
    [full] = b.entries("failed")
    assert full.dedup_key == "k3" and full.last_error.startswith("outbox full: 2 entries")
    b.close()


def test_entries_of_a_removed_receiver_fail(tmp_path):
    b = Outbox(str(tmp_path / "o.sqlite"))
    b.commit([note("k1", n=1), Notification(**{**note("k2", n=2).__dict__,
                                               "receiver": "gone"})], now=0.0)
    assert b.fail_orphans({"hook"}, now=1.0) == {"gone": 1}
    [failed] = b.entries("failed")
    assert failed.receiver == "gone" and "no longer in the spec" in failed.last_error
    b.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    from alerts.errors import AlertsError

    path = tmp_path / "alerts.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(AlertsError, match=r"cannot open the alert database .*not a database"):
        Outbox(str(path))
