"""PromQL text for generated dashboards and rules: selectors checked against the family table.

>>> sel("slicewatch_records_total", model="$model", job=("=~", "$job"))
'slicewatch_records_total{model="$model",job=~"$job"}'
>>> glob_regex(["country=*", "overall"])
'country=.*|overall'
"""

from __future__ import annotations

import fnmatch
import re

from monitor.grafana.families import family
from slices.errors import SlicewatchError

# Labels Prometheus attaches to every scraped series (scrape config / Pushgateway grouping).
TARGET_LABELS: tuple[str, ...] = ("job", "instance")
_META = re.compile(r"[\\.^$|?*+()\[\]{}]")


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
    """An RE2 alternation matching exactly what the shell-style ``patterns`` match.

    Prometheus anchors label regexes at both ends, like ``fnmatch.fnmatchcase``.
    """
    return "|".join(_glob(p) for p in patterns)


def _glob(pattern: str) -> str:
    # fnmatch.translate gives '(?s:...)\\Z'; RE2 has no \\Z, so translate by hand instead.
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 1 if i < n and pattern[i] in "!]" else i)
            if j < 0:
                out.append(regex_escape(c))
                continue
            body = pattern[i:j].replace("\\", "\\\\")
            i = j + 1
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
        else:
            out.append(regex_escape(c))
    return "".join(out)


def regex_escape(text: str) -> str:
    """Escape RE2 metacharacters (only those: RE2 rejects escaped letters and spaces)."""
    return _META.sub(r"\\\g<0>", text)


def glob_matches(patterns: tuple[str, ...], value: str) -> bool:
    """Reference semantics of slice patterns (the alerts engine's)."""
    return not patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)
