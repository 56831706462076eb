"""Event times on the Kafka path: a far-future record and unrepresentable times are rejected
with their reason before they reach the windows; the daemon neither crashes nor goes silent.
Messages over ``max_record_bytes`` and empty ones are rejected and counted too."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
import pytest
import requests
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

SPEC = """
source:
  type: kafka
  kafka:
    bootstrap_servers: {bootstrap}
    group_id: g-{topic}
    topics: {{predictions: {topic}}}
    consume_timeout: 0.2
  max_record_bytes: 65536
checkpoint: {checkpoint}
server: {{listen: "127.0.0.1:{port}"}}
models:
  - name: m
    task: binary
    window: 1m
"""
START = (int(time.time()) // 60 - 30) * 60


def rec(t) -> bytes:
    return orjson.dumps({"model": "m", "timestamp": t, "prediction": {"score": 0.5}})


def samples(port: int) -> dict:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except requests.RequestException:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.integration
def test_far_future_and_unrepresentable_times_from_kafka(tmp_path, kafka_bootstrap,
                                                         kafka_topic, free_port):
    topic, port = kafka_topic("times", partitions=1), free_port()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(bootstrap=kafka_bootstrap, topic=topic, port=port,
                                checkpoint=tmp_path / "cp.db"))
    lines = [rec(START + i) for i in range(0, 60, 2)]  # window 1
    lines += [rec(32503680000), rec("3000-01-01T00:00:00Z"), rec("2300-01-01T00:00:00Z"),
              rec("1500-01-01T00:00:00Z"), rec(1e300), rec("9999-99-99")]
    lines += [b'{"model": "m", "x": "' + b"a" * 100_000 + b'"}', b""]  # too_large, empty
    lines += [rec(START + 60 + i) for i in range(0, 120, 2)]  # windows 2 and 3
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for line in lines:
        producer.produce(topic, line)
    assert producer.flush(30) == 0
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        want = {("slicewatch_records_total", (("model", "m"),)): 90.0,
                ("slicewatch_bad_records_total", (("reason", "future_time"),)): 4.0,
                ("slicewatch_bad_records_total", (("reason", "bad_time"),)): 2.0,
                ("slicewatch_bad_records_total", (("reason", "too_large"),)): 1.0,
                ("slicewatch_bad_records_total", (("reason", "empty_line"),)): 1.0,
                ("slicewatch_windows_closed_total", (("model", "m"),)): 2.0,
                ("slicewatch_late_records_total", (("model", "m"),)): 0.0}
        while not want.items() <= samples(port).items():
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, samples(port)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "Traceback" not in out, out
