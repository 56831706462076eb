"""Fixtures for tests against the real services on 127.0.0.1 started by scripts/services.

`make test` (scripts/run-tests) starts Kafka, Prometheus, Alertmanager and Pushgateway and
exports their addresses; by hand: `scripts/services start && source .services/env`.
A missing address fails the test (it never skips): an integration suite that silently
runs nothing is worse than a red one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.wait import DEADLINE, HTTP_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO / "scripts" / "services"
HOW_TO_START = "start the services: make test (or scripts/services start && source .services/env)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as `integration`."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set; {HOW_TO_START}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """`127.0.0.1:PORT` of the single-node KRaft broker."""
    return _env("SLICEWATCH_TEST_KAFKA")


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    """`http://127.0.0.1:PORT` of Prometheus (scrape and evaluation interval 1 s)."""
    return _env("SLICEWATCH_TEST_PROMETHEUS").rstrip("/")


@pytest.fixture(scope="session")
def alertmanager_url() -> str:
    """`http://127.0.0.1:PORT` of Alertmanager (one receiver without integrations)."""
    return _env("SLICEWATCH_TEST_ALERTMANAGER").rstrip("/")


@pytest.fixture(scope="session")
def pushgateway_url() -> str:
    """`http://127.0.0.1:PORT` of the Pushgateway."""
    return _env("SLICEWATCH_TEST_PUSHGATEWAY").rstrip("/")


@pytest.fixture(scope="session")
def prometheus_targets_dir() -> Path:
    """Prometheus file_sd directory (refresh 1 s, job `slicewatch-test`).

    Write `[{"targets": ["127.0.0.1:PORT"], "labels": {...}}]` to `<dir>/<name>.json`
    (write to a temp name and rename, so Prometheus never reads half a file).
    """
    path = Path(_env("SLICEWATCH_TEST_PROM_TARGETS"))
    if not path.is_dir():
        pytest.fail(f"SLICEWATCH_TEST_PROM_TARGETS={path} is not a directory; {HOW_TO_START}")
    return path


@pytest.fixture(scope="session")
def prometheus_rules_dir() -> Path:
    """Directory of Prometheus rule files (`*.yml`); POST `/-/reload` after writing one."""
    path = Path(_env("SLICEWATCH_TEST_PROM_RULES"))
    if not path.is_dir():
        pytest.fail(f"SLICEWATCH_TEST_PROM_RULES={path} is not a directory; {HOW_TO_START}")
    return path


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Factory: a currently free TCP port on 127.0.0.1 (`port = free_port()`)."""

    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture
def kafka_admin(kafka_bootstrap: str):
    """A confluent-kafka AdminClient on the test broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def kafka_topic(kafka_admin, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory creating uniquely named topics, deleted after the test.

    topic = kafka_topic(partitions=3)            # -> "t-test_name-1a2b3c4d"
    topic = kafka_topic("labels", partitions=1, config={"retention.ms": "60000"})
    """
    from confluent_kafka.admin import NewTopic

    created: list[str] = []
    test_name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]

    def create(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{test_name}-{uuid.uuid4().hex[:8]}"
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([new], operation_timeout=HTTP_TIMEOUT)[name].result(
            timeout=DEADLINE)
        created.append(name)
        _wait_for_leaders(kafka_admin, name, partitions)
        return name

    yield create
    if created:
        futures = kafka_admin.delete_topics(created, operation_timeout=HTTP_TIMEOUT)
        for fut in futures.values():
            try:
                fut.result(timeout=DEADLINE)
            except Exception as exc:  # broker stopped by the test: nothing left to clean
                print(f"kafka_topic: could not delete topic: {exc}", file=sys.stderr)


def _wait_for_leaders(admin, topic: str, partitions: int, timeout: float = DEADLINE) -> None:
    """Block until every partition of `topic` has a leader (create_topics returns earlier)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(topic=topic, timeout=HTTP_TIMEOUT).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic}: partitions without leader after {timeout:.0f} s")
        time.sleep(0.1)


@dataclass(frozen=True)
class KafkaService:
    """Stop, kill and restart the test broker (same port, same data) via scripts/services."""

    bootstrap: str

    def _run(self, command: str) -> None:
        env = dict(os.environ, PYTHON=sys.executable)
        subprocess.run(
            ["bash", str(SERVICES_SCRIPT), command], check=True, env=env, timeout=180, cwd=REPO
        )

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM); the broker's data and port are kept."""
        self._run("kafka-stop")

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; data and port are kept."""
        self._run("kafka-kill")

    def start(self) -> None:
        """Restart a stopped or killed broker and wait until it answers metadata requests."""
        self._run("kafka-start")


@pytest.fixture
def kafka_service(kafka_bootstrap: str) -> Iterator[KafkaService]:
    """Broker control for outage tests; the broker is running again after the test."""
    service = KafkaService(kafka_bootstrap)
    yield service
    status = subprocess.run(
        ["bash", str(SERVICES_SCRIPT), "status"], capture_output=True, text=True, cwd=REPO
    )
    lines = status.stdout.splitlines()
    if not any(line.startswith("kafka ") and "running" in line for line in lines):
        service.start()
