"""Batch → slice codes: which slice value of each :class:`~slices.spec.SliceSpec` a record is in.

:meth:`SliceAssigner.assign` returns :class:`SliceCodes` — an ``int32`` code per record (``-1``:
not in this slice) and the ``labels`` the codes index. ``labels[code]`` is the Prometheus
``slice`` label value:

============== ===============================================================================
kind           labels
============== ===============================================================================
overall        ``overall``
feature_keys   ``country=US``; crosses ``country=US,device=ios``; ``country=__missing__``;
               values beyond ``max_values`` → ``country=__other__``
feature_values ``country=US`` (only the matching records)
buckets        ``amount=(-inf,0)``, ``amount=[0,10)``, …, ``amount=[100,+inf)``,
               ``amount=__missing__``
where          the slice's name (only the matching records)
tags           one :class:`SliceCodes` per listed tag, label ``tag=new_user``
============== ===============================================================================

Codes are stable across batches: a label keeps its code forever and ``labels`` only grows.

Cardinality: each key of a ``feature_keys`` slice admits at most ``max_values`` distinct values,
first come first served; :meth:`SliceAssigner.refresh` (at each window close) re-ranks the kept
set to the most frequent values seen so far, counted in a space-saving sketch of at most
``10 × max_values`` candidates. Other values fold into ``__other__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from slices.codes import factorize
from slices.lazy import lazy_module
from slices.predicate import Compare, Expr, canon, evaluate, parse_predicate
from slices.spec import MISSING, OTHER, ModelSpec, SliceSpec

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

SKETCH_FACTOR = 10


class SliceableBatch(Protocol):
    """What slicing reads from a batch (``monitor.core.records.RecordBatch`` implements it)."""

    def __len__(self) -> int: ...

    def column(self, name: str) -> np.ndarray | None:
        """float64 (numeric) or object (categorical) array; None when absent (all missing)."""

    def has_tag(self, tag: str) -> np.ndarray:
        """Boolean mask of the records carrying ``tag``."""


@dataclass(frozen=True)
class SliceCodes:
    """Slice membership of a batch under one slice spec (one tag, for ``tags`` slices)."""

    spec: SliceSpec
    codes: np.ndarray  # int32 per record, -1 = not in this slice
    labels: list[str]  # labels[code]; grows across batches, never reordered

    def groups(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(label, row positions)`` for each slice value present in the batch."""
        order = np.argsort(self.codes, kind="stable")
        sorted_codes = self.codes[order]
        present, starts = np.unique(sorted_codes, return_index=True)
        ends = np.append(starts[1:], sorted_codes.shape[0])
        for code, start, end in zip(present, starts, ends, strict=True):
            if code >= 0:
                yield self.labels[code], order[start:end]


class ValueVocab:
    """Bounded set of admitted values of one feature key, with a space-saving frequency sketch.

    >>> v = ValueVocab(max_values=1)
    >>> v.observe(["a", "b"], np.array([1, 5]))
    >>> v.token("a"), v.token("b")
    ('a', '__other__')
    >>> v.refresh(); v.token("a"), v.token("b")
    ('__other__', 'b')
    """

    def __init__(self, max_values: int):
        if max_values < 1:
            raise ValueError(f"max_values must be an integer >= 1; got {max_values}")
        self.max_values = max_values
        self.capacity = SKETCH_FACTOR * max_values
        self.admitted: dict[str, None] = {}
        self.counts: dict[str, int] = {}
        self.floor = 0  # largest count evicted from the sketch: a new entry's possible past

    def observe(self, keys: list[str], counts: np.ndarray) -> None:
        """Count a batch's distinct values (``counts[i]`` records of ``keys[i]``) and admit new
        ones, in order, while there is room."""
        for key, count in zip(keys, counts.tolist(), strict=True):
            if key in self.counts:
                self.counts[key] += count
            else:
                self.counts[key] = count + self.floor
            if key not in self.admitted and len(self.admitted) < self.max_values:
                self.admitted[key] = None
        if len(self.counts) > self.capacity:
            ranked = self._ranked()
            self.floor = max(self.floor, self.counts[ranked[self.capacity]])
            self.counts = {k: self.counts[k] for k in ranked[:self.capacity]}

    def token(self, key: str) -> str:
        return key if key in self.admitted else OTHER

    def refresh(self) -> None:
        """Keep the ``max_values`` most frequent values seen so far (incumbents win ties)."""
        self.admitted = dict.fromkeys(self._ranked()[:self.max_values])

    def _ranked(self) -> list[str]:
        return sorted(self.counts, key=lambda k: (-self.counts[k], k not in self.admitted))

    def to_state(self) -> dict[str, Any]:
        return {"admitted": list(self.admitted), "counts": dict(self.counts),
                "floor": self.floor}

    def load_state(self, state: dict[str, Any]) -> None:
        self.counts = {str(k): int(v) for k, v in state["counts"].items()}
        self.floor = int(state["floor"])
        self.admitted = dict.fromkeys(list(state["admitted"])[:self.max_values])


class _Labels:
    """Append-only label list with a reverse index."""

    def __init__(self, labels: list[str] | None = None):
        self.labels: list[str] = []
        self.index: dict[str, int] = {}
        for label in labels or ():
            self.code(label)

    def code(self, label: str) -> int:
        code = self.index.get(label)
        if code is None:
            code = self.index[label] = len(self.labels)
            self.labels.append(label)
        return code


def distinct_values(col: np.ndarray | None, n: int) -> tuple[np.ndarray, list[str]]:
    """``(codes, keys)``: per-record index into ``keys`` (the canonical strings of the distinct
    values, in order of first appearance; ``-1`` = missing).

    >>> distinct_values(np.array([3.0, np.nan, 2.5, 3.0]), 4)
    (array([ 0, -1,  1,  0]), ['3', '2.5'])
    """
    if col is None:
        return np.full(n, -1, dtype=np.int64), []
    data = np.asarray(col, np.float64) if col.dtype.kind in "fiub" else np.asarray(col, object)
    codes, uniques = factorize(data, use_na_sentinel=True)
    keys: dict[str, int] = {}
    remap = np.empty(len(uniques) + 1, dtype=np.int64)
    remap[-1] = -1
    for i, value in enumerate(uniques):
        key = canon(value)
        remap[i] = -1 if key is None else keys.setdefault(key, len(keys))
    return remap[codes], list(keys)


class _Rule:
    """Assignment of one slice spec; stateless except for ``feature_keys``."""

    def __init__(self, spec: SliceSpec):
        self.spec = spec

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def refresh(self) -> None:
        pass

    def to_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


def _member(spec: SliceSpec, mask: np.ndarray, label: str) -> SliceCodes:
    return SliceCodes(spec, np.where(mask, 0, -1).astype(np.int32), [label])


class _Overall(_Rule):
    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        return [SliceCodes(self.spec, np.zeros(len(batch), np.int32), ["overall"])]


class _Where(_Rule):
    def __init__(self, spec: SliceSpec):
        super().__init__(spec)
        pred = spec.predicate
        self.predicate: Expr = pred if isinstance(pred, Expr) else parse_predicate(spec.where or "")

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        return [_member(self.spec, evaluate(self.predicate, batch), self.spec.name)]


class _Tags(_Rule):
    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        return [_member(self.spec, np.asarray(batch.has_tag(t), bool), f"tag={t}")
                for t in self.spec.tags]


class _FeatureValues(_Rule):
    def __init__(self, spec: SliceSpec):
        super().__init__(spec)
        self.tests = [Compare(k, "==", _literal(v)) for k, v in spec.values.items()]
        self.label = ",".join(f"{k}={canon(v)}" for k, v in spec.values.items())

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        mask = np.ones(len(batch), bool)
        for test in self.tests:
            mask &= evaluate(test, batch)
        return [_member(self.spec, mask, self.label)]


def _literal(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Buckets(_Rule):
    """``[e_i, e_i+1)`` intervals plus the outer ``(-inf, e_0)`` and ``[e_k, +inf)``."""

    def __init__(self, spec: SliceSpec):
        super().__init__(spec)
        self.feature = spec.keys[0]
        self.edges = np.asarray(spec.buckets, np.float64)
        e = [canon(x) for x in spec.buckets]
        inner = [f"[{a},{b})" for a, b in pairwise(e)]
        names = [f"(-inf,{e[0]})", *inner, f"[{e[-1]},+inf)", MISSING]
        self.labels = [f"{self.feature}={name}" for name in names]

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        col = batch.column(self.feature)
        if col is None:
            x = np.full(len(batch), np.nan)
        elif col.dtype.kind in "fiub":
            x = np.asarray(col, np.float64)
        else:
            x = pd.to_numeric(pd.Series(col, dtype=object), errors="coerce").to_numpy(np.float64)
        codes = np.searchsorted(self.edges, x, side="right")
        codes[np.isnan(x)] = len(self.labels) - 1
        return [SliceCodes(self.spec, codes.astype(np.int32), self.labels)]


class _FeatureKeys(_Rule):
    """One slice value per distinct value (tuple of values for a cross) of the keys."""

    def __init__(self, spec: SliceSpec):
        super().__init__(spec)
        self.vocabs = [ValueVocab(spec.max_values) for _ in spec.keys]
        self.labels = _Labels()

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        n = len(batch)
        combined = np.zeros(n, dtype=np.int64)
        tables: list[list[str]] = []
        for key, vocab in zip(self.spec.keys, self.vocabs, strict=True):
            codes, keys = distinct_values(batch.column(key), n)
            present = codes >= 0
            vocab.observe(keys, np.bincount(codes[present], minlength=len(keys)))
            tokens: dict[str, int] = {}
            token_of = np.array([tokens.setdefault(vocab.token(k), len(tokens)) for k in keys]
                                + [tokens.setdefault(MISSING, len(tokens))], dtype=np.int64)
            combined = combined * len(tokens) + token_of[codes]
            tables.append([f"{key}={t}" for t in tokens])
        inverse, combos = pd.factorize(combined)
        global_codes = np.empty(len(combos), dtype=np.int32)
        for i, combo in enumerate(combos.tolist()):
            parts = []
            for table in reversed(tables):
                combo, t = divmod(combo, len(table))
                parts.append(table[t])
            global_codes[i] = self.labels.code(",".join(reversed(parts)))
        return [SliceCodes(self.spec, global_codes[inverse.reshape(-1)], self.labels.labels)]

    def refresh(self) -> None:
        for vocab in self.vocabs:
            vocab.refresh()

    def to_state(self) -> dict[str, Any]:
        return {"labels": list(self.labels.labels),
                "keys": {k: v.to_state() for k, v in zip(self.spec.keys, self.vocabs,
                                                        strict=True)}}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels = _Labels(list(state["labels"]))
        keys = state["keys"]
        for key, vocab in zip(self.spec.keys, self.vocabs, strict=True):
            if key in keys:
                vocab.load_state(keys[key])


_RULES: dict[str, type[_Rule]] = {
    "overall": _Overall, "feature_keys": _FeatureKeys, "feature_values": _FeatureValues,
    "buckets": _Buckets, "where": _Where, "tags": _Tags,
}


class SliceAssigner:
    """Assigns the records of one model to its slices, vectorised over a batch.

    >>> from slices.spec import SliceSpec
    >>> model = ModelSpec("m", "binary", slices=(
    ...     SliceSpec("overall", "overall"),
    ...     SliceSpec("amount", "buckets", keys=("amount",), buckets=(0.0, 10.0))))
    >>> class B:
    ...     def __len__(self): return 3
    ...     def column(self, name): return np.array([-1.0, 5.0, np.nan])
    ...     def has_tag(self, tag): return np.zeros(3, bool)
    >>> [[s.labels[c] for c in s.codes] for s in SliceAssigner(model).assign(B())]
    [['overall', 'overall', 'overall'], ['amount=(-inf,0)', 'amount=[0,10)', 'amount=__missing__']]
    """

    def __init__(self, model: ModelSpec):
        self.model = model
        self.rules = [_RULES[s.kind](s) for s in model.slices]

    def assign(self, batch: SliceableBatch) -> list[SliceCodes]:
        """Slice codes of every slice spec, in spec order (a ``tags`` spec gives one per tag)."""
        return [codes for rule in self.rules for codes in rule.assign(batch)]

    def refresh(self) -> None:
        """Re-rank the admitted values of every ``feature_keys`` slice (at window close)."""
        for rule in self.rules:
            rule.refresh()

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state (admitted values, sketches, label lists) for checkpoints."""
        return {rule.spec.name: st for rule in self.rules if (st := rule.to_state())}

    @classmethod
    def from_state(cls, model: ModelSpec, state: dict[str, Any]) -> SliceAssigner:
        """Rebuild from :meth:`to_state`; slices no longer in the spec are ignored."""
        out = cls(model)
        for rule in out.rules:
            if rule.spec.name in state:
                rule.load_state(state[rule.spec.name])
        return out
