"""``slicewatch run`` over files and stdin: the file checkpoint, the replay or follow loop,
and what a stop leaves behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from monitor.core.memory import release_free_memory
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.file import FileSource, expand
from monitor.ingest.source import Chunk, SourceError
from monitor.runtime.daemon import Daemon, ResultListener, RunSummary
from monitor.runtime.file_checkpoint import FileCheckpoint, HeldResults
from monitor.runtime.progress import enabled, input_bar, tracked
from monitor.runtime.wiring import (
    RunOptions,
    close_outputs,
    finish_outputs,
    install_signal_handlers,
    outputs,
    push_final,
    report_rejects,
    report_unreported,
    serve_run,
)
from slices.spec import Spec


def run_files(spec: Spec, opts: RunOptions, *, out: TextIO,
              listeners: Iterable[ResultListener] = (),
              chunks: Callable[[threading.Event], Iterable[Chunk]] | None = None) -> RunSummary:
    """Run the daemon over files or stdin (or ``chunks``) until the input ends (replay) or a
    signal arrives (follow); ``spec`` has the command-line overrides applied."""
    listeners, stage = outputs(spec, opts, out, listeners)
    held = HeldResults(listeners)  # window results go out once a checkpoint covers them
    dead_letter = DeadLetter(spec.source.dead_letter, max_bytes=spec.source.dead_letter_max_bytes)
    daemon = Daemon(spec, dead_letter=dead_letter, listeners=[held])
    checkpoint = file_checkpoint(spec, daemon, held, out) if chunks is None else None
    resume = checkpoint.restore() if checkpoint else None
    if checkpoint and resume:
        print(f"slicewatch: resumed from checkpoint #{checkpoint.checkpoint.seq} "
              f"({len(resume)} file position(s))", file=out, flush=True)
    collectors = (stage.collect if stage else None, dead_letter.collect)
    collectors = tuple(c for c in collectors if c is not None)
    server = serve_run(daemon, collectors, stage, out)
    restore = install_signal_handlers(daemon.stop)
    try:
        source = chunks(daemon.stop) if chunks else open_source(spec, daemon.stop, resume)
        if chunks is None and not spec.source.follow:
            source = with_progress(source, spec, opts.quiet)
        t0 = time.perf_counter()
        if checkpoint:
            checkpoint.run(source)
        else:
            daemon.run(source, flush_at_end=False)
            held.release()
        if not daemon.stop.is_set():
            release_free_memory()  # the batches' kept memory, before the last windows close
            daemon.flush()  # a replay that ended: its last windows are complete
        else:  # stopped: incomplete windows are not reported (nor alerted on)
            daemon.settle()
            report_unreported(daemon, out, kept=checkpoint is not None)
        if checkpoint:
            checkpoint.save()
        held.release()
        summary = daemon.summary(time.perf_counter() - t0)
        print(f"slicewatch: {summary.records} records, {summary.rejected} rejected, "
              f"{summary.late} late, {summary.windows} windows in {summary.seconds:.1f}s",
              file=out, flush=True)
        report_rejects(daemon, dead_letter.path, out)
        finish_outputs(spec, opts, daemon, listeners, summary.seconds, out)
        if opts.pushgateway:
            push_final(daemon, spec, opts.pushgateway, collectors, out)
        if server and opts.linger > 0 and not daemon.stop.is_set():
            print(f"slicewatch: input done; still serving {server.address}/metrics "
                  "(Ctrl-C to stop)", file=out, flush=True)
            daemon.stop.wait(None if opts.linger == float("inf") else opts.linger)
        return summary
    finally:
        restore()
        if stage:
            stage.stop()
        close_outputs(listeners)
        if server:
            server.stop()
        daemon.dead_letter.close()
        if checkpoint:
            checkpoint.close()



def open_source(spec: Spec, stop: threading.Event,
                resume: dict[str, dict] | None = None) -> Iterator[Chunk]:
    """The chunks of the spec's source (file/stdin now; Kafka in ``monitor.ingest.kafka``);
    ``resume``: files' saved progress (:class:`monitor.ingest.file.FileProgress`)."""
    src = spec.source
    if src.type == "kafka":
        raise SourceError("the Kafka source checkpoints offsets with the window state: run it "
                          "through monitor.runtime.app.run (slicewatch run), not open_source")
    paths = input_paths(spec)
    if not paths:
        raise SourceError("no input: set source.path in the spec or pass --input")
    if src.labels:  # label files first: their labels wait for (and attach to) predictions
        yield from FileSource(src.labels, fmt="auto", batch_size=src.batch_size,
                              stream="labels", max_record_bytes=src.max_record_bytes,
                              resume=resume).chunks()
    yield from FileSource(paths, fmt=src.format, batch_size=src.batch_size, follow=src.follow,
                          stop=stop, max_record_bytes=src.max_record_bytes,
                          resume=resume).chunks()



def with_progress(source: Iterable[Chunk], spec: Spec, quiet: bool) -> Iterable[Chunk]:
    """``source`` moving a progress bar on stderr (a terminal, not ``-q``; no bar else)."""
    if not enabled(quiet):
        return source
    paths = [*expand(spec.source.labels), *expand(input_paths(spec))]
    return tracked(source, paths, input_bar("replay", paths, quiet=quiet))



def input_paths(spec: Spec) -> tuple[str, ...]:
    src = spec.source
    return src.paths or (("-",) if src.type == "stdin" else ())



def file_checkpoint(spec: Spec, daemon: Daemon, held: HeldResults,
                    out: TextIO) -> FileCheckpoint | None:
    """The spec's checkpoint for a file source (None without one; stdin cannot resume)."""
    if not spec.checkpoint:
        return None
    if "-" in input_paths(spec):
        print("slicewatch: note: stdin cannot be resumed; the checkpoint is not used",
              file=out, flush=True)
        return None
    return FileCheckpoint(spec.checkpoint, daemon, held)
