"""A compact per-window, per-slice table on the console (used by ``run`` and ``demo``)."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from alerts.model import AlertEvent
from alerts.template import format_value
from monitor.core.types import ClosedWindow, FeatureDriftResult, SliceResult
from monitor.outputs.discovered import discovered_lines

COLUMNS = {  # metric → (header, format)
    "binary": [("accuracy", "acc", "{:.3f}"), ("roc_auc", "auc", "{:.3f}"),
               ("f1", "f1", "{:.3f}"), ("ece", "ece", "{:.3f}"),
               ("score_mean", "score", "{:.3f}"), ("failure_rate", "fail%", "{:.1%}")],
    "multiclass": [("accuracy", "acc", "{:.3f}"), ("macro_f1", "macroF1", "{:.3f}"),
                   ("failure_rate", "fail%", "{:.1%}")],
    "regression": [("mae", "mae", "{:.3g}"), ("rmse", "rmse", "{:.3g}"),
                   ("mean_error", "bias", "{:+.3g}"), ("failure_rate", "fail%", "{:.1%}")],
}


# The metric that ranks slices worst-first, and whether lower values are worse.
PRIMARY = {"binary": ("roc_auc", True), "multiclass": ("macro_f1", True),
           "regression": ("mae", False)}


def worst_first(results: list[SliceResult], task: str) -> list[SliceResult]:
    """Critical slices, then overall, then the rest from worst to best on the task's primary
    metric (slices where it is undefined last)."""
    metric, lower_is_worse = PRIMARY[task]

    def key(r: SliceResult):
        v = r.metrics.get(metric, math.nan)
        undefined = v is None or (isinstance(v, float) and math.isnan(v))
        rank = 0.0 if undefined else (v if lower_is_worse else -v)
        return (not r.critical, r.slice_name != "overall", undefined, rank, r.slice)

    return sorted(results, key=key)


class TablePrinter:
    """Listener: prints each closed window's slices — critical first, then overall, then the
    worst slices on the task's primary metric — at most ``max_rows``."""

    def __init__(self, tasks: dict[str, str], out: TextIO | None = None, max_rows: int = 12,
                 rest: str = "on /metrics"):
        """``rest``: where the slices past ``max_rows`` can be read (``on /metrics``, ``in
        history.jsonl``…)."""
        self.tasks = tasks
        self.out = out or sys.stdout
        self.max_rows = max_rows
        self.rest = rest

    def __call__(self, window: ClosedWindow, results: list[SliceResult]) -> None:
        task = self.tasks.get(window.model, "binary")
        cols = COLUMNS[task]
        shown = worst_first([r for r in results if r.reported], task)
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(window.start)) \
            if math.isfinite(window.start) else "?"
        print(f"\n── {window.model} · window {start}Z · {len(shown)} slices", file=self.out)
        width = min(max([34, *(len(r.slice) for r in shown[: self.max_rows])]), 60)
        ver = min(max([6, *(len(r.version) for r in shown[: self.max_rows])]), 20)
        header = (f"  {'slice':<{width}} {'ver':<{ver}} {'n':>7} "
                  + " ".join(f"{h:>7}" for _, h, _ in cols))
        print(header, file=self.out)
        for r in shown[: self.max_rows]:
            cells = []
            for metric, _, fmt in cols:
                v = r.metrics.get(metric)
                cells.append(f"{'-':>7}" if v is None or (isinstance(v, float) and math.isnan(v))
                             else f"{fmt.format(v):>7}")
            mark = "!" if r.critical else " "
            print(f" {mark}{elide(r.slice, width):<{width}} {elide(r.version, ver):<{ver}} "
                  f"{r.count:>7} "
                  + " ".join(cells), file=self.out)
        if len(shown) > self.max_rows:
            print(f"  … {len(shown) - self.max_rows} more slices {self.rest}", file=self.out)
        for line in drift_lines(shown) + discovered_lines(window.discovered):
            print(line, file=self.out)
        self.out.flush()


    def alerts(self, events: list[AlertEvent]) -> None:
        """Sink of :class:`alerts.workers.Dispatcher`: one line per alert that fired or
        resolved with the window just printed (also during replays, which notify no one)."""
        lines = alert_lines(events)
        if lines:
            print("\n".join(lines), file=self.out)
            self.out.flush()


def alert_lines(events: list[AlertEvent]) -> list[str]:
    """``  alert ▲ FIRING auc_low fraud v3 country=DE: roc_auc = 0.61 (< 0.7), window …``."""
    out = []
    for e in events:
        a = e.alert
        mark = "▲ FIRING  " if e.status == "firing" else "▼ resolved"
        feature = f" {a.labels['feature']}" if a.labels.get("feature") else ""
        end = (time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(a.window_end))
               if a.window_end is not None and math.isfinite(a.window_end) else "?")
        out.append(f"  alert {mark} {a.labels.get('alertname', '?')} "
                   f"[{a.labels.get('severity', '?')}] {a.labels.get('model', '')} "
                   f"{a.labels.get('version', '')} {a.labels.get('slice', '')}{feature}: "
                   f"{a.metric} = {format_value(a.value)} ({a.threshold}), window ending {end}")
    return out


def drift_lines(results: list[SliceResult]) -> list[str]:
    """One line per drifted feature: in how many slices, with the overall decision (or the
    strongest slice's)."""
    by_feature: dict[str, list[tuple[SliceResult, FeatureDriftResult]]] = {}
    tested = 0
    for r in results:
        for d in r.drift:
            tested += d.status != "insufficient"
            if d.detected:
                by_feature.setdefault(d.feature, []).append((r, d))
    concept = sum(1 for r in results if r.slice == "overall"
                  and r.concept is not None and r.concept.events)
    lines = []
    if tested and not by_feature:
        lines.append(f"  drift: none ({tested} tests, BH-corrected, effect-size gated)")
    for feature, hits in sorted(by_feature.items(), key=lambda kv: -len(kv[1])):
        r, d = next(((r, d) for r, d in hits if r.slice == "overall"),
                    max(hits, key=lambda h: h[1].distance or 0))
        p = d.pvalue_adjusted
        ptxt = f", p_adj={p:.1e}" if p is not None else ""
        lines.append(f"  drift ▲ {feature}: {len(hits)} slice(s) — {r.slice}: test {d.test},"
                     f" distance {d.distance:.3f} ≥ {d.threshold}{ptxt}")
    if concept:
        events = next(r.concept.events for r in results
                      if r.slice == "overall" and r.concept is not None)
        lines.append(f"  concept drift: {events} detector event(s) in this window on overall's "
                     "errors")
    return lines


def elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle so names that differ at
    either end stay distinct.

    >>> elide("country=BR,device=web,tag=new_user", 20)
    'country=BR…=new_user'
    """
    if len(text) <= width:
        return text
    head = (width - 1) - (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
