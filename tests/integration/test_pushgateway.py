"""A replay pushes its final metrics to a real Pushgateway, grouped by job and model, and the
pushed series read back from the Pushgateway equal the run's own values."""

from __future__ import annotations

import math
import uuid

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SlicewatchCollector
from monitor.export.push import push_to_gateway
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.demo import DEMO_SPEC, demo_records
from slices.errors import SlicewatchError
from slices.load import load_spec_text
from tests.wait import HTTP_TIMEOUT, wait_until


def _replay():
    spec = load_spec_text(DEMO_SPEC % {"path": "x", "dead": "d", "listen": "127.0.0.1:0"},
                          "demo.yaml")
    daemon = Daemon(spec, dead_letter=DeadLetter(None))
    lines = [orjson.dumps(r) for w in demo_records(4, 400, seed=5) for r in w]
    daemon.run([Chunk("lines", lines[i:i + 500]) for i in range(0, len(lines), 500)])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    return spec, daemon, registry, len(lines)


def _pushed(pushgateway_url: str, job: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{pushgateway_url}/metrics", timeout=HTTP_TIMEOUT).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("job") == job:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_replay_pushes_and_series_read_back(pushgateway_url):
    spec, daemon, registry, n = _replay()
    job = f"slicewatch-test-{uuid.uuid4().hex[:8]}"
    key = push_to_gateway(pushgateway_url, spec, registry, job=job)
    try:
        assert key == {"job": job, "model": "fraud"}
        got = _pushed(pushgateway_url, job)
        records = {v for (name, labels), v in got.items() if name == "slicewatch_records_total"}
        assert records == {float(n)}
        auc = {dict(labels)["slice"]: v for (name, labels), v in got.items()
               if name == "slicewatch_slice_roc_auc"}
        expected = {k[2]: r.metrics["roc_auc"] for k, r in daemon.snapshot.series.items()
                    if r.metrics.get("roc_auc") is not None
                    and math.isfinite(r.metrics["roc_auc"])}  # NaN is not exported
        assert auc and auc == pytest.approx(expected)
        assert all(dict(labels)["model"] == "fraud" for labels in
                   (dict(lab) for (_, lab) in got) if "model" in labels)
        # a second push replaces the group (PUT), it does not add to it
        push_to_gateway(pushgateway_url, spec, registry, job=job)
        moving = ("push_time_seconds", "slicewatch_up_time_seconds")
        again = _pushed(pushgateway_url, job)
        assert {k for k in again if k[0] not in moving} == {k for k in got if k[0] not in moving}
        assert all(again[k] == v for k, v in got.items() if k[0] not in moving)
    finally:
        requests.delete(f"{pushgateway_url}/metrics/job/{job}/model/fraud",
                        timeout=HTTP_TIMEOUT)
    # the Pushgateway applies writes asynchronously: the group goes shortly after the DELETE
    wait_until(lambda: not _pushed(pushgateway_url, job), what=f"group {job} deleted",
               interval=0.1)


def test_unreachable_pushgateway_names_the_url(free_port):
    spec, _, registry, _ = _replay()
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SlicewatchError, match=url.replace(".", r"\.")):
        push_to_gateway(url, spec, registry, job="x", timeout=2)
