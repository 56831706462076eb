"""#18.3: after kill -9, a restarted instance gets its partitions back at once (static group
membership), not after the group's session timeout (45 s by default)."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_kafka_source import (
    Daemon_,
    produce,
    records,
    saved_seq,
    wait_consumed,
    wait_saved,
    write_spec,
)

pytestmark = pytest.mark.integration


def test_a_restart_after_kill_9_gets_its_partitions_at_once(tmp_path, kafka_bootstrap,
                                                          kafka_topic):
    topic = kafka_topic("preds", partitions=2)
    spec = write_spec(tmp_path, kafka_bootstrap, topic)
    text = spec.read_text()
    spec.write_text(text.replace("config: {session.timeout.ms: 6000, heartbeat.interval.ms: 500}",
                                 "config: {}"))  # librdkafka's defaults: session timeout 45 s
    assert "session.timeout" not in spec.read_text()
    produce(kafka_bootstrap, topic, records(2_000, seed=41), partitions=2)
    d = Daemon_(spec, tmp_path / "results.jsonl")
    d.wait_for("kafka: assigned", timeout=60)
    wait_saved(tmp_path / "cp.db", saved_seq(tmp_path / "cp.db") + 1)
    d.kill()
    t0 = time.monotonic()
    d = Daemon_(spec, tmp_path / "results.jsonl")
    d.wait_for("kafka: assigned", timeout=60)
    waited = time.monotonic() - t0
    print(f"\nrestart after kill -9: partitions assigned after {waited:.1f} s")
    assert waited < 20  # 45 s and more without static membership
    produce(kafka_bootstrap, topic, records(2_000, seed=42), partitions=2)
    wait_consumed(tmp_path / "cp.db", 4_000)
    assert d.stop() == 0
