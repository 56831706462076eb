"""The slices discovered lately, per version: those that left the top-k are still judged
"not in the top-k" by the ``discovered`` alert rule for :data:`KEEP` windows, so a streak
ends and a firing alert resolves. Part of the discovery stage's checkpointed state, so a
restart judges the windows after it as an uninterrupted run does.

>>> recent = RecentlyDiscovered(keep=1)
>>> recent.step("v1", ["a", "b"]), recent.step("v1", ["a"]), recent.step("v1", [])
((), ('b',), ('a', 'b'))
>>> recent.to_state()
{'v1': [['a', 1]]}
>>> recent.step("v1", []), recent.to_state()
(('a',), {})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

KEEP = 10  # windows a discovered slice is still judged (not in the top-k) after it left
MAX_SLICES = 500  # discovered slices remembered per version (the oldest are forgotten)


class RecentlyDiscovered:
    """Per version: slice → windows closed since it was last in the window's top-k."""

    def __init__(self, keep: int = KEEP, max_slices: int = MAX_SLICES):
        self.keep = keep
        self.max_slices = max_slices
        self.since: dict[str, dict[str, int]] = {}

    def step(self, version: str, now: Iterable[str]) -> tuple[str, ...]:
        """One closed window of ``version`` whose top-k holds ``now``: returns the slices
        discovered in one of the last ``keep`` windows before it but not in it."""
        now = list(dict.fromkeys(now))
        seen = self.since.setdefault(version, {})
        current = set(now)
        absent = tuple(name for name in seen if name not in current)
        for name in list(seen):
            seen[name] += 1
            if seen[name] > self.keep:
                del seen[name]
        for name in now:
            seen[name] = 0
        while len(seen) > self.max_slices:
            del seen[next(iter(seen))]
        if not seen:
            del self.since[version]
        return absent

    def to_state(self) -> dict[str, Any]:
        return {v: [[name, k] for name, k in seen.items()] for v, seen in self.since.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.since = {}
        for version, pairs in state.items():
            seen = {str(name): int(k) for name, k in pairs}
            while len(seen) > self.max_slices:
                del seen[next(iter(seen))]
            if seen:
                self.since[str(version)] = seen
