"""KafkaSource.save(wait=False): the state is taken when save is called, the SQLite write
runs in a background thread, and its outcome (fencing) is taken by the next save / settle."""

from __future__ import annotations

from monitor.ingest.kafka import KafkaSource, parse_kafka_settings
from monitor.state.checkpoint import Checkpoint

SETTINGS = parse_kafka_settings({"bootstrap_servers": "127.0.0.1:1", "group_id": "g",
                                 "topics": {"predictions": "t"}})


def _source(cp: Checkpoint, state: dict, restored: list) -> KafkaSource:
    src = KafkaSource(SETTINGS, cp, state=lambda: dict(state), restore=restored.append)
    src.assigned = {"t:0", "t:1"}
    return src


def test_background_save_writes_the_state_of_the_moment_it_was_called(tmp_path):
    cp = Checkpoint(str(tmp_path / "cp.db"), owner="a")
    state = {"n": 1}
    src = _source(cp, state, [])
    src.positions = {"t:0": 10, "t:1": 20}
    assert src.save(wait=False)
    state["n"] = 2  # the loop goes on while the write is out
    src.positions["t:0"] = 11
    assert src.settle() and src.saves == 1 and src._writing is None
    assert cp.load() == ({"t:0": 10, "t:1": 20}, {"n": 1})
    assert src.save(wait=False) and src.save(wait=False)  # the second settles the first
    src.close()
    assert src.saves == 3 and cp.load() == ({"t:0": 11, "t:1": 20}, {"n": 2})


def test_a_fenced_background_save_rolls_back_when_settled(tmp_path):
    path = str(tmp_path / "cp.db")
    cp, other = Checkpoint(path, owner="a"), Checkpoint(path, owner="b")
    restored: list = []
    src = _source(cp, {"n": 1}, restored)
    src.positions = {"t:0": 10, "t:1": 20}
    assert src.save()  # a's last good checkpoint
    other.claim(["t:1"])  # another instance took t:1: a is a zombie for it
    src.positions = {"t:0": 15, "t:1": 25}
    assert src.save(wait=False)  # written later, in the background: fenced there
    assert not src.save(wait=False)  # the next save takes the outcome: rolled back, no save
    assert restored == [{"n": 1}]
    assert src.assigned == {"t:0"} and src.positions == {"t:0": 10}
    assert cp.load() == ({"t:0": 10}, {"n": 1}) and src.saves == 1
