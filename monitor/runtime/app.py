"""``slicewatch run``: one entry for every source; the CLI builds a :class:`RunOptions` and
calls :func:`run`, and only the CLI turns exceptions into exit codes.

Files and stdin run in :mod:`monitor.runtime.file_run`; Kafka, whose offsets are
checkpointed with the window state, in :mod:`monitor.runtime.kafka_run`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import TextIO

from monitor.ingest.source import Chunk
from monitor.runtime.daemon import ResultListener, RunSummary
from monitor.runtime.file_run import run_files
from monitor.runtime.kafka_run import run_kafka
from monitor.runtime.wiring import RunOptions, effective_spec, write_run_report
from slices.spec import Spec

__all__ = ["RunOptions", "run"]


def run(spec: Spec, opts: RunOptions, *, out: TextIO | None = None,
        listeners: Iterable[ResultListener] = (),
        chunks: Callable[[threading.Event], Iterable[Chunk]] | None = None) -> RunSummary:
    """Run the daemon until its input ends (replay) or a signal arrives (follow)."""
    out = out or sys.stdout
    spec = effective_spec(spec, opts)
    if spec.source.type == "kafka" and chunks is None:
        summary = run_kafka(spec, opts, out=out, listeners=listeners)
    else:
        summary = run_files(spec, opts, out=out, listeners=listeners, chunks=chunks)
    write_run_report(spec, opts, out)  # from the results history, now closed
    return summary
