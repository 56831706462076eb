"""A tiny, safe ``{{ name }}`` substitution for annotations — no expressions, no Jinja.

>>> render("{{ metric }} = {{ value }} on {{model}}",
...        {"metric": "auc", "value": 0.61, "model": "fraud"})
'auc = 0.61 on fraud'
"""

from __future__ import annotations

import math
from typing import Any

from slices.alerting import TEMPLATE_VAR


def format_value(value: Any) -> str:
    """Numbers with 4 significant digits (``0.6123``), ``NaN`` for missing numbers."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def render(template: str, values: dict[str, Any]) -> str:
    """Replace each ``{{ name }}`` by ``values[name]``; unknown names become empty strings."""
    return TEMPLATE_VAR.sub(lambda m: format_value(values.get(m.group(1))), template)
