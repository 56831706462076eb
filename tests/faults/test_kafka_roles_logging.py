"""The scaled roles' Kafka clients (``--role worker|evaluator``: the transactional producer,
the admin client, the worker's and the evaluator's consumers, the state reader) log through
``slicewatch.kafka`` with the throttle of ``client_logging``, not raw librdkafka ``%3|…``
lines on stderr. The producer and the admin client are tried against a loopback port bound
then closed (nothing listens); the consumers' settings are taken where they are made."""

from __future__ import annotations

import logging
import threading

import pytest

from monitor.ingest import kafka as ingest_kafka
from monitor.runtime.kafka_run import settings_for
from monitor.scale import kafka_roles
from monitor.scale.kafka_roles import EvaluatorLoop, Worker, read_latest
from slices.load import load_spec_text
from tests.faults.test_kafka_log_throttle import closed_port
from tests.unit.test_scale_worker_faults import SPEC, TOPICS
from tests.wait import wait_until


def _spec(port: int):
    return load_spec_text(SPEC.replace("127.0.0.1:9", f"127.0.0.1:{port}"))


def _ours(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "slicewatch.kafka"]


@pytest.mark.parametrize("client", ["transactional producer", "admin client"])
def test_a_role_client_with_no_broker_logs_through_us(client, capfd, caplog):
    caplog.set_level(logging.INFO, logger="slicewatch.kafka")
    settings = settings_for(_spec(closed_port()))
    made = (kafka_roles._producer(settings, "t-1") if client == "transactional producer"
            else kafka_roles._admin(settings))

    def logged() -> bool:
        made.poll(0.1)
        ours = _ours(caplog)
        return (any(m.startswith(f"kafka: {client}: ") for m in ours)
                and any(m.startswith("kafka: librdkafka: ") and "Connection refused" in m
                        for m in ours))

    wait_until(logged, what=f"the {client}'s connection errors logged by slicewatch.kafka")
    assert "%3|" not in capfd.readouterr().err


class _Made(Exception):
    """A fake Consumer got its settings."""


def test_the_role_consumers_are_made_with_our_logging(monkeypatch):
    import confluent_kafka

    confs: list[dict] = []

    def consumer(conf):
        confs.append(conf)
        raise _Made

    monkeypatch.setattr(confluent_kafka, "Consumer", consumer)
    spec = _spec(closed_port())
    settings = settings_for(spec)

    class Producer:
        def init_transactions(self, timeout):
            pass

    worker = Worker(spec, settings, None, threading.Event(), partitions=1, topics=TOPICS,
                    producer=Producer())
    monkeypatch.setattr(kafka_roles, "source_partitions", lambda settings: 1)
    monkeypatch.setattr(kafka_roles, "ensure_topics", lambda settings: TOPICS)
    evaluator = EvaluatorLoop(spec, settings, [], threading.Event())
    for run in (worker.run, evaluator.run, lambda: read_latest(settings, "x-ev")):
        with pytest.raises(_Made):
            run()
    assert len(confs) == 3
    for conf in confs:
        assert isinstance(conf["logger"], ingest_kafka._RateLimitedLogger), conf
        assert callable(conf["error_cb"]), conf
