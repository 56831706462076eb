"""``slicewatch init --from SAMPLE``: a spec proposed from a sample of the user's records.

The sample (JSONL or CSV; the first :data:`SAMPLE_RECORDS` records) is flattened to dot
paths; each role is found by its usual names (``timestamp``, ``prediction.score``,
``label``…), features are the keys of a ``features`` mapping (or, in a flat record, every
other field), typed numeric when every value seen is a number, and a few slices are
proposed: overall, the categorical features with few values (and their cross), quantile
buckets of the first numeric feature, the tags. The text passes ``validate``; it is a
start, to be read and edited.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.ingest.file import detect_format
from slices.errors import SlicewatchError

SAMPLE_RECORDS = 2000
MAX_SLICE_VALUES = 20  # a categorical feature with more values is not proposed as a slice
MAX_FEATURES = 50

ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "time": ("timestamp", "time", "ts", "event_time", "event_ts", "created_at", "datetime"),
    "model": ("model", "model_name"),
    "version": ("model_version", "version"),
    "id": ("prediction_id", "request_id", "id", "uuid", "event_id"),
    "score": ("prediction.score", "score", "prediction.probability", "probability", "proba",
              "pred_score", "prediction.proba"),
    "pred_class": ("prediction.class", "predicted_class", "pred_class", "prediction.label"),
    "value": ("prediction.value", "predicted_value", "prediction", "pred", "predicted_price",
              "y_pred"),
    "label": ("label", "target", "ground_truth", "actual", "y", "y_true"),
    "tags": ("tags",),
    "outcome": ("outcome", "status"),
}
FEATURE_MAPS = ("features", "feature", "inputs", "x")


class InitError(SlicewatchError):
    """The sample cannot be read or has nothing a spec can be made of."""


def read_sample(path: str, limit: int = SAMPLE_RECORDS) -> list[dict[str, Any]]:
    """Up to ``limit`` records of ``path`` (JSONL or CSV) as nested dicts; lines that are
    not JSON objects are skipped."""
    fmt = detect_format(path) if not path.endswith(".json") else "jsonl"
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, nrows=limit)
            return [_unflatten(r) for r in frame.to_dict(orient="records")]
        if fmt != "jsonl":
            raise InitError(f"{path}: init reads JSONL or CSV samples, not {fmt}")
        records = []
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    r = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(r, dict):
                    records.append(r)
                if len(records) >= limit:
                    break
        return records
    except OSError as exc:
        raise InitError(f"cannot read sample {path}: {exc.strerror}") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InitError(f"cannot read sample {path}: {exc}") from None


def _unflatten(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        parts = str(key).split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[parts[-1]] = value
    return out


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of ``record`` by dot path (a list is a leaf).

    >>> flatten({"a": {"b": 1}, "c": [1, 2]})
    {'a.b': 1, 'c': [1, 2]}
    """
    out: dict[str, Any] = {}
    for k, v in record.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{path}."))
        else:
            out[path] = v
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _columns(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}
    for r in records:
        for k, v in flatten(r).items():
            cols.setdefault(k, []).append(v)
    return {k: [v for v in vs if v is not None] for k, vs in cols.items()}


def _pick(cols: dict[str, list[Any]], names: Iterable[str], ok=lambda vs: True) -> str | None:
    for name in names:
        if name in cols and cols[name] and ok(cols[name]):
            return name
    return None


def _numbers(vs: list[Any]) -> bool:
    return all(_is_number(v) for v in vs)


def _probabilities(vs: list[Any]) -> bool:
    return _numbers(vs) and all(0.0 <= v <= 1.0 for v in vs)


def _binary(vs: list[Any]) -> bool:
    return {str(v).lower() for v in vs} <= {"0", "1", "true", "false", "0.0", "1.0"}


def _times(vs: list[Any]) -> bool:
    if _numbers(vs):
        return all(1e8 < v < 1e14 for v in vs)
    if not all(isinstance(v, str) for v in vs):
        return False
    parsed = pd.to_datetime(pd.Series(vs[:50]), utc=True, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def infer(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The roles, task and features found in ``records`` (see the module docstring)."""
    if not records:
        raise InitError("the sample holds no JSON object or CSV row")
    cols = _columns(records)
    roles: dict[str, str] = {}
    checks = {"time": _times, "score": _probabilities, "value": _numbers,
              "model": lambda vs: all(isinstance(v, str) for v in vs),
              "tags": lambda vs: all(isinstance(v, list | str) for v in vs)}
    for role, names in ROLE_NAMES.items():
        found = _pick(cols, names, checks.get(role, lambda vs: True))
        if found is not None and found not in roles.values():
            roles[role] = found
    if "time" not in roles:
        raise InitError("no event time found in the sample (a field such as 'timestamp' "
                        "with RFC 3339 text or epoch seconds); slicewatch needs one")
    if "score" in roles and "value" in roles and roles["value"] == "prediction":
        del roles["value"]
    label = cols.get(roles.get("label", ""), [])
    if "pred_class" in roles and "score" not in roles:
        task = "multiclass"
    elif "score" in roles and (not label or _binary(label)):
        task = "binary"
    elif "value" in roles:
        task = "regression"
        roles.pop("score", None)
    elif "score" in roles:
        task = "binary"
    else:
        raise InitError("no prediction found in the sample (a score in [0, 1], a predicted "
                        "class or a predicted value, e.g. 'prediction.score')")
    feature_map = next((m for m in FEATURE_MAPS
                        if any(k.startswith(f"{m}.") for k in cols)), None)
    used = set(roles.values())
    if feature_map:
        names = {k[len(feature_map) + 1:]: k for k in cols if k.startswith(f"{feature_map}.")}
    else:
        names = {k.replace(".", "_"): k for k in cols
                 if k not in used and not isinstance((cols[k] or [None])[0], list)}
    features: dict[str, dict[str, Any]] = {}
    for name, path in sorted(names.items())[:MAX_FEATURES]:
        values = cols[path]
        if not values or any(isinstance(v, list | dict) for v in values):
            continue
        numeric = _numbers(values)
        features[name] = {"path": path, "type": "numeric" if numeric else "categorical",
                          "values": values}
    models = sorted({str(v) for v in cols.get(roles.get("model", ""), [])})
    tags: dict[str, int] = {}
    for v in cols.get(roles.get("tags", ""), []):
        for t in v if isinstance(v, list) else [v]:
            if isinstance(t, str) and t:
                tags[t] = tags.get(t, 0) + 1
    mapped = set(roles.values()) | {f["path"] for f in features.values()}
    unused = sorted(k for k in cols if k not in mapped and any(v != {} for v in cols[k])
                    and not (feature_map and k.startswith(f"{feature_map}.")))
    return {"roles": roles, "task": task, "feature_map": feature_map, "features": features,
            "models": models, "times": cols[roles["time"]],
            "tags": sorted(tags, key=lambda t: -tags[t])[:3], "unused": unused}


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML flow scalar


def _window(times: list[Any]) -> str:
    """A window that gives the sample's time span about 10 windows (1m … 1d)."""
    if _numbers(times):
        secs = np.asarray(times, dtype=float)
        secs = secs / 1000.0 if secs.max() > 1e11 else secs
    else:
        parsed = pd.to_datetime(pd.Series(times), utc=True, errors="coerce", format="mixed")
        secs = (parsed.dropna().astype("int64") / 1e9).to_numpy()
    span = float(secs.max() - secs.min()) if len(secs) else 0.0
    for label, size in (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600), ("6h", 21600)):
        if span / size <= 20:
            return label
    return "1d"


def _slices(info: dict[str, Any]) -> list[str]:
    lines = ["      - overall: true"]
    cats = sorted(((len(set(map(str, f["values"]))), name) for name, f in
                   info["features"].items() if f["type"] == "categorical"))
    cats = [name for n, name in cats if 2 <= n <= MAX_SLICE_VALUES][:2]
    for name in cats:
        lines.append(f"      - feature_keys: [{_q(name)}]")
    if len(cats) == 2:
        lines.append(f"      - feature_keys: [{_q(cats[0])}, {_q(cats[1])}]  # a cross")
    nums = [name for name, f in info["features"].items() if f["type"] == "numeric"]
    if nums:
        values = np.asarray(info["features"][nums[0]]["values"], dtype=float)
        edges = sorted(set(np.round(np.quantile(values, [0.25, 0.5, 0.75]), 6).tolist()))
        if len(edges) >= 2:
            lines.append(f"      - buckets: {{{_q(nums[0])}: {edges}}}  # quartiles of the "
                         "sample")
    if info["tags"]:
        lines.append(f"      - tags: [{', '.join(map(_q, info['tags']))}]  # one slice per tag")
    return lines


def _unmapped(info: dict[str, Any]) -> list[str]:
    """Comments under ``schema:``: a label not found, and the sample's fields that no role
    or feature reads (a label under another name is the usual one)."""
    lines = []
    if "label" not in info["roles"]:
        lines.append(f"  # no label found (tried {', '.join(ROLE_NAMES['label'])}): add "
                     "`label: PATH` for the metrics that need ground truth")
    if info.get("unused"):
        names = info["unused"][:10]
        more = f" and {len(info['unused']) - 10} more" if len(info["unused"]) > 10 else ""
        lines.append(f"  # fields not read: {', '.join(names)}{more} (a label? set `label:`; "
                     "a feature? add it to `feature_paths:`)")
    return lines


def render_spec(info: dict[str, Any], sample: str, *, model: str | None = None,
                spec_dir: str = ".") -> str:
    """The proposed spec as commented YAML (``source.path`` relative to ``spec_dir``, where
    the spec will be: spec paths are read relative to the spec file)."""
    roles, task = info["roles"], info["task"]
    name = model or (info["models"][0] if len(info["models"]) == 1 else "my_model")
    fmt = detect_format(sample) if not sample.endswith(".json") else "jsonl"
    out = ["# slicewatch spec proposed by `slicewatch init` — read it, then: slicewatch "
           "validate -c THIS_FILE", "version: 1", "", "schema:  # dot paths into your records"]
    for role in ("time", "model", "version", "id", "score", "pred_class", "value", "label",
                 "tags", "outcome"):
        if role in roles:
            out.append(f"  {'class' if role == 'pred_class' else role}: {_q(roles[role])}")
    if info["feature_map"]:
        out.append(f"  features: {_q(info['feature_map'])}")
    else:
        out.append("  feature_paths:  # flat records: each feature at its own path")
        out.extend(f"    {_q(n)}: {_q(f['path'])}" for n, f in info["features"].items())
    out += _unmapped(info)
    path = os.path.relpath(os.path.abspath(sample), os.path.abspath(spec_dir))
    out += ["", "source:", "  type: file", f"  path: {_q(path)}",
            *([f"  format: {fmt}"] if fmt == "csv" else []),
            "  dead_letter: slicewatch-dead-letter.jsonl", "",
            "server:", "  listen: 127.0.0.1:9108", "", "models:", f"  - name: {_q(name)}",
            f"    task: {task}"]
    if task == "binary":
        out.append("    threshold: 0.5")
    out += [f"    window: {_window(info['times'])}", "    allowed_lateness: 1m"]
    if info["features"]:
        out.append("    features:")
        out.extend(f"      {_q(n)}: {f['type']}" for n, f in info["features"].items())
    out += ["    slices:", *_slices(info)]
    out += ["    # drift against a reference: build one with `slicewatch baseline build`,",
            "    # then uncomment:", "    # drift:", "    #   profile: profile.json", ""]
    return "\n".join(out)


def propose_spec(sample: str, *, model: str | None = None, spec_dir: str = ".") -> str:
    """``slicewatch init``: the spec text proposed for ``sample`` (to be saved in
    ``spec_dir``)."""
    return render_spec(infer(read_sample(sample)), sample, model=model, spec_dir=spec_dir)
