"""Counts mean what the docs say: orphaned labels (with their model), accepted vs late."""

from __future__ import annotations

import orjson
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SlicewatchCollector
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

MODEL = """
  - name: %s
    task: binary
    window: 1m
    allowed_lateness: 0s
    slices: [{overall: true}]
"""


def spec(*models: str):
    return load_spec_text("models:" + "".join(MODEL % m for m in models))


def pred(model: str, pid: str, t: float) -> bytes:
    return orjson.dumps({"model": model, "prediction_id": pid, "timestamp": t,
                         "prediction": {"score": 0.7}})


def label(pid: str, t: float) -> bytes:
    return orjson.dumps({"prediction_id": pid, "label": 1, "timestamp": t})


def samples(daemon: Daemon, family: str) -> dict[tuple, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    text = generate_latest(registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == family:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_labels_of_unknown_ids_expire_as_orphaned_under_their_model():
    daemon = Daemon(spec("m"), dead_letter=DeadLetter(None))
    daemon.process(Chunk("lines", [label(f"ghost{i}", 10.0 + i) for i in range(5)],
                         stream="labels"))
    daemon.process(Chunk("lines", [pred("m", "a", 20.0)]))
    assert daemon.snapshot.labels.get(("m", "orphaned"), 0) == 0  # their window is open
    daemon.process(Chunk("lines", [pred("m", "b", 130.0)]))  # closes [0, 60) and [60, 120)
    got = samples(daemon, "slicewatch_label_join_total")
    assert got[(("model", "m"), ("outcome", "orphaned"))] == 5
    assert not any(dict(k)["model"] == "" for k in got), got
    assert not daemon.join.early


def test_orphans_of_several_models_wait_for_every_model_and_never_have_an_empty_model():
    daemon = Daemon(spec("m", "n"), dead_letter=DeadLetter(None))
    daemon.join.max_early = 3
    daemon.process(Chunk("lines", [label(f"ghost{i}", 10.0) for i in range(5)],
                         stream="labels"))  # 2 evicted over the bound
    daemon.process(Chunk("lines", [pred("m", "b", 130.0)]))  # only m moved on: n may come
    assert daemon.snapshot.labels[("__unknown__", "orphaned")] == 2
    daemon.process(Chunk("lines", [pred("n", "c", 130.0)]))
    got = samples(daemon, "slicewatch_label_join_total")
    assert got == {(("model", "__unknown__"), ("outcome", "orphaned")): 5.0}


def test_accepted_records_exclude_late_ones():
    daemon = Daemon(spec("m"), dead_letter=DeadLetter(None))
    daemon.process(Chunk("lines", [pred("m", f"p{i}", 10.0 + i) for i in range(4)]))
    daemon.process(Chunk("lines", [pred("m", "q", 125.0)]))
    daemon.process(Chunk("lines", [pred("m", "late1", 5.0), pred("m", "late2", 6.0),
                                   pred("m", "r", 126.0)]))
    assert samples(daemon, "slicewatch_records_total") == {(("model", "m"),): 6.0}
    assert samples(daemon, "slicewatch_late_records_total") == {(("model", "m"),): 2.0}
    outcomes = samples(daemon, "slicewatch_predictions_total")
    assert sum(outcomes.values()) == 6.0, outcomes  # by outcome: the accepted ones
    assert daemon.summary(0.0).records == 6 and daemon.summary(0.0).late == 2


def test_feature_records_whose_prediction_never_comes_expire_as_orphaned():
    """#18.13: a feature-log record that waits past ``orphan_after`` of prediction event time
    is counted as orphaned (not only when evicted over ``max_features``)."""
    from monitor.ingest.feature_join import FeatureJoin
    from slices.spec import SchemaSpec

    join = FeatureJoin(SchemaSpec(), delay=10, orphan_after=60)
    assert join.add_features([b'{"prediction_id": "lost", "timestamp": 100, "features": {}}',
                              b'{"prediction_id": "kept", "timestamp": 150, "features": {}}']) == []
    join.admit([{"prediction_id": "p1", "timestamp": 155}])
    assert join.counts["orphaned"] == 0  # 155 - 100 < 60: its prediction may still come
    join.admit([{"prediction_id": "p2", "timestamp": 170}])
    assert join.counts["orphaned"] == 1 and list(join.features) == ["kept"]
    # without an event time a feature record waits however far predictions move on
    join.add_features([b'{"prediction_id": "untimed", "features": {}}'])
    join.admit([{"prediction_id": "p3", "timestamp": 10_000}])
    assert "untimed" in join.features
    restored = FeatureJoin(SchemaSpec(), delay=10, orphan_after=60)
    restored.load_state(join.to_state())
    assert list(restored.features) == ["untimed"] and restored.counts["orphaned"] == 2
