"""YAML spec → validated :class:`~slices.spec.Spec`, reporting every problem at once.

Each problem reads ``file:line:column: path: message``, e.g.::

    fraud.yaml:14:15: models[0].slices[2].where: unexpected token ')'

>>> spec = load_spec_text("models:\\n  - name: fraud\\n    task: binary\\n")
>>> spec.models[0].name, spec.models[0].window.size, spec.models[0].slices[0].name
('fraud', 300.0, 'overall')
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any, get_args

from slices import vocab
from slices.alerting import AlertingSpec
from slices.durations import parse_duration, parse_window
from slices.errors import PredicateSyntaxError, Problem
from slices.load_alerting import parse_alerting
from slices.load_discovery import parse_discovery
from slices.predicate import (
    ORDERING,
    Between,
    Compare,
    Expr,
    InSet,
    canon,
    parse_predicate,
)
from slices.spec import (
    CompareSpec,
    DriftSpec,
    FeatureSpec,
    FeatureType,
    ModelSpec,
    SchemaSpec,
    ServerSpec,
    SliceKind,
    SliceSpec,
    SourceSpec,
    Spec,
    Task,
    WindowSpec,
)
from slices.yamlpos import (
    Checker,
    Document,
    Path,
    load_text,
    read_text,
    render_path,
    type_name,
)

ALERTING_KEYS = ("alerts", "receivers", "route", "inhibit_rules")
TOP_KEYS = ("version", "schema", "source", "server", "checkpoint", "models", *ALERTING_KEYS)
TASKS: tuple[str, ...] = get_args(Task)
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)
SLICE_KINDS: tuple[str, ...] = get_args(SliceKind)
SLICE_COMMON = ("name", "critical", "max_values", "min_size")
MODEL_KEYS = ("name", "task", "threshold", "positive_label", "window", "allowed_lateness",
              "label_delay", "calibration_bins", "classes", "metrics", "features", "slices",
              "drift", "schema", "max_versions", "discovery", "confidence", "compare")
CONFIDENCE_KEYS = ("level", "bootstrap_replicates")
COMPARE_KEYS = ("baseline", "candidate", "paired")
DRIFT_KEYS = ("enabled", "profile", "rolling_windows", "fdr", "per_slice", "prediction",
              "label", "features", "concept", "multivariate")
FEATURE_KEYS = ("type", "test", "threshold", "min_samples")
SOURCE_KEYS = ("type", "path", "format", "follow", "batch_size", "labels", "dead_letter",
               "kafka", "max_future", "max_record_bytes", "dead_letter_max_bytes")
SERVER_KEYS = ("listen", "stale_after_windows", "max_series", "max_series_per_family")
SCHEMA_FIELDS = {"model": "model", "version": "version", "id": "id", "time": "time",
                 "features": "features", "score": "score", "class": "pred_class",
                 "value": "value", "label": "label", "tags": "tags", "outcome": "outcome"}
LABEL_RECORD_FIELDS = {"id": "label_id", "label": "label_value", "time": "label_time"}
TASK_ONLY = {"threshold": "binary", "positive_label": "binary", "calibration_bins": "binary",
             "classes": "multiclass"}


def load_spec(path: str, probe: Probe | None = None) -> Spec:
    """Load and validate a spec file; raises :class:`SpecError` listing every problem.

    Relative file paths in the spec (source paths and labels, dead letter, checkpoint, drift
    profiles) are relative to the spec file's directory, so it runs from anywhere. ``probe``
    adds the checks that need the runtime (see :data:`Probe`); its problems are reported with
    the others.
    """
    return load_spec_text(read_text(path), path, probe=probe,
                          base=os.path.dirname(os.path.abspath(path)))


def resolve_paths(spec: Spec, base: str) -> Spec:
    """``spec`` with its relative file paths joined to ``base`` (``-`` = stdin stays)."""
    def at(p: str | None) -> str | None:
        if p is None or p == "-" or os.path.isabs(p):
            return p
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    source = replace(spec.source, paths=tuple(at(p) for p in spec.source.paths),
                     labels=tuple(at(p) for p in spec.source.labels),
                     dead_letter=at(spec.source.dead_letter))
    models = tuple(replace(m, drift=replace(m.drift, profile=at(m.drift.profile)))
                   for m in spec.models)
    return replace(spec, source=source, models=models, checkpoint=at(spec.checkpoint))


def load_spec_text(text: str, file: str = "<spec>", probe: Probe | None = None,
                   base: str | None = None) -> Spec:
    """Validate spec YAML ``text`` (``file`` names it in problems; relative paths are joined
    to ``base`` when given)."""
    doc = load_text(text, file)
    return _Loader(doc, text).spec(probe, base)


class Report:
    """Where a :data:`Probe` reports: problems at YAML paths, located like the loader's own."""

    def __init__(self, checker: Checker, model_paths: dict[str, Path]):
        self._checker = checker
        self._models = model_paths

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self._checker.error(path, message, at_key=at_key)

    def warn(self, path: Path, message: str) -> None:
        """A warning at ``path``: printed, the spec stays valid."""
        self._checker.warn(path, message)

    def model(self, name: str) -> Path:
        """The YAML path of the model called ``name``."""
        return self._models[name]


# Checks that need more than the spec text — files (drift profiles), River (detector
# parameters), librdkafka (setting names), name resolution (server.listen) — live outside
# ``slices/`` (``monitor.runtime.preflight``) and are passed in. They see the spec as far as it
# loaded (models with problems are left out), with paths resolved.
Probe = Callable[[Spec, Report], None]


def _got(value: Any) -> str:
    return type_name(value) if isinstance(value, dict | list) or value is None else repr(value)


def _hint(word: Any, choices: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def _mean(word: Any, choices: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _quoted(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(repr(i) for i in items)


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{lo_s}, {hi_s}{right}"


class _Loader:
    """Walks the document once; every ``_x`` method returns a value or None after a problem."""

    def __init__(self, doc: Document, text: str):
        self.doc = doc
        self.c = Checker(doc)
        self.lines = text.splitlines()
        self.model_paths: dict[str, Path] = {}

    # ------------------------------------------------------------------ scalars

    def error(self, path: Path, message: str, at_key: bool = False) -> None:
        self.c.error(path, message, at_key=at_key)

    def _name(self, path: Path) -> str:
        return str(next((p for p in reversed(path) if isinstance(p, str)), "value"))

    def str_(self, path: Path, v: Any, what: str = "a non-empty string") -> str | None:
        if isinstance(v, str) and v.strip():
            return v
        self.error(path, f"{self._name(path)} must be {what}; got {_got(v)}")
        return None

    def bool_(self, path: Path, v: Any) -> bool | None:
        if isinstance(v, bool):
            return v
        self.error(path, f"{self._name(path)} must be true or false; got {_got(v)}")
        return None

    def int_(self, path: Path, v: Any, lo: int | None = None, hi: int | None = None) -> int | None:
        ok = isinstance(v, int) and not isinstance(v, bool)
        if ok and (lo is None or v >= lo) and (hi is None or v <= hi):
            return v
        bound = (f" in [{lo}, {hi}]" if hi is not None else f" >= {lo}") if lo is not None else ""
        self.error(path, f"{self._name(path)} must be an integer{bound}; got {_got(v)}")
        return None

    def number(self, path: Path, v: Any, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if ok and (lo is None or v > lo or (v == lo and not lo_open)) and (
                hi is None or v < hi or (v == hi and not hi_open)):
            return float(v)
        rng = "" if lo is None and hi is None else " in " + _interval(lo, hi, lo_open, hi_open)
        self.error(path, f"{self._name(path)} must be a number{rng}; got {_got(v)}")
        return None

    def choice(self, path: Path, v: Any, choices: tuple[str, ...]) -> str | None:
        if isinstance(v, str) and v in choices:
            return v
        self.error(path, f"{self._name(path)} must be one of {_quoted(choices)}; "
                         f"got {_got(v)}{_mean(v, choices)}")
        return None

    def duration(self, path: Path, v: Any) -> float | None:
        try:
            return parse_duration(v)
        except ValueError:
            self.error(path, f"{self._name(path)} must be a duration such as '30s', '5m' or "
                             f"'1h30m' (units ms, s, m, h, d, w); got {_got(v)}")
            return None

    def path_(self, path: Path, v: Any) -> str | None:
        if isinstance(v, str) and v and all(part.strip() for part in v.split(".")):
            return v
        self.error(path, f"{self._name(path)} must be a dot path such as 'prediction.score'; "
                         f"got {_got(v)}")
        return None

    def str_list(self, path: Path, v: Any, scalar_ok: bool = False,
                 empty_ok: bool = False) -> tuple[str, ...] | None:
        if scalar_ok and isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or (not v and not empty_ok):
            what = "a string or a list of strings" if scalar_ok else "a non-empty list of strings"
            self.error(path, f"{self._name(path)} must be {what}; got {_got(v)}")
            return None
        out, ok = [], True
        for i, item in enumerate(v):
            if not isinstance(item, str) or not item:
                self.error((*path, i), f"{self._name(path)} items must be non-empty strings; "
                                       f"got {_got(item)}")
                ok = False
            elif item in out:
                self.error((*path, i), f"duplicate {item!r} in {self._name(path)}")
                ok = False
            else:
                out.append(item)
        return tuple(out) if ok else None

    # ------------------------------------------------------------------ top level

    def spec(self, probe: Probe | None = None, base: str | None = None) -> Spec:
        data = self.doc.data
        if not isinstance(data, dict):
            what = "an empty document" if data is None else type_name(data)
            self.error((), f"a spec must be a mapping with a 'models' list; got {what}")
            self.c.raise_if_any()
        self.c.mapping((), data, TOP_KEYS, required=("models",))
        if "version" in data and (data["version"] != 1 or isinstance(data["version"], bool)):
            self.error(("version",), f"version must be 1; got {_got(data['version'])}")
        schema = self.schema(("schema",), data.get("schema"), SchemaSpec())
        source = self.source(("source",), data.get("source"))
        server = self.server(("server",), data.get("server"))
        checkpoint = None
        if data.get("checkpoint") is not None:
            checkpoint = self.str_(("checkpoint",), data["checkpoint"], "a file path")
        if source is not None and source.type == "kafka" and checkpoint is None:
            self.error(("source", "type"), "a kafka source needs a checkpoint database: set "
                       "'checkpoint: PATH' in the spec (offsets and window state are saved there)")
        models = self.models(("models",), data.get("models"), schema) if "models" in data else ()
        alerting = self.alerting(data, models)
        if alerting is not None:
            models = with_rule_comparisons(models, alerting)
        spec = Spec(file=self.doc.file, models=models, schema=schema,
                    source=source or SourceSpec(), server=server or ServerSpec(),
                    checkpoint=checkpoint, alerting=alerting,
                    warnings=tuple(sorted(self.c.warnings)))
        if base is not None:
            spec = resolve_paths(spec, base)
        if probe is not None:
            probe(spec, Report(self.c, self.model_paths))
            spec = replace(spec, warnings=tuple(sorted(self.c.warnings)))
        self.c.raise_if_any()
        return spec

    def alerting(self, data: dict, models: tuple[ModelSpec, ...]) -> AlertingSpec | None:
        """The alerting sections, parsed, when any of them is present; else None."""
        if not any(key in data for key in ALERTING_KEYS):
            return None
        return parse_alerting(self.c, data, models)

    def schema(self, path: Path, v: Any, base: SchemaSpec) -> SchemaSpec:
        if v is None:
            return base
        allowed = (*SCHEMA_FIELDS, "feature_paths", "label_record")
        if self.c.mapping(path, v, allowed) is None:
            return base
        kw: dict[str, Any] = {}
        for key, attr in SCHEMA_FIELDS.items():
            if key in v and (p := self.path_((*path, key), v[key])) is not None:
                kw[attr] = p
        if "feature_paths" in v:
            fp = v["feature_paths"]
            if self.c.mapping((*path, "feature_paths"), fp, list(fp) if isinstance(fp, dict)
                              else ()) is not None:
                paths = {str(k): self.path_((*path, "feature_paths", k), p)
                         for k, p in fp.items()}
                kw["feature_paths"] = {**base.feature_paths,
                                       **{k: p for k, p in paths.items() if p}}
        if "label_record" in v:
            lr = v["label_record"]
            if self.c.mapping((*path, "label_record"), lr, LABEL_RECORD_FIELDS) is not None:
                for key, attr in LABEL_RECORD_FIELDS.items():
                    if key in lr and (p := self.path_((*path, "label_record", key),
                                                      lr[key])) is not None:
                        kw[attr] = p
        return replace(base, **kw)

    def source(self, path: Path, v: Any) -> SourceSpec | None:
        if v is None or self.c.mapping(path, v, SOURCE_KEYS) is None:
            return None
        kw: dict[str, Any] = {}
        checks = {
            "type": lambda p, x: self.choice(p, x, ("file", "stdin", "kafka")),
            "path": lambda p, x: self.str_list(p, x, scalar_ok=True),
            "format": lambda p, x: self.choice(p, x, ("auto", "jsonl", "csv", "parquet")),
            "follow": self.bool_,
            "batch_size": lambda p, x: self.int_(p, x, lo=1),
            "labels": lambda p, x: self.str_list(p, x, scalar_ok=True, empty_ok=True),
            "dead_letter": lambda p, x: self.str_(p, x, "a file path"),
            "kafka": lambda p, x: x if self.c.mapping(p, x, list(x) if isinstance(x, dict)
                                                      else ()) is not None else None,
            "max_future": self.positive_duration,
            "max_record_bytes": lambda p, x: self.int_(p, x, lo=64, hi=1 << 30),
            "dead_letter_max_bytes": lambda p, x: self.int_(p, x, lo=4096),
        }
        for key, check in checks.items():
            if key in v and (value := check((*path, key), v[key])) is not None:
                kw["paths" if key == "path" else key] = value
        record = kw.get("max_record_bytes", SourceSpec.max_record_bytes)
        if kw.get("dead_letter_max_bytes", record) < record:
            self.error((*path, "dead_letter_max_bytes"), "dead_letter_max_bytes must be at "
                       f"least max_record_bytes ({record}); got {kw['dead_letter_max_bytes']}")
        return SourceSpec(**kw)

    def positive_duration(self, path: Path, v: Any) -> float | None:
        seconds = self.duration(path, v)
        if seconds is not None and seconds <= 0:
            self.error(path, f"{self._name(path)} must be a duration above zero such as '1h'; "
                             f"got {_got(v)}")
            return None
        return seconds

    def server(self, path: Path, v: Any) -> ServerSpec | None:
        if v is None or self.c.mapping(path, v, SERVER_KEYS) is None:
            return None
        kw: dict[str, Any] = {}
        if "listen" in v:
            listen = v["listen"]
            host, _, port = str(listen).rpartition(":")
            if (isinstance(listen, str) and host and port.isdigit()
                    and 0 <= int(port) <= 65535):
                kw["listen"] = listen
            else:
                self.error((*path, "listen"), f"listen must be 'host:port' with a port in "
                                              f"[0, 65535]; got {_got(listen)}")
        for key in ("stale_after_windows", "max_series", "max_series_per_family"):
            if key in v and (n := self.int_((*path, key), v[key], lo=1)) is not None:
                kw[key] = n
        return ServerSpec(**kw)

    # ------------------------------------------------------------------ models

    def models(self, path: Path, v: Any, schema: SchemaSpec) -> tuple[ModelSpec, ...]:
        if not isinstance(v, list) or not v:
            self.error(path, f"models must be a non-empty list of models; got {_got(v)}")
            return ()
        out: list[ModelSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(v):
            name = item.get("name") if isinstance(item, dict) else None
            duplicate = isinstance(name, str) and name in seen
            if duplicate:
                self.error((*path, i, "name"), f"duplicate model name {name!r}; first "
                           f"defined at {render_path((*path, seen[name]))}")
            elif isinstance(name, str):
                seen[name] = i
            model = self.model((*path, i), item, schema)
            if model is not None and not duplicate:
                out.append(model)
                self.model_paths[model.name] = (*path, i)
        return tuple(out)

    def model(self, path: Path, v: Any, schema: SchemaSpec) -> ModelSpec | None:
        if self.c.mapping(path, v, MODEL_KEYS, required=("name", "task")) is None:
            return None
        ok = True
        name = self.str_((*path, "name"), v["name"]) if "name" in v else None
        task = self.choice((*path, "task"), v["task"], TASKS) if "task" in v else None
        kw: dict[str, Any] = {}
        if task is not None:
            for key, only in TASK_ONLY.items():
                if key in v and task != only:
                    self.error((*path, key), f"{key!r} applies to {only} models only; this "
                                             f"model's task is {task!r}", at_key=True)
                    ok = False
        if "threshold" in v:
            kw["threshold"] = self.number((*path, "threshold"), v["threshold"], 0.0, 1.0)
        if "positive_label" in v:
            pl = v["positive_label"]
            if isinstance(pl, str | int | float) and pl is not None:
                kw["positive_label"] = pl
            else:
                self.error((*path, "positive_label"), f"positive_label must be a string, "
                                                      f"number or boolean; got {_got(pl)}")
                kw["positive_label"] = None
        if "calibration_bins" in v:
            kw["calibration_bins"] = self.int_((*path, "calibration_bins"),
                                               v["calibration_bins"], lo=2, hi=1000)
        if "classes" in v:
            kw["classes"] = self.classes((*path, "classes"), v["classes"])
        if "label_delay" in v:
            kw["label_delay"] = self.duration((*path, "label_delay"), v["label_delay"])
        if "max_versions" in v:
            kw["max_versions"] = self.int_((*path, "max_versions"), v["max_versions"], lo=1)
        confidence = self.confidence((*path, "confidence"), v["confidence"]) \
            if "confidence" in v else {}
        if "compare" in v:
            kw["compare"] = self.compare((*path, "compare"), v["compare"])
        kw["window"] = self.window(path, v)
        if task is not None:
            kw["metrics"] = self.metrics((*path, "metrics"), v.get("metrics"), task)
        features = self.features((*path, "features"), v.get("features"))
        declared = {f.name: f for f in features} if "features" in v and features else None
        kw["features"] = features
        kw["slices"] = self.slices((*path, "slices"), v.get("slices"), declared)
        kw["drift"] = self.drift((*path, "drift"), v.get("drift"), declared)
        kw["discovery"] = parse_discovery(self, (*path, "discovery"), v.get("discovery"), task,
                                          declared, kw["slices"])
        if "schema" in v:
            kw["schema"] = self.schema((*path, "schema"), v["schema"], schema)
        if name is None or task is None or not ok or any(x is None for x in kw.values()) \
                or confidence is None:
            return None
        return ModelSpec(name=name, task=task, **kw, **confidence)  # type: ignore[arg-type]

    def classes(self, path: Path, v: Any) -> tuple[str, ...] | None:
        if not isinstance(v, list) or not v:
            self.error(path, f"classes must be a non-empty list; got {_got(v)}")
            return None
        out: list[str] = []
        for i, item in enumerate(v):
            if not isinstance(item, str | int) or isinstance(item, bool):
                self.error((*path, i), f"classes items must be strings or integers; "
                                       f"got {_got(item)}")
                return None
            if str(item) in out:
                self.error((*path, i), f"duplicate class {item!r}")
                return None
            out.append(str(item))
        return tuple(out)

    def window(self, path: Path, v: dict) -> WindowSpec | None:
        lateness = 0.0
        if "allowed_lateness" in v:
            lateness = self.duration((*path, "allowed_lateness"), v["allowed_lateness"])
            if lateness is None:
                return None
        if "window" not in v:
            return WindowSpec(allowed_lateness=lateness)
        try:
            window = parse_window(v["window"], lateness)
        except ValueError:
            self.error((*path, "window"), f"window must be a duration such as '5m' or a record "
                                          f"count such as '10000 records'; got {_got(v['window'])}")
            return None
        if window.kind == "count" and "allowed_lateness" in v:
            self.error((*path, "allowed_lateness"), "allowed_lateness applies to time windows "
                       "only; this model's window counts records", at_key=True)
            return None
        return window

    def metrics(self, path: Path, v: Any, task: str) -> tuple[str, ...] | None:
        valid = vocab.METRICS_BY_TASK[task]
        if v is None:
            return valid
        names = self.str_list(path, v)
        if names is None:
            return None
        ok = True
        for i, name in enumerate(names):
            if name in valid:
                continue
            ok = False
            owners = [t for t, ms in vocab.METRICS_BY_TASK.items() if name in ms]
            if owners:
                self.error((*path, i), f"metric {name!r} is not defined for task {task!r} "
                           f"(only for {', '.join(owners)}); valid for {task}: {', '.join(valid)}")
            else:
                self.error((*path, i), f"unknown metric {name!r}{_mean(name, valid)}; "
                                       f"valid for {task}: {', '.join(valid)}")
        return names if ok else None

    def features(self, path: Path, v: Any) -> tuple[FeatureSpec, ...] | None:
        if v is None:
            return ()
        if not isinstance(v, dict):
            self.error(path, f"features must be a mapping of feature name to type "
                             f"({' or '.join(FEATURE_TYPES)}); got {_got(v)}")
            return None
        out, ok = [], True
        for name, spec in v.items():
            fpath = (*path, name)
            if not isinstance(name, str) or not name:
                self.error(fpath, f"feature names must be non-empty strings; got {name!r}",
                           at_key=True)
                ok = False
                continue
            feature = self.feature(fpath, name, spec)
            ok = ok and feature is not None
            if feature is not None:
                out.append(feature)
        return tuple(out) if ok else None

    def feature(self, path: Path, name: str, v: Any) -> FeatureSpec | None:
        if isinstance(v, str):
            kind = self.choice(path, v, FEATURE_TYPES)
            return None if kind is None else FeatureSpec(name, kind)  # type: ignore[arg-type]
        if not isinstance(v, dict):
            self.error(path, f"feature {name!r} must be {' or '.join(FEATURE_TYPES)}, or a "
                             f"mapping with {_quoted(FEATURE_KEYS)}; got {_got(v)}")
            return None
        if self.c.mapping(path, v, FEATURE_KEYS, required=("type",)) is None or "type" not in v:
            return None
        kw: dict[str, Any] = {"type": self.choice((*path, "type"), v["type"], FEATURE_TYPES)}
        if "test" in v:
            kw["test"] = self.choice((*path, "test"), v["test"], vocab.DRIFT_TESTS)
            if kw["type"] == "categorical" and kw["test"] in vocab.NUMERIC_DRIFT_TESTS:
                fit = [t for t in vocab.DRIFT_TESTS if t not in vocab.NUMERIC_DRIFT_TESTS]
                self.error((*path, "test"), f"test {kw['test']!r} applies to numeric features "
                           f"only; {name!r} is declared categorical (use one of "
                           f"{_quoted(fit)})")
                kw["test"] = None
        if "threshold" in v:
            kw["threshold"] = self.number((*path, "threshold"), v["threshold"], lo=0.0)
        if "min_samples" in v:
            kw["min_samples"] = self.int_((*path, "min_samples"), v["min_samples"], lo=1)
        if any(x is None for x in kw.values()):
            return None
        return FeatureSpec(name, **kw)

    # ------------------------------------------------------------------ slices

    def slices(self, path: Path, v: Any,
               declared: dict[str, FeatureSpec] | None) -> tuple[SliceSpec, ...] | None:
        if v is None:
            return (SliceSpec("overall", "overall"),)
        if not isinstance(v, list) or not v:
            self.error(path, f"slices must be a non-empty list (omit it for the overall slice "
                             f"only); got {_got(v)}")
            return None
        out: list[SliceSpec] = []
        ok = True
        first: dict[str, int] = {}
        for i, item in enumerate(v):
            spec = self.slice((*path, i), item, declared)
            if spec is None:
                ok = False
                continue
            if spec.name in first:
                where = (*path, i, "name") if "name" in item else (*path, i)
                self.error(where, f"duplicate slice name {spec.name!r}; first used by "
                                  f"{render_path((*path, first[spec.name]))} (give one a "
                                  f"distinct 'name')")
                ok = False
                continue
            first[spec.name] = i
            out.append(spec)
        return tuple(out) if ok else None

    def slice(self, path: Path, v: Any,
              declared: dict[str, FeatureSpec] | None) -> SliceSpec | None:
        if isinstance(v, str) and v in SLICE_KINDS:  # `slices: [overall]`
            example = "overall: true" if v == "overall" else f"{v}: …"
            self.error(path, f"a slice is a mapping: write '- {example}'; got the string {v!r}")
            return None
        if self.c.mapping(path, v, (*SLICE_KINDS, *SLICE_COMMON)) is None:
            return None
        kinds = [k for k in SLICE_KINDS if k in v]
        if not kinds:
            self.error(path, f"a slice needs one of {', '.join(SLICE_KINDS)}")
            return None
        if len(kinds) > 1:
            self.error((*path, kinds[1]), f"a slice has exactly one kind; got both "
                                          f"{kinds[0]!r} and {kinds[1]!r}", at_key=True)
            return None
        kind = kinds[0]
        kw: dict[str, Any] = {}
        if "name" in v:
            kw["name"] = self.str_((*path, "name"), v["name"])
        if "critical" in v:
            kw["critical"] = self.bool_((*path, "critical"), v["critical"])
        if "max_values" in v:
            kw["max_values"] = self.int_((*path, "max_values"), v["max_values"], lo=1)
            if kind != "feature_keys":
                self.error((*path, "max_values"), "max_values applies to feature_keys slices "
                                                  "only", at_key=True)
                kw["max_values"] = None
        if "min_size" in v:
            kw["min_size"] = self.int_((*path, "min_size"), v["min_size"], lo=0)
        body = getattr(self, f"slice_{kind}")((*path, kind), v[kind], declared)
        if body is None or any(x is None for x in kw.values()):
            return None
        name = kw.pop("name", None) or body.pop("default_name", None)
        body.pop("default_name", None)
        if name is None:
            self.error(path, "a 'where' slice needs a 'name' (used as its slice label)")
            return None
        return SliceSpec(name=name, kind=kind, **body, **kw)  # type: ignore[arg-type]

    def slice_overall(self, path: Path, v: Any, declared: Any) -> dict | None:
        if v is not True:
            self.error(path, f"overall must be true (remove the slice to drop it); got {_got(v)}")
            return None
        return {"default_name": "overall"}

    def declared_feature(self, path: Path, name: str, declared: dict | None,
                         numeric: bool = False, at_key: bool = False) -> bool:
        if declared is None:
            return True
        feature = declared.get(name)
        if feature is None:
            self.error(path, f"feature {name!r} is not declared in this model's features"
                             f"{_hint(name, list(declared))}", at_key=at_key)
            return False
        if numeric and feature.type != "numeric":
            self.error(path, f"buckets need a numeric feature; {name!r} is declared "
                             f"{feature.type}", at_key=at_key)
            return False
        return True

    def slice_feature_keys(self, path: Path, v: Any, declared: dict | None) -> dict | None:
        keys = self.str_list(path, v, scalar_ok=True)
        if keys is None:
            return None
        ok = all([self.declared_feature((*path, i), k, declared) for i, k in enumerate(keys)])
        return {"keys": keys, "default_name": ",".join(keys)} if ok else None

    def slice_feature_values(self, path: Path, v: Any, declared: dict | None) -> dict | None:
        if not isinstance(v, dict) or not v:
            self.error(path, f"feature_values must be a non-empty mapping of feature to value "
                             f"(e.g. {{country: US}}); got {_got(v)}")
            return None
        ok = True
        for key, value in v.items():
            ok = self.declared_feature((*path, key), str(key), declared, at_key=True) and ok
            if not isinstance(value, str | int | float) or value is None:
                self.error((*path, key), f"feature_values.{key} must be a string, number or "
                                         f"boolean; got {_got(value)}")
                ok = False
        if not ok:
            return None
        values = {str(k): x for k, x in v.items()}
        name = ",".join(f"{k}={canon(x)}" for k, x in values.items())
        return {"keys": tuple(values), "values": values, "default_name": name}

    def slice_buckets(self, path: Path, v: Any, declared: dict | None) -> dict | None:
        if not isinstance(v, dict) or len(v) != 1:
            self.error(path, f"buckets must map one numeric feature to its edges (e.g. "
                             f"{{amount: [0, 10, 100]}}); got {_got(v)}")
            return None
        (feature, edges), = v.items()
        feature = str(feature)
        epath = (*path, feature)
        ok = self.declared_feature(epath, feature, declared, numeric=True, at_key=True)
        if not isinstance(edges, list) or not edges:
            self.error(epath, f"bucket edges must be a non-empty list of numbers; "
                              f"got {_got(edges)}")
            return None
        for i, edge in enumerate(edges):
            if not isinstance(edge, int | float) or isinstance(edge, bool) or not math.isfinite(
                    edge):
                self.error((*epath, i), f"bucket edges must be finite numbers; got {_got(edge)}")
                return None
            if i and edge <= edges[i - 1]:
                self.error((*epath, i), f"bucket edges must be strictly increasing; "
                                        f"{edge!r} follows {edges[i - 1]!r}")
                return None
        if not ok:
            return None
        return {"keys": (feature,), "buckets": tuple(float(e) for e in edges),
                "default_name": feature}

    def slice_tags(self, path: Path, v: Any, declared: Any) -> dict | None:
        tags = self.str_list(path, v, scalar_ok=True)
        return None if tags is None else {"tags": tags, "default_name": "tags"}

    def slice_where(self, path: Path, v: Any, declared: dict | None) -> dict | None:
        if not isinstance(v, str):
            self.error(path, f"where must be a predicate string; got {_got(v)}")
            return None
        try:
            expr = parse_predicate(v)
        except PredicateSyntaxError as exc:
            self.predicate_error(path, v, exc.offset, exc.message)
            return None
        if declared is not None and not self.check_predicate(path, v, expr, declared):
            return None
        return {"where": v, "predicate": expr, "keys": tuple(sorted(expr.features()))}

    def check_predicate(self, path: Path, text: str, expr: Expr, declared: dict) -> bool:
        ok = True
        for node in expr.walk():
            feature = getattr(node, "feature", None)
            if feature is None:
                continue
            offset = getattr(node, "offset", 0)
            spec = declared.get(feature)
            if spec is None:
                self.predicate_error(path, text, offset, f"feature {feature!r} is not declared "
                                     f"in this model's features{_hint(feature, list(declared))}")
                ok = False
                continue
            message = _type_problem(node, spec)
            if message:
                self.predicate_error(path, text, offset, message)
                ok = False
        return ok

    def predicate_error(self, path: Path, text: str, offset: int, message: str) -> None:
        """Report at the predicate's offset inside the YAML scalar (best effort)."""
        line, col = self.doc.positions.value(path)
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        lead = src[col - 1:col]
        prefix = text[:offset]
        if lead == "|":
            body = self.lines[line:]
            first = next((s for s in body if s.strip()), "")
            indent = len(first) - len(first.lstrip())
            skipped = next((i for i, s in enumerate(body) if s.strip()), 0)
            line = line + 1 + skipped + prefix.count("\n")
            col = indent + len(prefix) - (prefix.rfind("\n") + 1) + 1
        elif lead != ">" and "\n" not in prefix:
            col += offset + (1 if lead in ("'", '"') else 0)
        self.c.problems.append(Problem(self.doc.file, line, col, render_path(path), message))

    # ------------------------------------------------------------------ drift

    def compare(self, path: Path, v: Any) -> tuple[CompareSpec, ...] | None:
        """``compare: {baseline, candidate?, paired?}`` or a list of them."""
        items = v if isinstance(v, list) else [v]
        out, ok = [], True
        for i, item in enumerate(items):
            where = (*path, i) if isinstance(v, list) else path
            if self.c.mapping(where, item, COMPARE_KEYS, required=("baseline",)) is None:
                ok = False
                continue
            baseline = self.str_((*where, "baseline"), item.get("baseline"), "a version")
            candidate = self.str_((*where, "candidate"), item["candidate"], "a version") \
                if item.get("candidate") is not None else None
            paired = self.bool_((*where, "paired"), item["paired"]) if "paired" in item \
                else False
            if baseline is None or paired is None or (
                    item.get("candidate") is not None and candidate is None):
                ok = False
                continue
            if candidate == baseline:
                self.error((*where, "candidate"), f"candidate and baseline are both "
                           f"{baseline!r}: compare two different versions")
                ok = False
                continue
            out.append(CompareSpec(baseline, candidate, bool(paired)))
        return tuple(out) if ok else None

    def confidence(self, path: Path, v: Any) -> dict[str, Any] | None:
        """``confidence: false`` (no intervals), ``true`` (the defaults) or
        ``{level, bootstrap_replicates}``; None when invalid."""
        if v is False:
            return {"confidence_level": None}
        if v is True:
            return {}
        if self.c.mapping(path, v, CONFIDENCE_KEYS) is None:
            return None
        kw: dict[str, Any] = {}
        if "level" in v:
            kw["confidence_level"] = self.number((*path, "level"), v["level"], 0.5, 1.0,
                                                 lo_open=True, hi_open=True)
        if "bootstrap_replicates" in v:
            kw["bootstrap_replicates"] = self.int_((*path, "bootstrap_replicates"),
                                                   v["bootstrap_replicates"], lo=50, hi=2000)
        return None if any(x is None for x in kw.values()) else kw

    def drift(self, path: Path, v: Any, declared: dict | None) -> DriftSpec | None:
        if v is None:
            return DriftSpec()
        if self.c.mapping(path, v, DRIFT_KEYS) is None:
            return None
        kw: dict[str, Any] = {"enabled": True}
        for key in ("enabled", "per_slice", "prediction", "label", "multivariate"):
            if key in v:
                kw[key] = self.bool_((*path, key), v[key])
        if "profile" in v:
            kw["profile"] = self.str_((*path, "profile"), v["profile"], "a file path")
        if "rolling_windows" in v:
            kw["rolling_windows"] = self.int_((*path, "rolling_windows"), v["rolling_windows"],
                                              lo=1)
        if "profile" in v and "rolling_windows" in v:
            self.error((*path, "rolling_windows"), "give either 'profile' or 'rolling_windows' "
                                                   "as the drift reference, not both",
                       at_key=True)
            return None
        if "fdr" in v:
            kw["fdr"] = self.number((*path, "fdr"), v["fdr"], 0.0, 1.0, True, True)
        if "features" in v:
            names = self.str_list((*path, "features"), v["features"])
            if names is not None and not all([
                    self.declared_feature((*path, "features", i), n, declared)
                    for i, n in enumerate(names)]):
                names = None
            kw["features"] = names
        if "concept" in v:
            concept = self.concept((*path, "concept"), v["concept"])
            if concept is None:
                return None
            kw["concept_detector"], kw["concept_params"] = concept
        if any(x is None for x in kw.values()):
            return None
        return DriftSpec(**kw)

    def concept(self, path: Path, v: Any) -> tuple[str, dict] | None:
        if isinstance(v, str):
            detector = self.choice(path, v, vocab.CONCEPT_DETECTORS)
            return None if detector is None else (detector, {})
        if self.c.mapping(path, v, ("detector", "params"), required=("detector",)) is None:
            return None
        if "detector" not in v:
            return None
        detector = self.choice((*path, "detector"), v["detector"], vocab.CONCEPT_DETECTORS)
        params = v.get("params", {})
        if not isinstance(params, dict):
            self.error((*path, "params"), f"params must be a mapping of detector parameters; "
                                          f"got {_got(params)}")
            return None
        return None if detector is None else (detector, dict(params))


def _type_problem(node: Expr, feature: FeatureSpec) -> str | None:
    """Why a predicate test cannot work on a declared feature's type, or None."""
    name = feature.name
    if isinstance(node, Compare):
        if node.op in ORDERING and feature.type == "categorical":
            return f"{node.op!r} needs a numeric feature; {name!r} is declared categorical"
        values: tuple[Any, ...] = (node.value,)
    elif isinstance(node, InSet):
        values = node.values
    elif isinstance(node, Between):
        if feature.type == "categorical":
            return f"'between' needs a numeric feature; {name!r} is declared categorical"
        values = (node.low, node.high)
    else:
        return None
    if feature.type == "numeric":
        bad = next((x for x in values if isinstance(x, str)), None)
        if bad is not None:
            return f"{name!r} is declared numeric; cannot compare it with the string {bad!r}"
    return None


def with_rule_comparisons(models: tuple[ModelSpec, ...], alerting: AlertingSpec
                          ) -> tuple[ModelSpec, ...]:
    """Each model with the version pairs its ``compare`` alert rules judge added to its
    ``compare`` (unpaired unless the model's own entry for that baseline says paired)."""
    out = []
    for m in models:
        extra = []
        for rule in alerting.rules:
            c = rule.compare
            if c is None or (rule.model is not None and rule.model != m.name):
                continue
            covered = any(x.baseline == c.baseline and x.candidate in (None, c.candidate)
                          for x in (*m.compare, *extra))
            if not covered:
                paired = any(x.baseline == c.baseline and x.paired for x in m.compare)
                extra.append(CompareSpec(c.baseline, c.candidate, paired))
        out.append(dataclasses.replace(m, compare=(*m.compare, *extra)) if extra else m)
    return tuple(out)
