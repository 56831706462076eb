"""The report page: a summary per model, then its charts, with plotly.js inlined once."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.offline

from monitor.drift.profile import Profile, load_profile
from monitor.outputs.report import charts
from monitor.outputs.report.history import (
    History,
    concept_frame,
    drift_frame,
    metric_frame,
    quality_frame,
    run_summary,
)
from monitor.outputs.results import summary_histogram

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
table.summary { border-collapse: collapse; margin: .5em 0 1em; }
table.summary td, table.summary th { border: 1px solid #ddd; padding: .25em .6em;
                                     text-align: left; }
.note { color: #666; font-size: .9em; }
"""
CONFIG = {"displaylogo": False, "responsive": True}


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class _Charts:
    """Figures → ``<div>``s, each with ``class="sw-chart"`` and a ``data-chart`` name."""

    def __init__(self) -> None:
        self.n = 0

    def div(self, fig: go.Figure, name: str) -> str:
        self.n += 1
        body = fig.to_html(full_html=False, include_plotlyjs=False, config=CONFIG,
                           div_id=f"chart-{self.n}")
        return f'<div class="sw-chart" data-chart="{_esc(name)}">{body}</div>'


def render_report(h: History, *, profiles: Sequence[str] = (), title: str) -> str:
    """The whole page as text."""
    refs = {p.model: p for p in map(load_profile, profiles)}
    charts_ = _Charts()
    sections = [_model_section(h, model, refs.get(model), charts_) for model in h.models]
    notes = (f'<p class="note">{h.skipped} line(s) of the history were skipped (not JSON or '
             "of an unknown type).</p>" if h.skipped else "")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{_esc(title)}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>"
            f"</head><body><h1>{_esc(title)}</h1>{notes}{''.join(sections)}</body></html>")


def _summary_table(s: dict[str, Any]) -> str:
    def row(k: str, v: Any) -> str:
        return f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"

    rejected = s["rejected"]
    rejects = ("—" if rejected is None else
               ", ".join(f"{k}: {v}" for k, v in rejected.items()) or "none")
    fired = ", ".join(f"{k} ×{n}" for k, n in s["alerts"]) or "none"
    rows = [row("records", s["records"] if s["records"] is not None else "—"),
            row("windows", s["windows"]), row("slices", s["slices"]),
            row("late records", s["late"] if s["late"] is not None else "—"),
            row("rejected (all models), by reason", rejects),
            row("alerts fired / resolved", f"{s['alerts_fired']} / {s['alerts_resolved']}"),
            row("alerts fired, by rule", fired)]
    note = ("" if s["runs"] else '<p class="note">No <code>type: run</code> line in the '
            "history (written by older versions): records are the overall slice's, rejects "
            "unknown.</p>")
    return f'<table class="summary">{"".join(rows)}</table>{note}'


def _model_section(h: History, model: str, profile: Profile | None, c: _Charts) -> str:
    frame = metric_frame(h, model)
    parts = [f"<section class='model' data-model='{_esc(model)}'><h2>Model {_esc(model)}</h2>",
             f"<p class='note'>{_when(frame['window_start'].min())} → "
             f"{_when(frame['window_start'].max())}</p>",
             _summary_table(run_summary(h, model)), "<h3>Metrics over time</h3>"]
    parts += [c.div(charts.metric_figure(frame, m), f"metric:{m}")
              for m in charts.metric_names(frame)]
    drift = drift_frame(h, model)
    if drift["distance"].notna().any():
        parts += ["<h3>Drift</h3>", c.div(charts.drift_matrix_figure(drift), "drift-matrix"),
                  c.div(charts.drift_timeline_figure(drift), "drift-timeline")]
        parts += _distributions(h, model, drift, profile, c)
    alerts = [a for a in h.alerts if (a.get("labels") or {}).get("model", model) == model]
    concept = concept_frame(h, model)
    if len(concept) or alerts:
        parts += ["<h3>Timeline</h3>", c.div(charts.timeline_figure(concept, alerts),
                                             "timeline")]
    quality = quality_frame(h, model)
    if len(quality):
        parts += ["<h3>Data quality</h3>", c.div(charts.quality_figure(quality), "quality")]
    parts += _discovered(h, model)
    return "".join(parts) + "</section>"


MAX_DISCOVERED_ROWS = 20


def _discovered(h: History, model: str) -> list[str]:
    """The slices discovery found most often in the top-k (docs/discovery.md)."""
    rows = sorted(((k, v) for k, v in h.discovered.items() if k[0] == model),
                  key=lambda kv: (-kv[1][0], kv[1][1], kv[0][2]))[:MAX_DISCOVERED_ROWS]
    if not rows:
        return []
    body = "".join(
        f"<tr><td>{_esc(k[2])}</td><td>{_esc(k[1])}</td><td>{n}</td><td>{best}</td>"
        f"<td>{last.get('error', 0):.3g} vs {last.get('rest_error', 0):.3g}</td>"
        f"<td><code>{_esc(last.get('where', ''))}</code></td></tr>"
        for k, (n, best, last) in rows)
    return ["<h3>Discovered slices</h3><table class='discovered'><tr><th>slice</th>"
            "<th>version</th><th>windows in top-k</th><th>best rank</th>"
            "<th>error vs rest (last)</th><th>where (paste into the spec)</th></tr>",
            body, "</table>"]


def _distributions(h: History, model: str, drift: Any, profile: Profile | None,
                   c: _Charts) -> list[str]:
    """Reference vs window for the drifted features: per feature, the window and slice
    where its effect size was largest."""
    hists = {(x["slice"], x["window_start"], x["feature"]): x for x in h.histograms
             if x.get("model") == model}
    drifted = drift[drift["status"] == "drift"].sort_values("distance", ascending=False)
    out, seen = [], set()
    for row in drifted.itertuples():
        if row.feature in seen or len(seen) >= charts.MAX_DISTRIBUTIONS:
            continue
        window = hists.get((row.slice, row.window_start, row.feature))
        reference = None
        if profile is not None:
            summaries, _scope = profile.for_slice(row.slice)
            if row.feature in summaries:
                reference = summary_histogram(summaries[row.feature])
        if window is None and reference is None:
            continue
        seen.add(row.feature)
        title = (f"{row.feature} in {row.slice}, window {_when(row.window_start)} "
                 f"(effect size {row.distance:.3g})")
        out.append(c.div(charts.distribution_figure(title, reference, window),
                         f"distribution:{row.feature}"))
    if drifted.empty:
        return out
    if not out:
        out.append("<p class='note'>No distributions: the history has no "
                   "<code>type: histogram</code> lines and no profile was given.</p>")
    return ["<h3>Drifted features: reference vs window</h3>", *out]
