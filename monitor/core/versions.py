"""At most ``max_versions`` model-version labels per model; the other versions fold into
``__other__`` (their records still count, in that version's series).

Versions get a label in the order they come while there is room. When a window of the model
closes, a folded version takes the label of the least active labelled one if it was surely
more active since the previous close (folded versions are counted with a bounded
Space-Saving sketch, whose lower bound is used; labelled ones exactly). So a new deployment
gets its label at the next close, a retired one gives it up, and versions of equal traffic
do not take turns. Memory and series stay bounded however many versions the stream carries.

>>> import numpy as np
>>> f = VersionFolder(2)
>>> f.fold(np.array(["v1", "v2", "v3", "v3", "v3"], dtype=object)).tolist()
['v1', 'v2', '__other__', '__other__', '__other__']
>>> f.rotate()
>>> f.fold(np.array(["v3", "v1"], dtype=object)).tolist()
['v3', '__other__']
>>> f.folded
4
"""

from __future__ import annotations

import numpy as np

from monitor.core.windows import string_codes

OTHER = "__other__"


class VersionFolder:
    def __init__(self, max_versions: int):
        self.max_versions = max_versions
        self.kept: dict[str, int] = {}  # labelled version → records since the last rotate
        self.sketch: dict[str, list[int]] = {}  # folded version → [count, overestimate]
        self.capacity = max(32, 4 * max_versions)
        self.folded = 0  # records whose version went to __other__

    def fold(self, versions: np.ndarray) -> np.ndarray:
        """``versions`` with the ones over the budget replaced by ``__other__``."""
        codes, uniques = string_codes(versions)
        counts = np.bincount(codes, minlength=len(uniques))
        keep = np.ones(len(uniques), dtype=bool)
        for i, version in enumerate(uniques):
            n = int(counts[i])
            if version in self.kept:
                self.kept[version] += n
            elif len(self.kept) < self.max_versions and version != OTHER:
                self.kept[version] = n
            else:
                keep[i] = False
                self._observe(version, n)
        if keep.all():
            return versions
        self.folded += int(counts[~keep].sum())
        out = np.asarray(versions, dtype=object).copy()
        out[~keep[codes]] = OTHER
        return out

    def _observe(self, version: str, n: int) -> None:
        """Space-Saving: at most ``capacity`` counters; a newcomer takes over the smallest
        (and carries its count as the overestimate)."""
        entry = self.sketch.get(version)
        if entry is not None:
            entry[0] += n
        elif len(self.sketch) < self.capacity:
            self.sketch[version] = [n, 0]
        else:
            smallest = min(self.sketch, key=lambda v: self.sketch[v][0])
            floor = self.sketch.pop(smallest)[0]
            self.sketch[version] = [floor + n, floor]

    def rotate(self) -> None:
        """A window closed: folded versions surely more active than labelled ones take their
        labels; the counts start again."""
        candidates = sorted(((c - e, v) for v, (c, e) in self.sketch.items() if v != OTHER),
                            reverse=True)
        for sure, version in candidates:
            weakest = min(self.kept, key=self.kept.__getitem__, default=None)
            if weakest is None or sure <= self.kept[weakest]:
                break
            del self.kept[weakest]
            self.kept[version] = sure
        self.kept = dict.fromkeys(self.kept, 0)
        self.sketch = {}

    def to_state(self) -> dict:
        return {"kept": sorted(self.kept.items()),
                "sketch": sorted([v, c, e] for v, (c, e) in self.sketch.items()),
                "folded": self.folded}

    def load_state(self, state: dict) -> None:
        self.kept = {str(v): int(n) for v, n in state["kept"][:self.max_versions]}
        self.sketch = {str(v): [int(c), int(e)] for v, c, e in state["sketch"]}
        self.folded = int(state["folded"])
