"""Window-close drift tests in a worker process: the same results, in window order, as
inline; checkpoints wait for them; a dead worker falls back to inline; a rollback drops
closes of the replaced state."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future

import pytest

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.close_worker import InlineCloser, Pending, ProcessCloser
from monitor.runtime.daemon import Daemon
from tests.unit.test_drift_stage import lines, make_spec, records


def _stream():
    # four 1-minute windows, the last two shifted; batches of 500 records
    recs = (records(1000, 0, seed=2) + records(1000, 60, seed=3)
            + records(1000, 120, shift=0.7, seed=4) + records(1000, 180, shift=1.0, seed=5))
    data = lines(recs)
    return [Chunk("lines", data[i:i + 500]) for i in range(0, len(data), 500)]


def _run(spec, *, worker: bool, kill_worker: bool = False):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), close_in_worker=worker,
                    listeners=[lambda w, rs: got.append((w.key, rs))])
    killed = 0
    for chunk in _stream():
        daemon.process(chunk)
        if kill_worker and not killed and daemon._closing:  # a close is out: kill its worker
            for pid in list(daemon.closer._pool._processes):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    daemon.flush()
    daemon.close()
    assert killed or not kill_worker
    return got, daemon


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """The spec with a stored profile (of 4000 records) the tests share; read only."""
    return make_spec(tmp_path_factory.mktemp("close-worker"), records(4000, 0, seed=1))


@pytest.fixture(scope="module")
def inline(spec):
    """The inline closer's ``(window, results)`` over :func:`_stream`; read only."""
    got, daemon = _run(spec, worker=False)
    assert isinstance(daemon.closer, InlineCloser)
    return got


@pytest.mark.parametrize("reference", ["profile", "rolling"])
def test_worker_gives_the_inline_results_in_window_order(request, reference):
    if reference == "rolling":
        spec = make_spec(None, rolling=2)
        inline, _ = _run(spec, worker=False)
    else:
        spec, inline = request.getfixturevalue("spec"), request.getfixturevalue("inline")
    pooled, d2 = _run(spec, worker=True)
    assert isinstance(d2.closer, ProcessCloser)
    assert [k for k, _ in pooled] == [k for k, _ in inline] == [0.0, 60.0, 120.0, 180.0]
    assert pooled == inline
    flagged = [[d.to_dict() for d in r.drift] for _, rs in pooled for r in rs]
    assert any(d and any(x["status"] == "drift" for x in d) for d in flagged)  # not vacuous


def test_state_waits_for_closes_in_the_worker(spec):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), close_in_worker=True,
                    listeners=[lambda w, rs: got.append(w.key)])
    chunks = _stream()
    for chunk in chunks[:5]:  # past the ends of windows 0 and 60: they close
        daemon.process(chunk)
    assert daemon._closing  # submitted in that call: the worker cannot be done yet
    state = daemon.state()
    assert got == [0.0, 60.0] and not daemon._closing
    assert dict(map(tuple, state["tracker"]["closed"])) == {"m": 2}  # in the saved state too
    daemon.close()


def test_a_dead_worker_falls_back_to_inline(spec, inline):
    survived, _ = _run(spec, worker=True, kill_worker=True)
    assert survived == inline


class _NeverDone:
    """A closer whose jobs never finish (stands in for a busy worker)."""

    def submit(self, fn, job):
        return Pending(fn, None, Future())

    def close(self):
        pass


def test_load_state_drops_closes_of_the_replaced_state(spec):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(w)])
    daemon.closer = _NeverDone()
    saved = daemon.state()
    for chunk in _stream()[:5]:
        daemon.process(chunk)
    assert len(daemon._closing) == 2 and not got  # windows closed, their tests still out
    daemon.load_state(saved)
    assert not daemon._closing and not got


def test_results_come_and_are_published_without_new_records(spec):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), close_in_worker=True,
                    listeners=[lambda w, rs: got.append(w.key)])
    for chunk in _stream()[:5]:
        daemon.process(chunk)
    assert daemon._closing and daemon.snapshot.windows_closed.get("m", 0) < 2
    deadline = time.monotonic() + 60
    while daemon._closing and time.monotonic() < deadline:  # an idle stream: no chunks
        daemon.finish_closes(wait=False)
        time.sleep(0.05)
    assert got == [0.0, 60.0] and daemon.snapshot.windows_closed["m"] == 2
    daemon.close()
