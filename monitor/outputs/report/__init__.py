"""``slicewatch report``: a self-contained HTML report of a results history.

Built from the history file (docs/results-format.md) and, optionally, the reference
profiles, never from a live daemon: a backfill, a post-mortem or a pull request can each
have one. The page embeds plotly.js (no network at view time); every chart is bounded
(:mod:`.charts`), so a large run still gives a page of a few megabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monitor.outputs.report.history import ReportError, read_history
from monitor.outputs.report.page import render_report

__all__ = ["ReportError", "write_report"]


def write_report(results: str, output: str, *, profiles: Sequence[str] = (),
                 progress: Callable[[int], None] | None = None,
                 title: str | None = None) -> int:
    """Write the report of ``results`` to ``output``; returns its size in bytes.
    ``profiles``: reference profile files (their model's drifted features get reference vs
    window distributions); ``progress(n)``: called with the bytes of history read."""
    history = read_history(results, progress)
    html = render_report(history, profiles=profiles, title=title or f"slicewatch · {results}")
    data = html.encode("utf-8")
    try:
        with open(output, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ReportError(f"cannot write report {output}: {exc.strerror}") from None
    return len(data)
