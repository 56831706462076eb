"""Where a closed window's drift tests run: in the calling thread, or in a worker process.

A window close runs every drift test of the window (slices × features through scipy: 1 210
tests for the Kafka bench's 55 slices × 22 features), a pure function of a picklable job
(:func:`monitor.drift.stage.close_extras`). :class:`InlineCloser` runs it on the spot;
:class:`ProcessCloser` hands it to one worker process, so ingestion goes on meanwhile
(the Kafka loop). Results are taken in window order by the daemon (:mod:`monitor.runtime.daemon`),
which waits for them before every checkpoint: a checkpoint never holds a half-closed window.

If the worker dies, its jobs run inline instead: a close is never lost.

>>> closer = InlineCloser()
>>> closer.submit(sum, [1, 2]).result()
3
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger("slicewatch.close")


class Pending:
    """A submitted job: :meth:`done` without blocking, :meth:`result` waits (re-running the
    job inline if the worker process died)."""

    def __init__(self, fn: Callable[[Any], Any], blob: bytes | None, future: Future):
        self.fn, self.blob, self.future = fn, blob, future

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> Any:
        try:
            return self.future.result()
        except BrokenProcessPool:
            log.warning("close worker died; running the window's drift tests inline")
            return _run_pickled(self.fn, self.blob)


class InlineCloser:
    """Runs each job when it is submitted."""

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Pending:
        future: Future = Future()
        try:
            future.set_result(fn(job))
        except BaseException as exc:  # raised again by result(), in window order
            future.set_exception(exc)
        return Pending(fn, None, future)

    def close(self) -> None:
        pass


class ProcessCloser:
    """Runs jobs in one worker process (started at the first job, ``spawn``ed: the daemon's
    Kafka client threads are not forked). The job is pickled when it is submitted, so later
    changes to the daemon's state cannot reach it."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Pending:
        blob = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(os.getpid(),))
            return Pending(fn, blob, self._pool.submit(_run_pickled, fn, blob))
        except (BrokenProcessPool, RuntimeError):  # dead worker (or shut down): inline
            log.warning("close worker unavailable; running the window's drift tests inline")
            self._pool = None
            return InlineCloser().submit(fn, job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None


def _run_pickled(fn: Callable[[Any], Any], blob: bytes) -> Any:
    return fn(pickle.loads(blob))


def _init_worker(parent: int) -> None:
    """Ctrl-C and SIGTERM are for the daemon, which finishes its closes before it exits; if
    the daemon dies (kill -9), the worker follows within a second instead of waiting for
    jobs forever (it holds its own end of the job queue, so it would never see EOF).
    ``parent`` is the daemon's pid taken before the spawn: a daemon killed while the worker
    was still starting has already left it to another parent, which must not be watched."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="slicewatch-parent-watch", daemon=True).start()
