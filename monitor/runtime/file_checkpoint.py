"""Checkpoints for file sources: per file its progress (offset, identity) and the daemon
state, saved in one SQLite transaction (:class:`monitor.state.checkpoint.Checkpoint`).

Saved when windows closed (before their results are handed on: a kill -9 never makes a
window's results appear twice), every ``every`` seconds, and at the end (graceful stop or end
of a replay). A chunk without a position (the rejects that precede their CSV rows) is never
followed by a save, so the saved offset and the saved counts always describe the same records.
On restart the state is loaded and each file that is still the same file is read on from its
offset (:class:`monitor.ingest.file.FileSource` ``resume=``). Chunks read and decoded ahead
(:meth:`Daemon.ahead`) move nothing until the daemon folds them: a stop drops them, and the
saved offset is that of the last chunk folded.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from contextlib import closing
from typing import Any

from monitor.ingest.file import FileProgress
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon, ResultListener
from monitor.state.checkpoint import Checkpoint, CheckpointError, load_checkpointed

SAVE_EVERY = 5.0  # seconds between saves while records flow


class HeldResults:
    """A result listener that, while ``hold`` is set (a checkpointed run), holds window
    results until :meth:`release` (after the save that covers them), then hands them to
    ``listeners`` in order; otherwise it hands them on at once."""

    def __init__(self, listeners: Iterable[ResultListener]):
        self.listeners = list(listeners)
        self.held: list[tuple[Any, Any]] = []
        self.hold = False

    def __call__(self, window: Any, results: Any) -> None:
        self.held.append((window, results))
        if not self.hold:
            self.release()

    def release(self) -> None:
        held, self.held = self.held, []
        for window, results in held:
            for listener in self.listeners:
                listener(window, results)


class FileCheckpoint:
    """One daemon's file progress and state in ``path`` (owner ``owner``)."""

    def __init__(self, path: str, daemon: Daemon, held: HeldResults, *,
                 owner: str = "default", every: float = SAVE_EVERY):
        self.checkpoint = Checkpoint(path, owner=owner)
        self.checkpoint.acquire(socket.gethostname(), os.getpid())
        self.daemon = daemon
        self.held = held
        held.hold = True
        self.every = every
        self.progress: dict[str, FileProgress] = {}
        self.saves = 0
        self._last = time.monotonic()

    def restore(self) -> dict[str, dict]:
        """Load the saved state into the daemon; returns the files' progress (``resume=``)."""
        loaded = self.checkpoint.load()
        if loaded is None:
            return {}
        state = loaded[1]
        if not isinstance(state, dict) or "daemon" not in state:
            raise CheckpointError(f"checkpoint {self.checkpoint.path}: not a file source's "
                                  "state; delete it to start afresh")
        load_checkpointed(self.daemon, state["daemon"], self.checkpoint.path)
        files = dict(state["files"])
        self.progress = {k: FileProgress.from_state(v) for k, v in files.items()}
        return files

    def run(self, chunks: Iterable[Chunk]) -> None:
        """The daemon loop with saves; returns at the end of input or on ``daemon.stop``."""
        with closing(self.daemon.ahead(chunks)) as ahead:  # read and decoded ahead
            for chunk in ahead:
                self.daemon.process(chunk)
                if isinstance(chunk.position, FileProgress):
                    self.progress[chunk.position.key] = chunk.position
                    if self.held.held or time.monotonic() - self._last >= self.every:
                        self.save()
                if self.daemon.stop.is_set():
                    break
        self.daemon.dead_letter.flush()

    def save(self) -> None:
        """Progress and state in one transaction, then the held results go out."""
        self.daemon.dead_letter.flush()
        state = {"daemon": self.daemon.checkpoint_state(),
                 "files": {k: p.to_state() for k, p in self.progress.items()}}
        self.checkpoint.save({k: p.offset for k, p in self.progress.items()}, state)
        self.saves += 1
        self._last = time.monotonic()
        self.held.release()

    def close(self) -> None:
        self.checkpoint.release()
        self.checkpoint.close()
