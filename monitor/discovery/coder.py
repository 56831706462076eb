"""Candidate features → bounded integer codes, and codes → slice names a spec accepts.

Each feature has a fixed number of codes (its *capacity*): a categorical feature admits its
first ``max_values`` distinct values (append-only, so a code never changes meaning), then
``__other__``; a numeric feature maps onto its bucket intervals. Code 0 is ``__other__`` and
code 1 ``__missing__`` for every feature.

>>> import numpy as np
>>> c = FeatureCoder(("device", "amount"), {"amount": (0.0, 100.0)}, max_values=2)
>>> c.capacity
(4, 5)
>>> codes = c.encode({"device": np.array(["web", "ios", "tv", None], object),
...                   "amount": np.array([5.0, 150.0, -1.0, np.nan])})
>>> codes.tolist()
[[2, 3, 0, 1], [3, 4, 2, 1]]
>>> [c.label(0, k) for k in (2, 0, 1)], c.label(1, 3)
(['device=web', 'device=__other__', 'device=__missing__'], 'amount=[0,100)')
>>> c.predicate(0, 2), c.predicate(1, 3), c.predicate(0, 1)
('device == "web"', 'amount >= 0 and amount < 100', 'device is null')
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from monitor.core.lazy import lazy_module
from slices.predicate import canon
from slices.spec import MISSING, OTHER

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)
# a hash table kept across batches: known strings are looked up, not re-factorized
_hashtable = lazy_module("pandas._libs.hashtable")

OTHER_CODE, MISSING_CODE = 0, 1
#: strings a feature's lookup table holds beyond its admitted values (those coded
#: ``__other__``); values past it are factorized with every batch
EXTRA_STRINGS = 256
#: batches factorized without a lookup after one whose strings mostly missed a full table
#: (a feature of many values: the lookup would only add to the factorize)
SKIP_LOOKUP = 16


class FeatureCoder:
    """Bounded codes for the candidate features of one model (shared by its windows)."""

    def __init__(self, features: tuple[str, ...], buckets: Mapping[str, tuple[float, ...]],
                 max_values: int = 20):
        if max_values < 1:
            raise ValueError(f"max_values must be an integer >= 1; got {max_values}")
        self.features = tuple(features)
        self.buckets = {f: tuple(buckets[f]) for f in features if f in buckets}
        self.max_values = max_values
        # categorical: admitted values in code order (after __other__, __missing__)
        self.values: dict[str, list[str]] = {f: [] for f in features if f not in self.buckets}
        self._index: dict[str, dict[str, int]] = {f: {} for f in self.values}
        # per categorical feature: strings seen (admitted or coded __other__), their codes
        # (and -1 last, for a failed lookup) and a table of them; rebuilt when it grows
        self._seen: dict[str, list[str]] = {f: [] for f in self.values}
        self._seen_codes: dict[str, np.ndarray] = {}
        self._tables: dict[str, Any] = {}
        self._skip: dict[str, int] = {}

    @property
    def capacity(self) -> tuple[int, ...]:
        """Codes per feature: 2 + admitted values (categorical) or intervals (numeric)."""
        return tuple(2 + (len(self.buckets[f]) + 1 if f in self.buckets else self.max_values)
                     for f in self.features)

    def encode(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """int64 codes, one row per feature (shape ``(features, n)``); new values admitted."""
        n = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((len(self.features), n), dtype=np.int64)
        for i, name in enumerate(self.features):
            col = columns.get(name)
            out[i] = self._numeric(name, col, n) if name in self.buckets \
                else self._categorical(name, col, n)
        return out

    def _numeric(self, name: str, col: np.ndarray | None, n: int) -> np.ndarray:
        if col is None:
            return np.full(n, MISSING_CODE, np.int64)
        if col.dtype.kind in "fiub":
            x = np.asarray(col, np.float64)
        else:
            x = pd.to_numeric(pd.Series(col, dtype=object), errors="coerce").to_numpy(float)
        codes = 2 + np.searchsorted(np.asarray(self.buckets[name]), x, side="right")
        codes[np.isnan(x)] = MISSING_CODE
        return codes

    def _categorical(self, name: str, col: np.ndarray | None, n: int) -> np.ndarray:
        if col is None:
            return np.full(n, MISSING_CODE, np.int64)
        if col.dtype != object or string_table_class() is None:
            return self._factorized(name, col)
        if self._skip.get(name):
            self._skip[name] -= 1
            return self._factorized(name, col)
        table = self._tables.get(name)
        if table is None:
            table = self._table(name)
        codes = self._seen_codes[name][table.lookup(col)]
        unknown = np.flatnonzero(codes < 0)  # new, missing or not a string
        if unknown.shape[0]:
            full = len(self._seen[name]) >= self.max_values + EXTRA_STRINGS
            if full and 2 * unknown.shape[0] > n:
                self._skip[name] = SKIP_LOOKUP
            codes[unknown] = self._factorized(name, col[unknown])
        return codes

    def _table(self, name: str) -> Any:
        seen = self._seen[name]
        table = string_table_class()(max(len(seen), 1))
        table.map_locations(np.array(seen, dtype=object))
        self._seen_codes[name] = np.array(
            [self._index[name].get(v, OTHER_CODE) for v in seen] + [-1], dtype=np.int64)
        self._tables[name] = table
        return table

    def _factorized(self, name: str, col: np.ndarray) -> np.ndarray:
        """Codes by factorizing ``col``; new values admitted while there is room, and new
        strings remembered for the lookup table (up to :data:`EXTRA_STRINGS` past the
        admitted ones)."""
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        index, values, seen = self._index[name], self.values[name], self._seen[name]
        remap = np.empty(len(uniques) + 1, dtype=np.int64)
        remap[-1] = MISSING_CODE
        grown = False
        for j, value in enumerate(uniques):
            key = canon(value)
            if key is None:
                remap[j] = MISSING_CODE
                continue
            code = index.get(key)
            if code is None and len(values) < self.max_values:
                code = index[key] = 2 + len(values)
                values.append(key)
            remap[j] = OTHER_CODE if code is None else code
            if type(value) is str and len(seen) < self.max_values + EXTRA_STRINGS:
                seen.append(value)
                grown = True
        if grown:
            self._tables.pop(name, None)
        return remap[codes]

    def token(self, i: int, code: int) -> str:
        """The value (or interval) of code ``code`` of feature ``i``."""
        if code == OTHER_CODE:
            return OTHER
        if code == MISSING_CODE:
            return MISSING
        name = self.features[i]
        if name in self.values:
            return self.values[name][code - 2]
        e = [canon(x) for x in self.buckets[name]]
        k = code - 2
        if k == 0:
            return f"(-inf,{e[0]})"
        return f"[{e[-1]},+inf)" if k == len(e) else f"[{e[k - 1]},{e[k]})"

    def label(self, i: int, code: int) -> str:
        """``feature=value`` as declared slices name it."""
        return f"{self.features[i]}={self.token(i, code)}"

    def predicate(self, i: int, code: int) -> str:
        """A ``where:`` test selecting exactly the records of code ``code``."""
        name = self.features[i]
        if code == MISSING_CODE:
            return f"{name} is null"
        if code == OTHER_CODE:
            raise ValueError(f"{name}={OTHER} is not a slice a spec can name")
        if name in self.values:
            return f"{name} == {_quote(self.values[name][code - 2])}"
        e, k = [canon(x) for x in self.buckets[name]], code - 2
        if k == 0:
            return f"{name} < {e[0]}"
        return f"{name} >= {e[-1]}" if k == len(e) else f"{name} >= {e[k - 1]} and " \
                                                         f"{name} < {e[k]}"

    def to_state(self) -> dict[str, Any]:
        return {"values": {f: list(v) for f, v in self.values.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        for name, values in state["values"].items():
            if name in self.values:
                kept = [str(v) for v in values][:self.max_values]
                self.values[name] = kept
                self._index[name] = {v: 2 + j for j, v in enumerate(kept)}
                self._seen[name] = list(kept)
                self._tables.pop(name, None)

    def remap(self, i: int, tokens: list[str]) -> np.ndarray:
        """Codes of this coder for ``tokens`` of feature ``i`` (another coder's, in its code
        order), admitting new values while there is room; the others → ``__other__``."""
        name = self.features[i]
        out = np.empty(len(tokens), dtype=np.int64)
        for j, token in enumerate(tokens):
            if token == OTHER:
                out[j] = OTHER_CODE
            elif token == MISSING:
                out[j] = MISSING_CODE
            elif name in self.values:
                code = self._index[name].get(token)
                if code is None and len(self.values[name]) < self.max_values:
                    code = self._index[name][token] = 2 + len(self.values[name])
                    self.values[name].append(token)
                    self._seen[name] = list(self.values[name])  # __other__ strings may
                    self._tables.pop(name, None)  # be admitted now: forget them
                out[j] = OTHER_CODE if code is None else code
            else:
                out[j] = j  # numeric: same edges, same codes
        return out

    def tokens(self, i: int) -> list[str]:
        """Every token of feature ``i`` in code order (up to the codes in use)."""
        name = self.features[i]
        used = 2 + (len(self.values[name]) if name in self.values
                    else len(self.buckets[name]) + 1)
        return [self.token(i, c) for c in range(used)]


@cache
def string_table_class() -> Any:
    """pandas' ``StringHashTable`` (None when pandas no longer has it: every batch is then
    factorized)."""
    try:
        return _hashtable.StringHashTable
    except (ImportError, AttributeError):  # pragma: no cover - pandas moved it
        return None


def _quote(value: str) -> str:
    if '"' not in value:
        return f'"{value}"'
    return "'" + value.replace("'", "\\'") + "'"
