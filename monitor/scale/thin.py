"""Thinning the reservoir samples of a partial, exactly.

A window's drift reservoirs are bottom-k samples (:class:`monitor.drift.summary.Reservoir`):
the merged sample keeps the k smallest keys of all the values offered. A value of a delta
whose key is not below the k-th smallest key of the values its partition already sent for
the same window and reservoir can never be among the window's k smallest: it is left out of
the partial (the reservoir state says ``thinned`` and keeps its count ``n``). The evaluator's
merged sample is the same; the bytes on the wire and the evaluator's merge work drop from
every value to about ``k (1 + ln(n / k))`` values per reservoir and window.

>>> t = Thinner()
>>> state = {"k": 2, "n": 3, "values": [1.0, 2.0], "keys": [0.5, 0.1], "rng": {"seed": 0}}
>>> t.thin(("m", 0.0), {"g": state})["g"]["values"]
[1.0, 2.0]
>>> later = {"k": 2, "n": 2, "values": [3.0, 4.0], "keys": [0.9, 0.2], "rng": {"seed": 1}}
>>> t.thin(("m", 0.0), {"g": later})["g"]
{'k': 2, 'n': 2, 'values': [4.0], 'keys': [0.2], 'rng': {'seed': 1}, 'thinned': True}
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FIELDS = frozenset(("k", "n", "values", "keys", "rng"))


class Thinner:
    """Per window and reservoir, the keys a partition sent that may still be among the k
    smallest (at most k per reservoir); see the module docstring."""

    def __init__(self) -> None:
        self.sent: dict[tuple, np.ndarray] = {}

    def thin(self, window: tuple, state: Any) -> Any:
        """``state`` with its reservoirs thinned: a window's plain-data state
        (:meth:`monitor.core.windows.Window.to_state`; groups are told apart by their key,
        not their order), or any plain data; ``window`` names the window (model, key)."""
        if isinstance(state, dict) and "groups" in state:
            return {**state, "groups": [[key, count, self._walk(accs, (*window, tuple(key)))]
                                        for key, count, accs in state["groups"]]}
        return self._walk(state, window)

    def forget(self, window: tuple) -> None:
        """The window is done in this partition: nothing more of it will be sent."""
        n = len(window)
        self.sent = {k: v for k, v in self.sent.items() if k[:n] != window}

    def _walk(self, node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            if node.keys() >= _FIELDS and not node.get("thinned"):
                return self._reservoir(node, path)
            return {k: self._walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list) and node and isinstance(node[0], dict | list):
            return [self._walk(v, (*path, i)) for i, v in enumerate(node)]
        return node  # numbers (or lists of them): no reservoir inside

    def _reservoir(self, state: dict, path: tuple) -> dict:
        k = int(state["k"])
        keys = np.asarray(state["keys"], dtype=np.float64)
        if not keys.shape[0]:
            return state
        before = self.sent.get(path)
        if before is not None and before.shape[0] >= k:
            top = before.max()  # the k-th smallest key sent so far
            keep = keys < top
        else:
            keep = np.ones(keys.shape[0], dtype=bool)
        kept = keys[keep]
        both = kept if before is None else np.concatenate([before, kept])
        if both.shape[0] > k:
            both = np.partition(both, k - 1)[:k]
        self.sent[path] = both
        if keep.all():
            return state
        values = np.asarray(state["values"], dtype=np.float64)[keep]
        return {**state, "values": values.tolist(), "keys": kept.tolist(), "thinned": True}
