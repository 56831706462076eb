"""The ``discovery:`` block of a model (issue 17) → :class:`~slices.spec.DiscoverySpec`.

>>> from slices.load import load_spec_text
>>> spec = load_spec_text('''
... models:
...   - name: fraud
...     task: binary
...     features: {country: categorical, amount: numeric}
...     slices: [{overall: true}, {buckets: {amount: [0, 100]}}]
...     discovery: {top_k: 3}
... ''')
>>> d = spec.models[0].discovery
>>> d.enabled, d.features, d.buckets, d.error, d.top_k
(True, ('country', 'amount'), {'amount': (0.0, 100.0)}, 'misclassification', 3)
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from slices import vocab
from slices.spec import DiscoverySpec, FeatureSpec, SliceSpec
from slices.yamlpos import Path

DISCOVERY_KEYS = ("enabled", "features", "buckets", "error", "max_level", "min_support",
                  "top_k", "horizon", "fdr", "alpha", "max_values")
MAX_FEATURES = 16  # candidate features: level-2 state grows with their pairs
MAX_TOP_K = 50  # discovered slices exported per model × version (a label-set bound)


def parse_discovery(loader: Any, path: Path, v: Any, task: str | None,
                    declared: dict[str, FeatureSpec] | None,
                    slices: tuple[SliceSpec, ...] | None) -> DiscoverySpec | None:
    """Validate ``v`` with ``loader`` (a ``slices.load._Loader``); None after a problem."""
    if v is None:
        return DiscoverySpec()
    if loader.c.mapping(path, v, DISCOVERY_KEYS) is None:
        return None
    kw: dict[str, Any] = {"enabled": True}
    ints = {"max_level": (1, 2), "min_support": (1, None), "top_k": (1, MAX_TOP_K),
            "horizon": (0, 1000), "max_values": (1, 1000)}
    for key, (lo, hi) in ints.items():
        if key in v:
            kw[key] = loader.int_((*path, key), v[key], lo=lo, hi=hi)
    if "enabled" in v:
        kw["enabled"] = loader.bool_((*path, "enabled"), v["enabled"])
    if "fdr" in v:
        kw["fdr"] = loader.number((*path, "fdr"), v["fdr"], 0.0, 1.0, True, True)
    if "alpha" in v:
        kw["alpha"] = loader.number((*path, "alpha"), v["alpha"], 0.0, 1.0, True, False)
    if task in vocab.DISCOVERY_ERRORS:
        errors = vocab.DISCOVERY_ERRORS[task]
        kw["error"] = loader.choice((*path, "error"), v["error"], errors) if "error" in v \
            else errors[0]
    buckets = _buckets(loader, (*path, "buckets"), v.get("buckets", {}), declared, slices)
    kw["buckets"] = buckets
    kw["features"] = _features(loader, path, v, declared, buckets)
    if slices is not None and kw.get("enabled") and not any(s.kind == "overall"
                                                           for s in slices):
        loader.error(path, "discovery compares slices with their whole window: add the "
                           "'- overall: true' slice to this model's slices", at_key=True)
        return None
    if any(x is None for x in kw.values()):
        return None
    return DiscoverySpec(**kw)


def _buckets(loader: Any, path: Path, v: Any, declared: dict[str, FeatureSpec] | None,
             slices: tuple[SliceSpec, ...] | None) -> dict[str, tuple[float, ...]] | None:
    """Edges per numeric feature: those given here, else those of the declared bucket
    slices."""
    out = {s.keys[0]: tuple(s.buckets) for s in slices or () if s.kind == "buckets"}
    if not isinstance(v, dict):
        loader.error(path, f"buckets must be a mapping of feature → edges; got "
                           f"{type(v).__name__}")
        return None
    ok = True
    for name, edges in v.items():
        if not loader.declared_feature((*path, name), str(name), declared, numeric=True,
                                       at_key=True):
            ok = False
            continue
        good = (isinstance(edges, list) and 0 < len(edges) <= 64
                and all(isinstance(e, int | float) and not isinstance(e, bool)
                        and math.isfinite(e) for e in edges)
                and all(a < b for a, b in pairwise(edges)))
        if not good:
            loader.error((*path, name), f"{name} edges must be 1 to 64 increasing finite "
                                        f"numbers; got {edges!r}")
            ok = False
            continue
        out[str(name)] = tuple(float(e) for e in edges)
    return out if ok else None


def _features(loader: Any, path: Path, v: dict, declared: dict[str, FeatureSpec] | None,
              buckets: dict[str, tuple[float, ...]] | None) -> tuple[str, ...] | None:
    """The candidate features: given, or the declared categorical features and the numeric
    ones with bucket edges."""
    bucketed = buckets or {}
    if "features" not in v:
        names = tuple(n for n, f in (declared or {}).items()
                      if f.type == "categorical" or n in bucketed)
    else:
        names = loader.str_list((*path, "features"), v["features"])
        if names is None:
            return None
        for i, name in enumerate(names):
            where = (*path, "features", i)
            if not loader.declared_feature(where, name, declared):
                return None
            feature = (declared or {}).get(name)
            if feature is not None and feature.type == "numeric" and name not in bucketed:
                loader.error(where, f"numeric feature {name!r} needs bucket edges: give "
                                    f"'buckets: {{{name}: [...]}}' in discovery or declare a "
                                    f"buckets slice on it")
                return None
    if not names:
        loader.error(path, "discovery needs candidate features: declare categorical features "
                           "or list 'features'", at_key=True)
        return None
    if len(names) > MAX_FEATURES:
        loader.error((*path, "features"), f"discovery takes at most {MAX_FEATURES} features; "
                                          f"got {len(names)}")
        return None
    return names
