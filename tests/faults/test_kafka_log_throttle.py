"""A Kafka client whose broker is unreachable logs through ``slicewatch.kafka``, not raw
librdkafka ``%3|…|FAIL`` lines on stderr, and a repeated identical error is one line per
interval with a count of the suppressed ones. The broker is a loopback port bound then closed
(nothing listens): the shared broker is never touched."""

from __future__ import annotations

import logging
import socket

from monitor.ingest.kafka import KafkaDeadLetter, parse_kafka_settings
from tests.wait import wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_dead_letter_broker_is_logged_through_us_and_throttled(capfd, caplog):
    settings = parse_kafka_settings({
        "bootstrap_servers": f"127.0.0.1:{closed_port()}", "group_id": "g",
        "topics": {"predictions": "p"}, "dead_letter_topic": "dead"})
    caplog.set_level(logging.INFO, logger="slicewatch.kafka")
    dl = KafkaDeadLetter(None, settings)
    try:
        dl.write("not_json", b"{oops")

        def suppressed(n: int) -> bool:
            dl.producer.poll(0.1)
            return dl.throttle.suppressed >= n

        wait_until(lambda: suppressed(3), what="repeated connection errors suppressed")
        ours = [r.getMessage() for r in caplog.records if r.name == "slicewatch.kafka"]
        assert any(m.startswith("kafka: librdkafka: ") and "Connection refused" in m
                   for m in ours), ours
        assert any(m.startswith("kafka: dead-letter producer: ") for m in ours), ours
        assert sum("Connection refused" in m for m in ours) <= 2, ours  # one per source
        dl.throttle.interval = 0.0  # the next identical line says what was held back
        wait_until(lambda: suppressed(0) and any(
            "identical line(s) suppressed)" in r.getMessage() for r in caplog.records),
            what="a line counting the suppressed ones")
        assert "%3|" not in capfd.readouterr().err
    finally:
        dl.producer.purge()
        dl.producer = None
