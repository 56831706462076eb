"""The shape, types and ranges of a parsed profile, checked once where it is read.

:func:`check_profile` walks the JSON of :meth:`monitor.drift.profile.Profile.to_dict` and
raises :class:`ProfileError` naming the first value out of place by its JSON path
(``overall.summaries.amount.counts[3]``). What it accepts builds and runs: every field the
daemon reads later is present, of its type, finite and in range, and every array has the
length the others fix (counts = edges + 1, a slice's bins = the overall's, the PCA
components d wide…). Extra keys are ignored.

>>> check_profile({"format_version": 1, "model": "m", "task": "binary",
...                "overall": {"task": "binary", "summaries": []}})
Traceback (most recent call last):
    ...
monitor.drift.errors.ProfileError: overall.summaries: expected an object, got a list
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from monitor.drift.errors import ProfileError
from slices.spec import MISSING, OTHER

TASKS = ("binary", "multiclass", "regression")
MAX_COUNT = 2 ** 53  # integers beyond are not exact as JSON numbers (nor as float64)
MAX = float(np.finfo(np.float64).max)  # the finite numbers' bound
MAX_SAMPLE = 10_000_000  # a reservoir larger than this is not one slicewatch wrote

Path = tuple[str | int, ...]


def where(path: Path) -> str:
    """``("overall", "summaries", "x", "counts", 3)`` → ``overall.summaries.x.counts[3]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _fail(path: Path, message: str) -> ProfileError:
    return ProfileError(f"{where(path)}: {message}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             type(None): "null", int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def obj(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"expected an object, got {_kind(value)}")
    return value


def field(parent: dict[str, Any], key: str, path: Path) -> Any:
    if key not in parent:
        raise _fail((*path, key), f"missing the field {key!r}")
    return parent[key]


def text(value: Any, path: Path) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"expected a string, got {_kind(value)}")
    return value


def number(value: Any, path: Path, *, low: float = -math.inf, nullable: bool = False
           ) -> float | None:
    """A finite JSON number ``>= low`` (``null`` when ``nullable``)."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"expected a number, got {_kind(value)}")
    try:
        v = float(value)
    except OverflowError:
        raise _fail(path, f"number {value} is out of range") from None
    if not math.isfinite(v):
        raise _fail(path, f"expected a finite number, got {value}")
    if v < low:
        raise _fail(path, f"expected a number >= {low:g}, got {value}")
    return v


def count(value: Any, path: Path, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """An integer in ``[low, high]`` (an integral float such as ``3.0`` is one)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise _fail(path, f"expected an integer in [{low}, {high}], got {value}")
    return value


def array(value: Any, path: Path, item: Callable[[Any, Path], Any], *,
          length: int | None = None, min_length: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, f"expected a list, got {_kind(value)}")
    if length is not None and len(value) != length:
        raise _fail(path, f"expected {length} values, got {len(value)}")
    if len(value) < min_length:
        raise _fail(path, f"expected at least {min_length} values, got {len(value)}")
    return [item(v, (*path, i)) for i, v in enumerate(value)]


def numbers(value: Any, path: Path, item: Callable[[Any, Path], Any], *,
            low: float = -math.inf, high: float = math.inf, integral: bool = False,
            length: int | None = None, min_length: int = 0) -> list[Any]:
    """:func:`array` of numbers each accepted by ``item``, checked at once where all are
    JSON numbers in ``[low, high]`` (integral when ``integral``): a profile's reservoirs and
    bins are most of its values, and one Python call per value cost ~5× the parse. Any
    other list is walked value by value, which locates the first one out of place."""
    if isinstance(value, list) and (length is None or len(value) == length) \
            and len(value) >= min_length and set(map(type, value)) <= {int, float}:
        try:
            x = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: located below
            x = None
        if x is not None and bool(np.all((x >= low) & (x <= high))) and \
                (not integral or bool(np.all(np.floor(x) == x))):
            return value  # >= and <= are False for NaN; ±inf is beyond any finite bound
    return array(value, path, item, length=length, min_length=min_length)


def _finite(v: Any, p: Path) -> float:
    return number(v, p)  # type: ignore[return-value]


def _increasing(values: list[float], path: Path, *, strict: bool = True) -> None:
    with np.errstate(over="ignore"):  # ±1.8e308 apart: inf, still > 0
        diff = np.diff(np.asarray(values, dtype=np.float64))
    if bool(np.all(diff > 0 if strict else diff >= 0)):
        return
    for i in range(1, len(values)):
        if values[i] < values[i - 1] or (strict and values[i] == values[i - 1]):
            raise _fail((*path, i), f"values must be {'strictly ' if strict else ''}"
                                    f"increasing ({values[i - 1]} then {values[i]})")


def check_profile(data: Any) -> None:
    """Raise :class:`ProfileError` (with the JSON path) unless ``data`` is a profile
    slicewatch can load and run with (the ``format_version`` is checked by the caller)."""
    top = obj(data, ())
    text(field(top, "model", ()), ("model",))
    task = text(field(top, "task", ()), ("task",))
    if task not in TASKS:
        raise _fail(("task",), f"expected one of {', '.join(TASKS)}, got {task!r}")
    for key in ("model_version",):
        if top.get(key) is not None:
            text(top[key], (key,))
    for key in ("created", "source"):
        if key in top:
            text(top[key], (key,))
    overall = _feature_summaries(field(top, "overall", ()), ("overall",), task)
    slices = obj(top.get("slices", {}), ("slices",))
    for key, state in slices.items():
        path = ("slices", key)
        summaries = _feature_summaries(state, path, task)
        for name, s in summaries.items():
            ref = overall.get(name)
            if ref is None:
                raise _fail((*path, "summaries", name), "a feature the overall reference "
                                                        "does not have")
            if not _same_bins(ref, s):
                raise _fail((*path, "summaries", name), "its bins differ from the overall "
                                                        "reference's")
    metrics = obj(top.get("metrics", {}), ("metrics",))
    for key, values in metrics.items():
        for name, v in obj(values, ("metrics", key)).items():
            number(v, ("metrics", key, name))
    if top.get("multivariate") is not None:
        _multivariate(top["multivariate"], ("multivariate",))
    if top.get("calibration") is not None:
        _calibration(top["calibration"], ("calibration",))


def _same_bins(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["kind"] != b["kind"]:
        return False
    key = "edges" if a["kind"] == "numeric" else "vocabulary"
    return [float(v) if a["kind"] == "numeric" else v for v in a[key]] == \
        [float(v) if b["kind"] == "numeric" else v for v in b[key]]


def _feature_summaries(value: Any, path: Path, task: str) -> dict[str, dict[str, Any]]:
    state = obj(value, path)
    own = text(field(state, "task", path), (*path, "task"))
    if own != task:
        raise _fail((*path, "task"), f"expected {task!r} (the profile's task), got {own!r}")
    summaries = obj(field(state, "summaries", path), (*path, "summaries"))
    for name, s in summaries.items():
        _summary(s, (*path, "summaries", name))
    return summaries


def _summary(value: Any, path: Path) -> None:
    s = obj(value, path)
    kind = field(s, "kind", path)
    if kind == "numeric":
        _numeric(s, path)
    elif kind == "categorical":
        _categorical(s, path)
    else:
        raise _fail((*path, "kind"), f"expected 'numeric' or 'categorical', got {kind!r}")


def _numeric(s: dict[str, Any], path: Path) -> None:
    edges = numbers(field(s, "edges", path), (*path, "edges"), _finite, low=-MAX, high=MAX)
    _increasing(edges, (*path, "edges"))
    numbers(field(s, "counts", path), (*path, "counts"), count, low=0, high=MAX_COUNT,
            integral=True, length=len(edges) + 1)
    for key in ("missing", "nonfinite", "mismatches"):
        count(field(s, key, path), (*path, key))
    n = count(field(s, "n", path), (*path, "n"))
    number(field(s, "mean", path), (*path, "mean"))
    number(field(s, "m2", path), (*path, "m2"), low=0.0, nullable=True)  # null: beyond float64
    lo = number(field(s, "min", path), (*path, "min"), nullable=not n)
    hi = number(field(s, "max", path), (*path, "max"), nullable=not n)
    if lo is not None and hi is not None and lo > hi:
        raise _fail((*path, "min"), f"min {lo} is above max {hi}")
    _reservoir(field(s, "reservoir", path), (*path, "reservoir"))


def _reservoir(value: Any, path: Path) -> None:
    r = obj(value, path)
    k = count(field(r, "k", path), (*path, "k"), low=1, high=MAX_SAMPLE)
    n = count(field(r, "n", path), (*path, "n"))
    held = min(k, n) if not r.get("thinned") else None
    values = numbers(field(r, "values", path), (*path, "values"), _finite, low=-MAX,
                     high=MAX, length=held)
    if len(values) > k:
        raise _fail((*path, "values"), f"{len(values)} values for k={k}")
    if "keys" in r:
        numbers(r["keys"], (*path, "keys"), _share, low=0.0, high=1.0, length=len(values))
    _rng(field(r, "rng", path), (*path, "rng"))


def _rng(value: Any, path: Path) -> None:
    rng = obj(value, path)
    if "seed" in rng:
        seed = rng["seed"]
        if isinstance(seed, list):
            array(seed, (*path, "seed"), lambda v, p: count(v, p, high=2 ** 63),
                  min_length=1)
        else:
            count(seed, (*path, "seed"), high=2 ** 63)
        return
    if field(rng, "bit_generator", path) != "PCG64":
        raise _fail((*path, "bit_generator"), f"expected 'PCG64', got {rng['bit_generator']!r}")
    state = obj(field(rng, "state", path), (*path, "state"))
    for key in ("state", "inc"):
        v = text(field(state, key, (*path, "state")), (*path, "state", key))
        if not v.isdigit() or int(v) >= 2 ** 128:
            raise _fail((*path, "state", key), "expected a 128-bit unsigned integer as "
                                               "decimal digits")
    count(field(rng, "has_uint32", path), (*path, "has_uint32"), high=1)
    count(field(rng, "uinteger", path), (*path, "uinteger"), high=2 ** 32 - 1)


def _categorical(s: dict[str, Any], path: Path) -> None:
    vocab = array(field(s, "vocabulary", path), (*path, "vocabulary"), text)
    seen: set[str] = set()
    for i, v in enumerate(vocab):
        if v in seen or v in (OTHER, MISSING):
            raise _fail((*path, "vocabulary", i), f"{v!r} is a duplicate or reserved value")
        seen.add(v)
    numbers(field(s, "counts", path), (*path, "counts"), count, low=0, high=MAX_COUNT,
            integral=True, length=len(vocab) + 1)
    for key in ("missing", "mismatches"):
        count(field(s, key, path), (*path, key))


def _share(value: Any, path: Path) -> float:
    v = number(value, path)
    if not 0.0 <= v <= 1.0:  # type: ignore[operator]
        raise _fail(path, f"expected a share in [0, 1], got {value}")
    return v  # type: ignore[return-value]


def _unit_entry(value: Any, path: Path) -> float:
    """An entry of an orthonormal row (a principal axis): within [-1, 1]."""
    v = number(value, path)
    if not abs(v) <= 1.0 + 1e-9:  # type: ignore[arg-type]
        raise _fail(path, f"expected a principal axis entry in [-1, 1], got {value}")
    return v  # type: ignore[return-value]


def _band(value: Any, path: Path) -> None:
    band = array(value, path, _finite, length=3)
    if band[1] < 0:
        raise _fail((*path, 1), f"expected a spread >= 0, got {band[1]}")
    count(value[2], (*path, 2), low=1)


def _multivariate(value: Any, path: Path) -> None:
    m = obj(value, path)
    features = obj(field(m, "features", path), (*path, "features"))
    d = len(features)
    if d < 2:
        raise _fail((*path, "features"), f"expected at least 2 features, got {d}")
    for name, table in features.items():
        fpath = (*path, "features", name)
        if table is None:
            continue
        pair = array(table, fpath, lambda v, p: v, length=2)
        vocab = array(pair[0], (*fpath, 0), text)
        array(pair[1], (*fpath, 1), _share, length=len(vocab) + 1)
    for key in ("impute", "center"):
        array(field(m, key, path), (*path, key), _finite, length=d)
    for i, v in enumerate(array(field(m, "scale", path), (*path, "scale"), _finite, length=d)):
        if v <= 0:
            raise _fail((*path, "scale", i), f"expected a scale > 0, got {v}")
    comps = array(field(m, "components", path), (*path, "components"),
                  lambda row, p: array(row, p, _unit_entry, length=d), min_length=1)
    if len(comps) > d:
        raise _fail((*path, "components"), f"expected at most {d} components, got {len(comps)}")
    array(field(m, "explained", path), (*path, "explained"), _share, length=len(comps))
    if field(m, "band", path) is not None:
        _band(m["band"], (*path, "band"))
    bands = obj(field(m, "slice_bands", path), (*path, "slice_bands"))
    for key, band in bands.items():
        _band(band, (*path, "slice_bands", key))


def _calibration(value: Any, path: Path) -> None:
    c = obj(value, path)
    x = numbers(field(c, "x", path), (*path, "x"), _finite, low=-MAX, high=MAX, min_length=1)
    _increasing(x, (*path, "x"))
    numbers(field(c, "y", path), (*path, "y"), _share, low=0.0, high=1.0, length=len(x))
