"""A results history file (docs/results-format.md) as tables, one model at a time.

Reading is tolerant: a line that is not JSON, not an object or of an unknown ``type`` is
skipped and counted (``History.skipped``), never raised; the last result line per
``(model, version, slice, window_start)`` wins, as for every reader of the history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from slices.errors import SlicewatchError


class ReportError(SlicewatchError):
    """The results history cannot be read or holds nothing to report."""


@dataclass
class History:
    """Every line of a results history, grouped by type."""

    results: dict[tuple, dict] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    histograms: list[dict] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    # (model, version, slice) → [windows in the top-k, best rank, last line]: window scope
    discovered: dict[tuple, list] = field(default_factory=dict)
    skipped: int = 0

    @property
    def models(self) -> list[str]:
        return sorted({k[0] for k in self.results})


def read_history(path: str, progress: Callable[[int], None] | None = None) -> History:
    """Read ``path``; ``progress(n_bytes)`` is called as lines are read."""
    h = History()
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ReportError(f"cannot read results history {path}: {exc.strerror}") from None
    with fh:
        for line in fh:
            if progress is not None:
                progress(len(line))
            if not line.strip():
                continue
            try:
                r = orjson.loads(line)
            except orjson.JSONDecodeError:
                h.skipped += 1
                continue
            kind = r.get("type", "result") if isinstance(r, dict) else None
            if kind == "result" and _is_result(r):
                h.results[(r["model"], r["version"], r["slice"], r["window_start"])] = r
            elif kind == "alert":
                h.alerts.append(r)
            elif kind == "histogram":
                h.histograms.append(r)
            elif kind == "run":
                h.runs.append(r)
            elif kind == "discovered" and isinstance(r.get("slice"), str):
                if r.get("scope") == "window":
                    key = (r.get("model"), r.get("version"), r["slice"])
                    seen = h.discovered.setdefault(key, [0, r.get("rank", 0), r])
                    seen[0] += 1
                    seen[1] = min(seen[1], r.get("rank", 0))
                    seen[2] = r
            else:
                h.skipped += 1
    if not h.results:
        raise ReportError(f"{path} holds no result lines (is it a --results file?)")
    return h


def _is_result(r: dict) -> bool:
    return all(k in r for k in ("model", "version", "slice", "window_start", "metrics"))


def metric_frame(h: History, model: str) -> pd.DataFrame:
    """One row per version × slice × window: ``slice``, ``critical``, ``time`` (window
    start, UTC), ``count``, ``reported`` and one column per metric."""
    rows = []
    for r in h.results.values():
        if r["model"] != model:
            continue
        row = {"version": r["version"], "slice": r["slice"], "critical": bool(r.get("critical")),
               "window_start": float(r["window_start"]), "count": r.get("count", 0),
               "reported": r.get("reported", True)}
        row.update({f"m:{k}": v for k, v in (r.get("metrics") or {}).items()
                    if isinstance(v, int | float) or v is None})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["window_start"], unit="s", utc=True)
    return frame.sort_values("window_start", kind="stable")


def _extra(r: dict) -> dict[str, Any]:
    extra = r.get("extra")
    return extra if isinstance(extra, dict) else {}


def drift_frame(h: History, model: str) -> pd.DataFrame:
    """One row per slice × window × feature tested: ``distance`` (effect size),
    ``threshold``, ``status`` (``ok``, ``drift``, ``insufficient``…), ``p_adj``."""
    rows = []
    for r in h.results.values():
        if r["model"] != model:
            continue
        for d in _extra(r).get("drift") or ():
            if isinstance(d, dict) and "feature" in d:
                rows.append({"slice": r["slice"], "window_start": float(r["window_start"]),
                             "feature": str(d["feature"]), "distance": d.get("distance"),
                             "threshold": d.get("threshold"), "status": d.get("status", ""),
                             "test": d.get("test", ""), "p_adj": d.get("pvalue_adjusted")})
    frame = pd.DataFrame(rows, columns=["slice", "window_start", "feature", "distance",
                                        "threshold", "status", "test", "p_adj"])
    frame["distance"] = pd.to_numeric(frame["distance"], errors="coerce")
    return frame


def quality_frame(h: History, model: str) -> pd.DataFrame:
    """One row per window × feature × check of the ``overall`` slice (or of every slice
    when there is no overall): ``value`` is the ratio."""
    rows = []
    results = [r for r in h.results.values() if r["model"] == model]
    if any(r["slice"] == "overall" for r in results):
        results = [r for r in results if r["slice"] == "overall"]
    for r in results:
        quality = _extra(r).get("quality")
        if not isinstance(quality, dict):
            continue
        for feature, checks in quality.items():
            if isinstance(checks, dict):
                rows.extend({"window_start": float(r["window_start"]), "feature": feature,
                             "check": check, "value": v}
                            for check, v in checks.items() if isinstance(v, int | float))
    return pd.DataFrame(rows, columns=["window_start", "feature", "check", "value"])


def concept_frame(h: History, model: str) -> pd.DataFrame:
    """One row per concept-drift event: ``slice``, ``time`` (event time when kept, else the
    window start) and ``events`` (how many the row stands for)."""
    rows = []
    for r in h.results.values():
        if r["model"] != model:
            continue
        extra = _extra(r)
        n = extra.get("concept_drift_events") or 0
        if not isinstance(n, int) or n <= 0:
            continue
        times = [t for t in extra.get("concept_drift_event_times") or ()
                 if isinstance(t, int | float)]
        rows.extend({"slice": r["slice"], "t": float(t), "events": 1} for t in times)
        if n > len(times):
            rows.append({"slice": r["slice"], "t": float(r["window_start"]),
                         "events": n - len(times)})
    frame = pd.DataFrame(rows, columns=["slice", "t", "events"])
    frame["time"] = pd.to_datetime(frame["t"], unit="s", utc=True)
    return frame


def run_summary(h: History, model: str) -> dict[str, Any]:
    """Records, windows, rejects by reason, late records and alerts of ``model``: from
    the ``type: run`` lines when there are some, else from the results themselves."""
    windows = {r["window_start"] for r in h.results.values() if r["model"] == model}
    overall = [r for r in h.results.values() if r["model"] == model and r["slice"] == "overall"]
    out: dict[str, Any] = {"windows": len(windows),
                           "slices": len({k[2] for k in h.results if k[0] == model}),
                           "records": sum(r.get("count", 0) for r in overall) or None,
                           "late": None, "rejected": None, "runs": len(h.runs)}
    if h.runs:
        out["records"] = sum(int(run.get("records", {}).get(model, 0)) for run in h.runs)
        out["late"] = sum(int(run.get("late", {}).get(model, 0)) for run in h.runs)
        rejected: Counter = Counter()
        for run in h.runs:
            rejected.update({str(k): int(v) for k, v in (run.get("rejected") or {}).items()})
        out["rejected"] = dict(rejected.most_common())
    alerts = [a for a in h.alerts if (a.get("labels") or {}).get("model", model) == model]
    out["alerts_fired"] = sum(a.get("status") == "firing" for a in alerts)
    out["alerts_resolved"] = sum(a.get("status") == "resolved" for a in alerts)
    out["alerts"] = Counter(str(a.get("alertname", "?")) for a in alerts
                            if a.get("status") == "firing").most_common(20)
    return out
