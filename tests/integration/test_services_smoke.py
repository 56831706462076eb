"""The loopback services started by scripts/services answer as the rest of the suite expects."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.wait import DEADLINE, HTTP_TIMEOUT

LOOPBACK = ("http://127.0.0.1:", "127.0.0.1:")


def _until(check, timeout: float, what: str, interval: float = 0.25):
    """Poll `check()` until it returns a truthy value; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not seen within {timeout:.0f} s (last: {last!r})")


def test_addresses_are_loopback(
    kafka_bootstrap, prometheus_url, alertmanager_url, pushgateway_url
) -> None:
    for addr in (kafka_bootstrap, prometheus_url, alertmanager_url, pushgateway_url):
        assert addr.startswith(LOOPBACK), addr


@pytest.mark.kafka
def test_kafka_produce_consume_roundtrip(kafka_bootstrap, kafka_topic) -> None:
    topic = kafka_topic(partitions=3)
    sent = {f"id-{i}".encode(): json.dumps({"i": i, "score": i / 10}).encode() for i in range(30)}
    delivered: list[tuple[int, int]] = []

    def on_delivery(err, msg) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value in sent.items():
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(DEADLINE) == 0
    assert len(delivered) == len(sent)
    assert {p for p, _ in delivered} <= {0, 1, 2}

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        got: dict[bytes, bytes] = {}
        deadline = time.monotonic() + DEADLINE
        while len(got) < len(sent) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                assert msg.error() is None, msg.error()
                got[msg.key()] = msg.value()
        assert got == sent
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)],
                                       timeout=HTTP_TIMEOUT)
        assert sum(tp.offset for tp in committed if tp.offset >= 0) == len(sent)
    finally:
        consumer.close()


def _query(prometheus_url: str, promql: str) -> list[dict]:
    resp = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql},
                        timeout=HTTP_TIMEOUT)
    resp.raise_for_status()
    body = resp.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_itself(prometheus_url) -> None:
    result = _until(
        lambda: _query(prometheus_url, 'up{job="prometheus"} == 1'), DEADLINE,
        "up{job=prometheus}"
    )
    assert result[0]["value"][1] == "1"


def test_prometheus_scrapes_file_sd_target(prometheus_url, prometheus_targets_dir, free_port):
    port = free_port()
    registry = CollectorRegistry()
    marker = uuid.uuid4().hex[:12]
    gauge = Gauge("slicewatch_smoke_value", "smoke-test gauge", ["marker"], registry=registry)
    gauge.labels(marker=marker).set(42.5)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    target_file: Path = prometheus_targets_dir / f"smoke-{marker}.json"
    try:
        tmp = target_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"t": marker}}]))
        tmp.rename(target_file)
        result = _until(
            lambda: _query(prometheus_url, f'slicewatch_smoke_value{{marker="{marker}"}}'),
            DEADLINE,
            f"slicewatch_smoke_value scraped from 127.0.0.1:{port}",
        )
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["job"] == "slicewatch-test"
        assert result[0]["metric"]["t"] == marker
        # a changed value shows up at the next 1 s scrape
        gauge.labels(marker=marker).set(7.0)
        _until(
            lambda: [
                r
                for r in _query(prometheus_url, f'slicewatch_smoke_value{{marker="{marker}"}}')
                if float(r["value"][1]) == 7.0
            ],
            DEADLINE,
            "updated gauge value 7.0",
        )
    finally:
        target_file.unlink(missing_ok=True)
        server.shutdown()
        thread.join(5)


def test_alertmanager_accepts_and_lists_alerts(alertmanager_url) -> None:
    name = f"SlicewatchSmoke{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": name, "model": "smoke", "severity": "page"},
        "annotations": {"summary": "smoke test alert"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    resp = requests.post(f"{alertmanager_url}/api/v2/alerts", json=[alert], timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text

    def listed():
        resp = requests.get(
            f"{alertmanager_url}/api/v2/alerts",
            params={"filter": f'alertname="{name}"'},
            timeout=HTTP_TIMEOUT,
        )
        resp.raise_for_status()
        return resp.json()

    alerts = _until(listed, DEADLINE, f"alert {name} in GET /api/v2/alerts")
    assert len(alerts) == 1
    assert alerts[0]["labels"] == alert["labels"]
    assert alerts[0]["annotations"] == alert["annotations"]
    assert alerts[0]["status"]["state"] == "active"
    assert [r["name"] for r in alerts[0]["receivers"]] == ["default"]


def test_pushgateway_roundtrip(pushgateway_url) -> None:
    job = f"smoke_{uuid.uuid4().hex[:8]}"
    body = (
        '# TYPE slicewatch_smoke_pushed gauge\nslicewatch_smoke_pushed{slice="country=DE"} 3.25\n'
    )
    url = f"{pushgateway_url}/metrics/job/{job}/model/fraud"
    resp = requests.post(url, data=body.encode(), timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    try:
        text = requests.get(f"{pushgateway_url}/metrics", timeout=HTTP_TIMEOUT).text
        lines = [ln for ln in text.splitlines() if ln.startswith("slicewatch_smoke_pushed{")]
        mine = [ln for ln in lines if f'job="{job}"' in ln]
        assert len(mine) == 1, lines
        assert 'model="fraud"' in mine[0]
        assert 'slice="country=DE"' in mine[0]
        assert float(mine[0].rsplit(" ", 1)[1]) == 3.25
    finally:
        assert requests.delete(url, timeout=HTTP_TIMEOUT).status_code == 202
    # 202: the Pushgateway applies the DELETE asynchronously
    _until(
        lambda: f'job="{job}"'
        not in requests.get(f"{pushgateway_url}/metrics", timeout=HTTP_TIMEOUT).text,
        DEADLINE,
        f"group {job} deleted",
    )


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_restart_keeps_port_and_data(kafka_bootstrap, kafka_topic, kafka_service) -> None:
    """kafka-kill + kafka-start (what the broker-outage tests use) keeps topics and records."""
    topic = kafka_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for i in range(10):
        producer.produce(topic, value=str(i).encode(), partition=i % 2)
    assert producer.flush(DEADLINE) == 0

    kafka_service.kill()
    kafka_service.start()

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"smoke-restart-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
        values: list[int] = []
        deadline = time.monotonic() + DEADLINE
        while len(values) < 10 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=50, timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(int(msg.value()))
        assert sorted(values) == list(range(10))
    finally:
        consumer.close()
    producer.produce(topic, value=b"after-restart", partition=0)
    assert producer.flush(DEADLINE) == 0
