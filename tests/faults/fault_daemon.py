"""``slicewatch run`` with an injected processing fault, for tests/faults (not a test module).

A batch holding a prediction whose id starts with ``boom`` raises in the middle of its
processing — after the records were folded into the window accumulators, so a state saved
then would hold part of the batch. Usage: ``python tests/faults/fault_daemon.py run -c …``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from monitor.cli import main
from monitor.core import pipeline

_real = pipeline.ModelPipeline._accumulate


def _accumulate(self, batch, starts, **kw):
    _real(self, batch, starts, **kw)
    if any(isinstance(x, str) and x.startswith("boom") for x in batch.id.tolist()):
        raise RuntimeError("injected processing fault")


if __name__ == "__main__":  # only as its own process: an import (doctests) patches nothing
    pipeline.ModelPipeline._accumulate = _accumulate
    sys.exit(main(sys.argv[1:]))
