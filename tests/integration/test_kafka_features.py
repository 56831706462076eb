"""Features on their own Kafka topic (a feature log keyed by prediction id), real broker: the
results equal those of the same predictions logged with their features inline."""

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


def test_feature_topic_joins_before_slicing(tmp_path, kafka_bootstrap, kafka_topic):
    preds = kafka_topic("preds", partitions=PARTITIONS)
    feats = kafka_topic("feats", partitions=2)
    spec = write_spec(tmp_path, kafka_bootstrap, preds)
    spec.write_text(spec.read_text().replace(
        f"topics: {{predictions: {preds}}}",
        f"topics: {{predictions: {preds}, features: {feats}}}\n    feature_delay: 1800"))
    whole = records(20_000, seed=8)
    inline_spec = tmp_path / "inline.yaml"
    inline_spec.write_text(spec.read_text().replace(f", features: {feats}", ""))
    want = reference(inline_spec, whole)
    bare, feature_lines = [], []
    for line in whole:
        rec = orjson.loads(line)
        feature_lines.append(orjson.dumps({"prediction_id": rec["prediction_id"],
                                           "features": rec.pop("features")}))
        bare.append(orjson.dumps(rec))
    results = tmp_path / "results.jsonl"
    d = Daemon_(spec, results)
    d.wait_for("kafka: assigned")
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 10})
    for i, line in enumerate(feature_lines):
        p.produce(feats, line, partition=i % 2)
    assert p.flush(DEADLINE) == 0
    produce(kafka_bootstrap, preds, bare)
    wait_consumed(tmp_path / "cp.db", len(bare) + len(feature_lines))
    produce(kafka_bootstrap, preds, [sentinel(i) for i in range(PARTITIONS)])
    wait_results([results], set(want), logs=(d,))
    assert d.stop() == 0
    assert_same_results(read_results(str(results)), want)
