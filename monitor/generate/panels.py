"""Grafana dashboard JSON model pieces: a grid :class:`Board`, panels, variables, thresholds.

Plain dicts in the shape Grafana 10/11 saves (``schemaVersion`` 39). The board assigns panel
ids in order and places panels left to right, top to bottom on the 24-column grid, so ids are
unique and grid positions never overlap by construction (a unit test checks both anyway).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "slicewatch-prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24
SCHEMA_VERSION = 39
SEVERITY_COLORS = {"critical": "red", "error": "orange", "warning": "yellow", "info": "blue"}
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def target(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
           table: bool = False) -> dict[str, Any]:
    """A Prometheus query of a panel."""
    t: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "expr": expr,
                         "legendFormat": legend or "__auto", "range": not instant,
                         "instant": instant}
    if table:
        t["format"] = "table"
    return t


def timeseries(title: str, targets: list[dict], *, unit: str = "short", description: str = "",
               thresholds: list[dict] | None = None, min_: float | None = None,
               max_: float | None = None, log: bool = False, stack: bool = False,
               step: bool = True) -> dict[str, Any]:
    """A time-series panel; ``thresholds`` (steps) are drawn as lines with shaded regions."""
    custom: dict[str, Any] = {
        "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
        "showPoints": "never", "spanNulls": False,
        "lineInterpolation": "stepAfter" if step else "linear",
        "thresholdsStyle": {"mode": "line+area" if thresholds else "off"},
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    defaults: dict[str, Any] = {
        "unit": unit, "custom": custom, "color": {"mode": "palette-classic"},
        "thresholds": {"mode": "absolute",
                       "steps": thresholds or [{"color": "green", "value": None}]},
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom",
                                   "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, targets: list[dict], *, unit: str = "short", description: str = "",
         thresholds: list[dict] | None = None) -> dict[str, Any]:
    return {"type": "stat", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "color": {"mode": "thresholds"},
                                         "thresholds": {"mode": "absolute", "steps": thresholds
                                                        or [{"color": "green", "value": None}]}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"}}


def table(title: str, targets: list[dict], *, description: str = "",
          rename: dict[str, str] | None = None, hide: tuple[str, ...] = ("Time",),
          overrides: list[dict] | None = None) -> dict[str, Any]:
    """A table of instant queries (``format: table``) merged into one row per label set."""
    return {"type": "table", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "transformations": [
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {h: True for h in hide},
                                               "renameByName": rename or {}}}],
            "fieldConfig": {"defaults": {"custom": {"align": "auto", "filterable": True}},
                            "overrides": overrides or []},
            "options": {"showHeader": True, "cellHeight": "sm",
                        "footer": {"show": False, "reducer": ["sum"], "fields": ""}}}


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


@dataclass
class Board:
    """Places panels on the grid in reading order and numbers them 1, 2, …"""

    panels: list[dict] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self._place(row(title), GRID_WIDTH, 1)
        self._newline()

    def add(self, panel: dict, w: int = 8, h: int = 8) -> None:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width must be in [1, {GRID_WIDTH}], got {w}")
        if self.x + w > GRID_WIDTH:
            self._newline()
        self._place(panel, w, h)

    def _place(self, panel: dict, w: int, h: int) -> None:
        panel = {"id": len(self.panels) + 1, **panel,
                 "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y}}
        self.panels.append(panel)
        self.x += w
        self.line_height = max(self.line_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.line_height
        self.x, self.line_height = 0, 0


def query_variable(name: str, query: str, *, label: str = "", multi: bool = True,
                   regex: str = "", current: str | None = None) -> dict[str, Any]:
    """A ``label_values(...)`` variable; multi-valued ones include "All" as ``.*``."""
    var: dict[str, Any] = {
        "name": name, "label": label or name, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"}, "definition": query,
        "refresh": 2, "sort": 1, "regex": regex, "hide": 0,
        "multi": multi, "includeAll": multi,
        "current": ({"selected": True, "text": ["All"], "value": ["$__all"]} if multi
                    else {"selected": True, "text": current or "", "value": current or ""}),
        "options": [],
    }
    if multi:
        var["allValue"] = ".*"
    return var


@dataclass(frozen=True)
class Bound:
    """One bound of an alert rule: breached when ``value < lower`` or ``value > upper``."""

    value: float
    side: str  # lower | upper
    severity: str


def threshold_steps(bounds: list[Bound]) -> list[dict]:
    """Grafana threshold steps colouring each region by the most severe rule it breaks.

    Every bound gets a step (so a line is drawn at each); a region ``[b_i, b_i+1)`` is
    coloured by the rules broken inside it, green when none is.

    >>> [s["color"] for s in threshold_steps([Bound(0.7, "lower", "critical")])]
    ['red', 'green']
    """
    if not bounds:
        return []
    edges = sorted({b.value for b in bounds})

    def color(x: float) -> str:
        broken = [b.severity for b in bounds
                  if (b.side == "lower" and x < b.value) or (b.side == "upper" and x > b.value)]
        if not broken:
            return "green"
        return SEVERITY_COLORS[min(broken, key=lambda s: SEVERITY_RANK.get(s, 9))]

    probes = [edges[0] - 1.0] + [
        (a + b) / 2 for a, b in itertools.pairwise(edges)] + [
        edges[-1] + max(1.0, abs(edges[-1]))]
    steps = [{"color": color(probes[0]), "value": None}]
    steps += [{"color": color(p), "value": e} for e, p in zip(edges, probes[1:], strict=True)]
    return steps
