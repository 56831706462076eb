"""Plotly figures of one model's history (tables from :mod:`.history`).

Every chart is bounded whatever the run's size: at most :data:`MAX_POINTS` time buckets per
line (windows are averaged, or maxed for effect sizes, into equal buckets), :data:`MAX_ROWS`
rows per heatmap (the strongest first), :data:`WORST` worst slices per metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MAX_POINTS = 150  # time buckets per chart
MAX_ROWS = 40  # rows of a heatmap
WORST = 3  # worst slices drawn per metric
MAX_CRITICAL = 5
MAX_METRICS = 9
MAX_DISTRIBUTIONS = 8
DIGITS = 4

#: metrics where higher is better (the worst slices are the lowest); the others with a
#: direction are errors (the worst are the highest); the rest have no "worst".
HIGHER_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "macro_precision",
                 "macro_recall", "macro_f1", "labelled_rate"}
LOWER_BETTER = {"log_loss", "brier", "ece", "failure_rate", "error_rate", "timeout_rate",
                "fallback_rate", "mae", "rmse", "mape"}
PREFERRED = ["roc_auc", "accuracy", "f1", "pr_auc", "ece", "log_loss", "macro_f1", "mae", "rmse",
             "failure_rate", "score_mean", "prediction_mean"]


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      template="plotly_white", legend={"orientation": "h", "y": -0.15})
    return fig


def time_buckets(starts: pd.Series | np.ndarray, n: int = MAX_POINTS) -> np.ndarray:
    """The bucket start each window falls into: windows themselves when there are at most
    ``n``, else ``n`` equal spans of the run.

    >>> time_buckets(np.array([0.0, 60.0, 120.0]), 2).tolist()
    [0.0, 60.0, 60.0]
    """
    starts = np.asarray(starts, dtype=np.float64)
    uniq = np.unique(starts)
    if uniq.size <= n:
        return starts
    lo, hi = uniq[0], uniq[-1]
    width = (hi - lo) / n
    return lo + np.minimum(np.floor((starts - lo) / width), n - 1) * width


def metric_names(frame: pd.DataFrame) -> list[str]:
    """The metrics worth a chart, preferred ones first (intervals ride with their metric)."""
    names = [c[2:] for c in frame.columns if c.startswith("m:")]
    names = [m for m in names if m != "count" and not m.endswith(("_lower", "_upper"))
             and frame[f"m:{m}"].notna().any()]
    ordered = [m for m in PREFERRED if m in names] + sorted(set(names) - set(PREFERRED))
    return ordered[:MAX_METRICS]


def _chosen_slices(frame: pd.DataFrame, metric: str) -> list[tuple[str, str]]:
    """(slice, role) drawn for ``metric``: overall, critical slices, then the worst."""
    col = f"m:{metric}"
    picked = [("overall", "overall")] if (frame["slice"] == "overall").any() else []
    crit = sorted(set(frame.loc[frame["critical"], "slice"]))[:MAX_CRITICAL]
    picked += [(s, "critical") for s in crit]
    if metric in HIGHER_BETTER or metric in LOWER_BETTER:
        means = frame[~frame["slice"].isin([p[0] for p in picked])].groupby("slice")[col].mean()
        means = means.dropna().sort_values(ascending=metric in HIGHER_BETTER)
        picked += [(s, "worst") for s in means.index[:WORST]]
    return picked


def metric_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """``metric`` over time for overall, critical and the worst slices, with the interval
    band when the history has ``<metric>_lower`` / ``_upper``."""
    frame = frame[frame["reported"].astype(bool)]
    col, lo, hi = f"m:{metric}", f"m:{metric}_lower", f"m:{metric}_upper"
    fig = go.Figure()
    for slice_, role in _chosen_slices(frame, metric):
        part = frame[frame["slice"] == slice_].copy()
        part["bucket"] = time_buckets(part["window_start"].to_numpy())
        cols = [c for c in (col, lo, hi) if c in part.columns]
        agg = part.groupby("bucket")[cols].mean().round(DIGITS)
        x = pd.to_datetime(agg.index, unit="s", utc=True)
        name = f"{slice_} ({role})" if role != "overall" else "overall"
        if lo in agg.columns and hi in agg.columns and agg[lo].notna().any():
            fig.add_trace(go.Scatter(x=x, y=agg[hi], mode="lines", line={"width": 0},
                                     showlegend=False, hoverinfo="skip", legendgroup=name))
            fig.add_trace(go.Scatter(x=x, y=agg[lo], mode="lines", line={"width": 0},
                                     fill="tonexty", fillcolor="rgba(99,110,250,0.15)",
                                     name=f"{name} interval", legendgroup=name,
                                     hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=agg[col], mode="lines+markers", name=name,
                                 legendgroup=name, marker={"size": 4},
                                 line={"dash": "dot" if role == "worst" else "solid"}))
    return _layout(fig, f"{metric} over time")


def _pair_label(slice_: str, feature: str) -> str:
    return f"{slice_} · {feature}"


def drift_matrix_figure(drift: pd.DataFrame) -> go.Figure:
    """Slice × feature: the largest effect size of the run; the text is the number of
    windows where the decision was *drift* (✕ marks the cells with at least one)."""
    tested = drift.dropna(subset=["distance"])
    peak = tested.pivot_table(index="slice", columns="feature", values="distance",
                              aggfunc="max")
    drifted = drift[drift["status"] == "drift"].pivot_table(
        index="slice", columns="feature", values="status", aggfunc="count")
    order = peak.max(axis=1).sort_values(ascending=False).index[:MAX_ROWS]
    peak = peak.loc[order]
    counts = drifted.reindex(index=peak.index, columns=peak.columns).fillna(0).astype(int)
    text = counts.map(lambda n: f"✕ {n}" if n else "")
    fig = go.Figure(go.Heatmap(z=peak.round(DIGITS).to_numpy(), x=list(peak.columns),
                               y=list(peak.index), text=text.to_numpy(),
                               texttemplate="%{text}", colorscale="YlOrRd",
                               colorbar={"title": "effect size"},
                               hovertemplate="%{y} · %{x}<br>max effect size %{z}"
                                             "<br>windows drifted: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Drift: largest effect size per slice × feature (✕ n: windows "
                        "with a drift decision)", height=max(300, 22 * len(peak) + 120))


def drift_timeline_figure(drift: pd.DataFrame) -> go.Figure:
    """(slice · feature) × window: effect size per window, ✕ where the decision was
    *drift*; the pairs that drifted most often first."""
    d = drift.dropna(subset=["distance"]).copy()
    d["pair"] = [_pair_label(s, f) for s, f in zip(d["slice"], d["feature"], strict=True)]
    d["drift"] = d["status"] == "drift"
    rank = d.groupby("pair").agg(n=("drift", "sum"), peak=("distance", "max"))
    pairs = rank.sort_values(["n", "peak"], ascending=False).index[:MAX_ROWS]
    d = d[d["pair"].isin(pairs)]
    d["bucket"] = time_buckets(d["window_start"].to_numpy())
    z = d.pivot_table(index="pair", columns="bucket", values="distance", aggfunc="max")
    z = z.reindex(index=pairs)
    marks = d[d["drift"]].groupby(["pair", "bucket"]).size().reset_index()
    x = pd.to_datetime(z.columns, unit="s", utc=True)
    fig = go.Figure(go.Heatmap(z=z.round(DIGITS).to_numpy(), x=x, y=list(z.index),
                               colorscale="YlOrRd", colorbar={"title": "effect size"},
                               hovertemplate="%{y}<br>%{x}<br>effect size %{z}<extra></extra>"))
    fig.add_trace(go.Scatter(x=pd.to_datetime(marks["bucket"], unit="s", utc=True),
                             y=marks["pair"], mode="markers", name="drift decision",
                             marker={"symbol": "x", "color": "black", "size": 7},
                             hovertemplate="%{y}<br>%{x}: drift<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Drift per window (✕: drift decision)",
                   height=max(300, 22 * len(z) + 140))


def _numeric_bars(hist: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior bins of a numeric histogram: centres, widths, density (share of all values
    per unit of the feature, so unequal bins compare fairly)."""
    edges = np.asarray(hist["edges"], dtype=np.float64)
    counts = np.asarray(hist["counts"], dtype=np.float64)
    share = counts / max(counts.sum(), 1.0)
    width = np.diff(edges)
    return (edges[:-1] + edges[1:]) / 2, width, share[1:-1] / width


def distribution_figure(title: str, reference: dict[str, Any] | None,
                        window: dict[str, Any] | None) -> go.Figure:
    """Reference vs window distribution of one feature: bars over the reference's bins
    (numeric) or categories (the window's shares beside the reference's)."""
    fig = go.Figure()
    for name, hist, color in (("reference", reference, "#636efa"),
                              ("window", window, "#ef553b")):
        if hist is None:
            continue
        if hist["kind"] == "numeric":
            x, width, density = _numeric_bars(hist)
            fig.add_trace(go.Bar(x=x, y=density, width=width,
                                 name=name, marker_color=color, opacity=0.55))
        else:
            counts = np.asarray(hist["counts"], dtype=np.float64)
            share = counts / max(counts.sum(), 1.0)
            fig.add_trace(go.Bar(x=hist["categories"], y=share.round(DIGITS), name=name,
                                 marker_color=color))
    numeric = (reference or window or {}).get("kind") == "numeric"
    fig.update_layout(barmode="overlay" if numeric else "group")
    fig.update_yaxes(title="density" if numeric else "share of records")
    return _layout(fig, title, height=320)


def timeline_figure(concept: pd.DataFrame, alerts: list[dict]) -> go.Figure:
    """Concept-drift events (◆, per slice, at the event time of the prediction the
    detector fired on) and alerts fired (▲) on one timeline."""
    fig = go.Figure()
    if len(concept):
        c = concept.copy()
        c["bucket"] = time_buckets(c["t"].to_numpy())
        agg = c.groupby(["slice", "bucket"], as_index=False)["events"].sum()
        top = agg.groupby("slice")["events"].sum().sort_values(ascending=False).index[:MAX_ROWS]
        agg = agg[agg["slice"].isin(top)]
        fig.add_trace(go.Scatter(x=pd.to_datetime(agg["bucket"], unit="s", utc=True),
                                 y=agg["slice"], mode="markers", name="concept drift",
                                 marker={"symbol": "diamond", "size": 6 + 2 * np.sqrt(
                                     agg["events"].to_numpy()), "color": "#ab63fa"},
                                 customdata=agg["events"],
                                 hovertemplate="%{y}<br>%{x}<br>%{customdata} "
                                               "event(s)<extra></extra>"))
    fired = [a for a in alerts if a.get("status") == "firing"]
    if fired:
        slices = [(a.get("labels") or {}).get("slice", "?") for a in fired]
        fig.add_trace(go.Scatter(
            x=pd.to_datetime([float(a.get("window_start") or 0) for a in fired], unit="s",
                             utc=True),
            y=slices, mode="markers", name="alert fired",
            marker={"symbol": "triangle-up", "size": 9, "color": "#ef553b"},
            text=[str(a.get("alertname", "")) for a in fired],
            hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>"))
    return _layout(fig, "Timeline: concept-drift events and alerts", height=360)


def quality_figure(quality: pd.DataFrame) -> go.Figure:
    """Feature × check: the worst ratio of the run (hover: the mean over windows)."""
    worst = quality.pivot_table(index="feature", columns="check", values="value",
                                aggfunc="max")
    mean = quality.pivot_table(index="feature", columns="check", values="value",
                               aggfunc="mean").reindex_like(worst)
    worst = worst.iloc[:MAX_ROWS]
    mean = mean.iloc[:MAX_ROWS]
    fig = go.Figure(go.Heatmap(z=worst.round(DIGITS).to_numpy(), x=list(worst.columns),
                               y=list(worst.index), customdata=mean.round(DIGITS).to_numpy(),
                               colorscale="Blues", colorbar={"title": "worst ratio"},
                               texttemplate="%{z:.3f}",
                               hovertemplate="%{y} · %{x}<br>worst %{z}<br>mean "
                                             "%{customdata}<extra></extra>"))
    return _layout(fig, "Data quality by feature (overall slice; worst window)",
                   height=max(280, 26 * len(worst) + 120))
