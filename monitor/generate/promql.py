"""PromQL text for generated dashboards and rules: selectors checked against the family table.

>>> sel("slicewatch_records_total", model="$model", job=("=~", "$job"))
'slicewatch_records_total{model="$model",job=~"$job"}'
>>> glob_regex(["country=US", "overall"])
'country=US|overall'
"""

from __future__ import annotations

from monitor.export.families import family
from slices.errors import SlicewatchError
from slices.globs import regex_escape, slice_regex  # noqa: F401 (re-exported)

# Labels Prometheus attaches to every scraped series (scrape config / Pushgateway grouping).
TARGET_LABELS: tuple[str, ...] = ("job", "instance")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def sel(name: str, **matchers: str | tuple[str, str]) -> str:
    """``name{label op "value", …}``; a value is ``"x"`` (op ``=``) or ``(op, "x")``.

    Every label must be one the family carries (or a target label), so a dashboard can never
    filter on a label the daemon does not export.
    """
    fam = family(name)
    parts = []
    for label, spec in matchers.items():
        if label not in fam.labels and label not in TARGET_LABELS:
            raise SlicewatchError(f"label {label!r} is not a label of {name}; its labels: "
                                  f"{', '.join(fam.labels) or 'none'}")
        op, value = spec if isinstance(spec, tuple) else ("=", spec)
        parts.append(f"{label}{op}{quote(value)}")
    return f"{name}{{{','.join(parts)}}}" if parts else name


def glob_regex(patterns: list[str] | tuple[str, ...]) -> str:
    """An RE2 regex selecting exactly the slice labels ``patterns`` select (the semantics of
    :mod:`slices.globs`; Prometheus anchors ``=~`` at both ends like ``re.fullmatch``)."""
    return slice_regex(patterns)
