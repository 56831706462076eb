"""Environment variables in ``source.kafka`` (#11.10): read only in the security settings
(config.sasl.*, config.ssl.*) and bootstrap_servers; anywhere else a located spec error (exit 2);
expanded values never reach logs or error texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.ingest.kafka import EnvNotAllowed, mask, parse_kafka_settings

REPO = Path(__file__).resolve().parents[2]
BASE = {"bootstrap_servers": "127.0.0.1:9092", "group_id": "g", "topics": {"predictions": "p"}}
ENV = {"KAFKA_PASSWORD": "hunter2-secret", "U": "alice-user", "HOST": "10.0.0.1:9092"}


@pytest.mark.parametrize("settings, path", [
    ({**BASE, "topics": {"predictions": "${KAFKA_PASSWORD}"}}, "source.kafka.topics.predictions"),
    ({**BASE, "topics": {"predictions": "p", "labels": "l-${U}"}}, "source.kafka.topics.labels"),
    ({**BASE, "group_id": "${KAFKA_PASSWORD}"}, "source.kafka.group_id"),
    ({**BASE, "instance_id": "${U}"}, "source.kafka.instance_id"),
    ({**BASE, "dead_letter_topic": "${U}"}, "source.kafka.dead_letter_topic"),
    ({**BASE, "config": {"client.id": "${KAFKA_PASSWORD}"}}, "source.kafka.config.client.id"),
])
def test_env_references_outside_security_settings_are_refused(settings, path):
    with pytest.raises(EnvNotAllowed) as err:
        parse_kafka_settings(settings, env=ENV)
    assert str(err.value).startswith(f"{path}: ${{...}} is read from the environment only")
    assert ".".join(err.value.path) == path
    assert "hunter2" not in str(err.value) and "alice" not in str(err.value)


def test_security_settings_and_bootstrap_servers_are_expanded_and_masked():
    s = parse_kafka_settings({**BASE, "bootstrap_servers": "${HOST}",
                              "config": {"sasl.username": "${U}",
                                         "sasl.password": "${KAFKA_PASSWORD}",
                                         "ssl.key.password": "${KAFKA_PASSWORD}"}}, env=ENV)
    assert s.bootstrap_servers == "10.0.0.1:9092"
    assert s.config["sasl.username"] == "alice-user"
    assert s.config["sasl.password"] == s.config["ssl.key.password"] == "hunter2-secret"
    assert "hunter2" not in repr(s) and "alice-user" not in repr(s)
    text = s.scrub("auth failed for alice-user with hunter2-secret")
    assert text == "auth failed for *** with ***"
    masked = mask(s.config, [k for k in s.config if s.config[k] in s.secrets])
    assert masked["sasl.username"] == masked["sasl.password"] == "***"


def test_the_run_reports_the_place_in_the_spec_and_exits_2(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("""version: 1
source:
  type: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:9
    group_id: g
    topics:
      predictions: preds-${KAFKA_PASSWORD}
checkpoint: cp.db
models:
  - name: m
    task: binary
    window: 1m
    metrics: [count]
""")
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAFKA_PASSWORD": "hunter2-secret"}
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert f"{spec}:8:20: source.kafka.topics.predictions: ${{...}} is read from the " \
           "environment only" in out
    assert "hunter2" not in out and "Traceback" not in out
    assert not (tmp_path / "cp.db").exists()  # refused before anything was opened
