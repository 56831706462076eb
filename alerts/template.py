"""A tiny, safe ``{{ name }}`` substitution for annotations — no expressions, no Jinja.

>>> render("{{ metric }} = {{ value }} on {{model}}",
...        {"metric": "auc", "value": 0.61, "model": "fraud"})
'auc = 0.61 on fraud'
"""

from __future__ import annotations

import math
import re
from typing import Any

TEMPLATE_VARS: tuple[str, ...] = (
    "rule", "model", "version", "slice", "severity", "metric", "value", "threshold",
    "baseline", "feature", "count", "window_start", "window_end", "status",
)
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables(template: str) -> list[str]:
    """Names used in ``template``, in order of appearance."""
    return _VAR.findall(template)


def format_value(value: Any) -> str:
    """Numbers with 4 significant digits (``0.6123``), ``NaN`` for missing numbers."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def render(template: str, values: dict[str, Any]) -> str:
    """Replace each ``{{ name }}`` by ``values[name]``; unknown names become empty strings."""
    return _VAR.sub(lambda m: format_value(values.get(m.group(1))), template)
