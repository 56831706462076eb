"""Delayed labels on their own Kafka topic, joined by prediction id (real broker): the
results equal those of the same predictions logged with inline labels."""

from __future__ import annotations

import orjson
from confluent_kafka import Producer

from monitor.outputs.results import read_results
from tests.integration.test_kafka_source import (
    PARTITIONS,
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
from tests.wait import DEADLINE


def test_labels_topic_joins_into_the_prediction_windows(tmp_path, kafka_bootstrap, kafka_topic):
    preds = kafka_topic("preds", partitions=PARTITIONS)
    labels = kafka_topic("labels", partitions=2)
    spec = write_spec(tmp_path, kafka_bootstrap, preds)
    text = spec.read_text().replace(f"topics: {{predictions: {preds}}}",
                                    f"topics: {{predictions: {preds}, labels: {labels}}}")
    text = text.replace("    allowed_lateness: 1h\n",
                        "    allowed_lateness: 1h\n    label_delay: 1h\n")
    spec.write_text(text)
    inline = records(20_000, seed=7)
    want = reference(spec, inline)  # the same predictions with their labels inline
    unlabelled, label_lines = [], []
    for line in inline:
        rec = orjson.loads(line)
        label_lines.append(orjson.dumps({"prediction_id": rec["prediction_id"],
                                         "label": rec.pop("label"),
                                         "timestamp": rec["timestamp"] + 60}))
        unlabelled.append(orjson.dumps(rec))
    results = tmp_path / "results.jsonl"
    d = Daemon_(spec, results)
    d.wait_for("kafka: assigned")
    produce(kafka_bootstrap, preds, unlabelled)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 10})
    for i, line in enumerate(label_lines):
        p.produce(labels, line, partition=i % 2)
    assert p.flush(DEADLINE) == 0
    wait_consumed(tmp_path / "cp.db", len(unlabelled) + len(label_lines))
    produce(kafka_bootstrap, preds, [sentinel(i) for i in range(PARTITIONS)])
    wait_results([results], set(want), logs=(d,))
    assert d.stop() == 0
    got = read_results(str(results))
    assert_same_results(got, want)
    overall = [r for r in got.values() if r["slice"] == "overall"]
    assert overall and all(r["metrics"]["accuracy"] is not None for r in overall)
