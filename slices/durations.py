"""Durations (``"5m"``, ``"1h30m"``, ``"500ms"``) and window sizes (``"5m"``, ``"10000 records"``).

>>> parse_duration("1h30m")
5400.0
>>> parse_duration("500ms")
0.5
>>> parse_window("10000 records")
WindowSpec(kind='count', size=10000.0, allowed_lateness=0.0)
"""

from __future__ import annotations

import math
import re

from slices.spec import WindowSpec

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                           "w": 604800.0}
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d|w)\s*")
_COUNT = re.compile(r"\s*(\d+)\s*records?\s*")


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"500ms"``, or a number.

    A plain number (or numeric string) is seconds. Units: ms, s, m, h, d, w. Raises
    :class:`ValueError` for anything else, for negative and for non-finite values.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"a duration must be a string like '5m' or a number of seconds; "
                         f"got {text!r}")
    value = float(text) if isinstance(text, int | float) else _parse_text(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0; got {text!r}")
    return value


def _parse_text(text: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    pos, total, seen = 0, 0.0, False
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None or match.end() == pos:
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos, seen = match.end(), True
    if not seen or pos != len(text):
        raise ValueError(f"invalid duration {text!r}; expected a number with a unit "
                         f"(ms, s, m, h, d, w), e.g. '30s', '5m', '1h30m'")
    return total


def parse_window(text: str | float, allowed_lateness: float = 0.0) -> WindowSpec:
    """A tumbling window: ``"5m"`` → time window of 300 s; ``"10000 records"`` → count window.

    Raises :class:`ValueError` when the size is not a positive duration or record count.
    """
    if isinstance(text, str):
        match = _COUNT.fullmatch(text)
        if match is not None:
            count = int(match.group(1))
            if count < 1:
                raise ValueError(f"a count window needs at least 1 record; got {text!r}")
            return WindowSpec(kind="count", size=float(count), allowed_lateness=allowed_lateness)
    try:
        size = parse_duration(text)
    except ValueError:
        raise ValueError(f"invalid window {text!r}; expected a duration such as '5m' or a "
                         f"record count such as '10000 records'") from None
    if size <= 0:
        raise ValueError(f"a window must be longer than 0 seconds; got {text!r}")
    return WindowSpec(kind="time", size=size, allowed_lateness=allowed_lateness)
