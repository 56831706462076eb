"""Watermarks over Kafka partitions on the real broker (#11.1, #18.3, #18.13): a 2-partition
backlog with the default lateness (0 s) marks no record late; a partition with no data does
not hold windows back; the consumer lag reaches 0 once everything is consumed."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitor.outputs.results import read_results
from monitor.state.checkpoint import Checkpoint
from tests.integration.test_kafka_source import (
    Daemon_,
    assert_same_results,
    produce,
    records,
    reference,
    sentinel,
    wait_consumed,
    wait_results,
    write_spec,
)

pytestmark = pytest.mark.integration


def default_lateness_spec(tmp_path, bootstrap, topic):
    spec = write_spec(tmp_path, bootstrap, topic)
    text = spec.read_text().replace("    allowed_lateness: 1h\n", "")  # the default: 0 s
    spec.write_text(text.replace("consume_batch: 2000", "consume_batch: 20000"))
    return spec


def metrics(url: str) -> dict:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_two_partition_backlog_with_the_default_lateness(tmp_path, kafka_bootstrap, kafka_topic):
    """The issue's case: an uninterrupted run over a 2-partition backlog. The late share is
    printed (``pytest -s``) and must be 0: each partition's records come in event-time order,
    and the watermark is the minimum over the partitions. The lag reaches 0."""
    n = 60_000
    topic = kafka_topic("preds", partitions=2)
    spec = default_lateness_spec(tmp_path, kafka_bootstrap, topic)
    lines = records(n, seed=21)
    produce(kafka_bootstrap, topic, lines, partitions=2)  # the backlog, before the consumer
    want = reference(spec, lines[:0] + lines)  # in event-time order: no record late
    want = {k: v for k, v in want.items() if k[3] < 1_700_000_000.0 + 3600}  # no sentinels
    results = tmp_path / "results.jsonl"
    d = Daemon_(spec, results)
    wait_consumed(tmp_path / "cp.db", n)
    deadline = time.monotonic() + 60
    while True:  # the lag reaches 0 once everything is consumed (it showed 14,501)
        lag = {s.labels["partition"]: s.value
               for s in metrics(d.url)["slicewatch_kafka_consumer_lag"].samples}
        if lag == {"0": 0.0, "1": 0.0} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lag == {"0": 0.0, "1": 0.0}
    late = sum(s.value for s in metrics(d.url)["slicewatch_late_records"].samples
               if s.name.endswith("_total"))
    print(f"\n2-partition backlog, default allowed_lateness (0 s): {int(late)} of {n} records "
          f"late ({100 * late / n:.2f} %)")
    assert late == 0
    produce(kafka_bootstrap, topic, [sentinel(p) for p in range(2)], partitions=2)
    wait_results([results], set(want), logs=(d,))
    assert d.stop() == 0
    got = {k: v for k, v in read_results(str(results)).items() if k in want}
    assert_same_results(got, want)


def test_a_partition_without_data_does_not_hold_windows_back(tmp_path, kafka_bootstrap,
                                                             kafka_topic):
    """All records on partition 0, none ever on partition 1: partition 1 is caught up
    (idle), so windows close on partition 0's event time alone."""
    n = 5_000
    topic = kafka_topic("preds", partitions=2)
    spec = default_lateness_spec(tmp_path, kafka_bootstrap, topic)
    lines = records(n, seed=22)
    want = reference(spec, lines)
    want = {k: v for k, v in want.items() if k[3] < 1_700_000_000.0 + 3600}
    results = tmp_path / "results.jsonl"
    d = Daemon_(spec, results)
    d.wait_for("kafka: assigned")
    produce(kafka_bootstrap, topic, [*lines, sentinel(0)], partitions=1)  # partition 0 only
    wait_results([results], set(want), timeout=60, logs=(d,))
    assert d.stop() == 0
    assert_same_results({k: v for k, v in read_results(str(results)).items() if k in want}, want)



def test_the_lag_is_zero_as_soon_as_everything_is_consumed(tmp_path, kafka_bootstrap,
                                                            kafka_topic):
    """The lag gauge counts the batch just consumed: the moment the checkpoint holds every
    offset, /metrics shows lag 0 on both partitions (it showed the last batch, 14,501,
    computed before that batch was folded in, until a later refresh)."""
    n = 40_000
    topic = kafka_topic("preds", partitions=2)
    spec = default_lateness_spec(tmp_path, kafka_bootstrap, topic)
    spec.write_text(spec.read_text().replace("checkpoint_interval: 0.5",
                                             "checkpoint_interval: 0.5\n    checkpoint_records: 1"))
    produce(kafka_bootstrap, topic, records(n, seed=24), partitions=2)
    d = Daemon_(spec, tmp_path / "results.jsonl")
    db = tmp_path / "cp.db"
    deadline = time.monotonic() + 90
    while True:
        got = (sum(n for n, _ in Checkpoint(str(db), owner="probe").positions().values())
               if db.exists() else 0)
        if got == n:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.01)
    lag = {s.labels["partition"]: s.value
           for s in metrics(d.url)["slicewatch_kafka_consumer_lag"].samples}
    assert lag == {"0": 0.0, "1": 0.0}
    assert d.stop() == 0
