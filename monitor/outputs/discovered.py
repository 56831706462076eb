"""Discovered slices (issue 17) in the results history and on the console table."""

from __future__ import annotations

from monitor.discovery.types import DiscoveredSlice


def discovered_record(d: DiscoveredSlice) -> dict:
    """A ``type: discovered`` line of the results history."""
    return {"type": "discovered", **d.to_dict()}


def discovered_lines(found: tuple[DiscoveredSlice, ...] | list[DiscoveredSlice]) -> list[str]:
    """``  discovered #1 country=BR,device=web v3: error 0.41 vs 0.09 rest, n=120, …``.

    >>> d = DiscoveredSlice("fraud", "v3", "window", 1, "a=x,b=u", 'a == "x" and b == "u"', 2,
    ...                     120, 0.41, 0.09, 2.9, 1e-20, 3e-18, 40, 0.0, 60.0)
    >>> print(discovered_lines([d])[0])
      discovered #1 a=x,b=u  v3: error 0.41 vs 0.09 rest, n=120, score 2.90, p_adj=3.0e-18
    >>> discovered_lines([])
    []
    """
    lines = []
    for d in found:
        scope = "" if d.scope == "window" else " (horizon)"
        lines.append(f"  discovered #{d.rank}{scope} {d.slice}  {d.version}: error "
                     f"{d.error:.3g} vs {d.rest_error:.3g} rest, n={d.records}, "
                     f"score {d.score:.2f}, p_adj={d.p_adjusted:.1e}")
    return lines
