"""Freed memory handed back to the system between the phases of a one-shot job.

The profile build (``slicewatch baseline build``) holds its reference whole and folds it
phase after phase (read, drift summaries, multivariate fit, reference metrics). glibc keeps
what a phase freed — up to 64 MiB at the heap's top by the daemon's own settings
(``monitor.cli.keep_batch_memory``), and any free pages inside the heap — and the next
phase's larger arrays are mapped apart, so without a trim the peak adds what each phase left.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys


def release_free_memory() -> None:
    """Return the Arrow pool's unused blocks and glibc's free heap pages to the system
    (``malloc_trim(0)``); a no-op where neither applies. Costs a walk of the heap: between
    phases, not per batch."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
