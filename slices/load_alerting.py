"""Parse the ``alerts``, ``receivers``, ``route`` and ``inhibit_rules`` sections of a spec.

:func:`parse_alerting` validates the raw YAML mapping and builds an immutable
:class:`~slices.alerting.AlertingSpec`; every problem is reported through the
:class:`~slices.yamlpos.Checker` with its field path (``alerts[3].threshold.upper``), not only
the first one.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from slices.alerting import (
    BASELINES,
    DEFAULT_CHANGE_DESCRIPTION,
    DEFAULT_DESCRIPTION,
    DEFAULT_INHIBIT,
    DEFAULT_SUMMARY,
    DIRECTIONS,
    ESTIMATED,
    EXPANDED_FIELDS,
    GROUP_BY_ALL,
    PAGERDUTY_URL,
    RECEIVER_TYPES,
    SEVERITIES,
    TEMPLATE_VARS,
    AlertingSpec,
    ChangeSpec,
    CompareRule,
    InhibitRule,
    Matcher,
    ReceiverSpec,
    RouteSpec,
    RuleSpec,
    variables,
)
from slices.durations import parse_duration
from slices.spec import ModelSpec
from slices.vocab import DEPRECATED_QUALITY_CHECKS, METRICS_BY_TASK, QUALITY_CHECKS
from slices.yamlpos import Checker, Path, type_name

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def parse_alerting(checker: Checker, data: dict, models: tuple[ModelSpec, ...]
                   ) -> AlertingSpec | None:
    """Validate the alerting sections of the top-level mapping ``data``.

    Returns ``None`` when none of ``alerts``, ``receivers``, ``route`` is present, or when a
    problem was recorded (the caller raises the collected problems).
    """
    if not isinstance(data, dict) or not any(k in data for k in ("alerts", "receivers", "route")):
        return None
    before = len(checker.problems)
    receivers = _receivers(checker, data.get("receivers", []))
    names = {r.name for r in receivers}
    route = _route(checker, data, receivers, names)
    rules = _rules(checker, data.get("alerts", []), models)
    inhibit = DEFAULT_INHIBIT
    if "inhibit_rules" in data:
        inhibit = _inhibit_rules(checker, data["inhibit_rules"])
    if len(checker.problems) > before or route is None:
        return None
    return AlertingSpec(rules=rules, receivers=receivers, route=route, inhibit_rules=inhibit)


def _list(checker: Checker, path: Path, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        checker.error(path, f"expected a list, got {type_name(value)}")
        return []
    return value


def _name(checker: Checker, path: Path, value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        checker.error(path, f"{what} must be a non-empty string, got {type_name(value)}")
        return None
    return value


def _number(checker: Checker, path: Path, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        checker.error(path, f"expected a finite number, got {value!r}")
        return None
    return float(value)


def _int(checker: Checker, path: Path, value: Any, minimum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        checker.error(path, f"expected an integer >= {minimum}, got {value!r}")
        return None
    return value


def _duration(checker: Checker, path: Path, value: Any, positive: bool = False) -> float | None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        checker.error(path, str(exc))
        return None
    if positive and seconds <= 0:
        checker.error(path, f"must be longer than 0 seconds, got {value!r}")
        return None
    return seconds


def _bool(checker: Checker, path: Path, value: Any) -> bool:
    if not isinstance(value, bool):
        checker.error(path, f"expected true or false, got {value!r}")
        return False
    return value


def _str_map(checker: Checker, path: Path, value: Any, label_keys: bool) -> dict[str, str]:
    if not isinstance(value, dict):
        checker.error(path, f"expected a mapping, got {type_name(value)}")
        return {}
    out = {}
    for key, item in value.items():
        if label_keys and (not isinstance(key, str) or not _LABEL.match(key)):
            checker.error((*path, key), f"invalid label name {key!r}; expected "
                          f"[A-Za-z_][A-Za-z0-9_]*", at_key=True)
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            checker.error((*path, key), f"expected a string, got {type_name(item)}")
            continue
        out[str(key)] = str(item)
    return out


# ---- rules


_RULE_KEYS = ("name", "model", "slices", "metric", "threshold", "change", "drift",
              "concept_drift", "quality", "discovered", "min_count", "for", "severity",
              "labels", "annotations", "flapping", "confidence", "compare",
              "multivariate_drift", "estimated")


def _rules(checker: Checker, value: Any, models: tuple[ModelSpec, ...]) -> tuple[RuleSpec, ...]:
    out, seen = [], set()
    for i, raw in enumerate(_list(checker, ("alerts",), value)):
        path: Path = ("alerts", i)
        rule = _rule(checker, path, raw, models)
        if rule is None:
            continue
        if rule.name in seen:
            checker.error((*path, "name"), f"duplicate alert name {rule.name!r}")
        seen.add(rule.name)
        out.append(rule)
    return tuple(out)


def _rule(checker: Checker, path: Path, raw: Any, models: tuple[ModelSpec, ...]
          ) -> RuleSpec | None:
    if checker.mapping(path, raw, _RULE_KEYS, required=("name",)) is None:
        return None
    ok = len(checker.problems)
    name = _name(checker, (*path, "name"), raw.get("name"), "an alert name") or "?"
    model = None
    if "model" in raw:
        model = _name(checker, (*path, "model"), raw["model"], "model")
        if model is not None and not any(m.name == model for m in models):
            known = ", ".join(m.name for m in models) or "none"
            checker.error((*path, "model"), f"unknown model {model!r}; models: {known}")
    kinds = [k for k in ("metric", "drift", "concept_drift", "quality", "discovered",
                         "compare", "multivariate_drift", "estimated") if k in raw]
    if len(kinds) != 1:
        checker.error(path, "an alert needs exactly one of 'metric', 'drift', 'concept_drift', "
                      "'quality', 'discovered', 'compare', 'multivariate_drift', 'estimated'; "
                      f"got {', '.join(kinds) or 'none'}")
        return None
    kind = kinds[0]
    fields: dict[str, Any] = {}
    if kind == "metric":
        fields.update(_metric_rule(checker, path, raw, model, models))
    elif kind == "compare":
        fields.update(_compare_rule(checker, path, raw, model, models))
    elif kind == "estimated":
        fields.update(_estimated_rule(checker, path, raw, model, models))
    else:
        for key in ("threshold", "change", "confidence"):
            if key in raw:
                checker.error((*path, key), f"{key!r} belongs to 'metric' alerts, not {kind!r}",
                              at_key=True)
    if kind in ("drift", "concept_drift", "quality", "multivariate_drift"):
        _has_drift(checker, (*path, kind), kind, _scope(models, model))
    if kind == "multivariate_drift":
        if _bool(checker, (*path, kind), raw[kind]) is not True:
            checker.error((*path, kind), "multivariate_drift must be true (remove the alert to "
                          "disable it)")
        scope = [m for m in _scope(models, model) if m.drift.enabled]
        if scope and not any(m.drift.multivariate for m in scope):
            checker.error((*path, kind), "a 'multivariate_drift' alert needs "
                          "drift.multivariate, but every model it applies to turns it off",
                          at_key=True)
    if kind == "drift":
        fields["features"] = _drift_features(checker, (*path, "drift"), raw["drift"])
        _known_features(checker, (*path, "drift", "features"), fields["features"],
                        _scope(models, model))
    elif kind == "concept_drift":
        if _bool(checker, (*path, "concept_drift"), raw["concept_drift"]) is not True:
            checker.error((*path, "concept_drift"), "concept_drift must be true (remove the "
                          "alert to disable it)")
    elif kind == "discovered":  # a discovered slice stays in the top-k for `for:` windows
        if _bool(checker, (*path, "discovered"), raw["discovered"]) is not True:
            checker.error((*path, "discovered"), "discovered must be true (remove the alert "
                          "to disable it)")
        if not any(m.discovery.enabled for m in _scope(models, model)):
            checker.error((*path, "discovered"), "a 'discovered' alert needs a model with a "
                          "'discovery:' block", at_key=True)
    elif kind == "quality":
        fields.update(_quality(checker, (*path, "quality"), raw["quality"]))
        where = "feature" if isinstance(raw["quality"], dict) and "feature" in raw["quality"] \
            else "features"
        _known_features(checker, (*path, "quality", where), fields.get("features", ()),
                        _scope(models, model), single=where == "feature")
    slices = tuple(_name(checker, (*path, "slices", j), s, "a slice pattern") or ""
                   for j, s in enumerate(_list(checker, (*path, "slices"), raw.get("slices"))))
    min_count = _int(checker, (*path, "min_count"), raw.get("min_count", 0), 0) or 0
    for_windows = _int(checker, (*path, "for"), raw.get("for", 1), 1) or 1
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        checker.error((*path, "severity"), f"unknown severity {severity!r}; allowed: "
                      f"{', '.join(SEVERITIES)}")
    labels = _str_map(checker, (*path, "labels"), raw.get("labels", {}), label_keys=True)
    for reserved in ("alertname", "model", "version", "slice", "severity", "feature"):
        if reserved in labels:
            checker.error((*path, "labels", reserved), f"label {reserved!r} is set by "
                          "slicewatch and cannot be overridden", at_key=True)
    annotations = {"summary": DEFAULT_SUMMARY, "description": DEFAULT_CHANGE_DESCRIPTION
                   if fields.get("change") is not None else DEFAULT_DESCRIPTION}
    raw_ann = _str_map(checker, (*path, "annotations"), raw.get("annotations", {}),
                       label_keys=True)
    for key, text in raw_ann.items():
        for var in variables(text):
            if var not in TEMPLATE_VARS:
                checker.error((*path, "annotations", key), f"unknown template variable "
                              f"{{{{ {var} }}}}; allowed: {', '.join(TEMPLATE_VARS)}")
    annotations.update(raw_ann)
    flap_window, flap_changes = _flapping(checker, (*path, "flapping"), raw.get("flapping"))
    if len(checker.problems) > ok:
        return None
    return RuleSpec(name=name, kind=kind, model=model, slices=slices, min_count=min_count,
                    for_windows=for_windows, severity=severity, labels=labels,
                    annotations=annotations, flap_window=flap_window,
                    flap_changes=flap_changes, **fields)


def _scope(models: tuple[ModelSpec, ...], model: str | None) -> list[ModelSpec]:
    """The models a rule applies to (those that loaded; a rule naming an unknown model has
    its own problem)."""
    return [m for m in models if model is None or m.name == model]


# Besides the declared features, drift and quality cover the prediction and the label.
_BUILTIN_FEATURES = ("__prediction__", "__label__")


def _monitored(model: ModelSpec) -> tuple[str, ...]:
    names = model.drift.features or tuple(f.name for f in model.features)
    return (*names, *_BUILTIN_FEATURES)


def _has_drift(checker: Checker, path: Path, kind: str, scope: list[ModelSpec]) -> None:
    if scope and not any(m.drift.enabled for m in scope):
        which = f"model {scope[0].name!r} has no" if len(scope) == 1 else "no model has a"
        checker.error(path, f"a {kind!r} alert needs drift checks, but {which} 'drift:' "
                      "section (the alert could never fire)", at_key=True)


def _known_features(checker: Checker, path: Path, features: tuple[str, ...],
                    scope: list[ModelSpec], single: bool = False) -> None:
    """Each named feature must be monitored by a model the rule applies to."""
    watched = [m for m in scope if m.drift.enabled]
    if not watched:
        return
    known = sorted({f for m in watched for f in _monitored(m)})
    for j, feature in enumerate(features):
        if feature and feature not in known:
            hint = difflib.get_close_matches(feature, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            checker.error(path if single else (*path, j),
                          f"feature {feature!r} is not monitored by "
                          f"{_models_text(watched)}{extra} (monitored: {', '.join(known)})")


def _models_text(models: list[ModelSpec]) -> str:
    names = ", ".join(repr(m.name) for m in models)
    return f"model {names}" if len(models) == 1 else f"any of the models {names}"


def _computed(model: ModelSpec) -> tuple[str, ...]:
    return model.metrics or METRICS_BY_TASK[model.task]


def _metric_rule(checker: Checker, path: Path, raw: dict, model: str | None,
                 models: tuple[ModelSpec, ...], where: Path | None = None) -> dict[str, Any]:
    """A metric rule's fields; ``where``: the mapping holding ``metric`` (compare rules:
    only the metric is checked)."""
    if where is not None:
        path = where
    metric = _name(checker, (*path, "metric"), raw["metric"], "metric")
    scope = _scope(models, model)
    if metric is not None and scope and not any(metric in _computed(m) for m in scope):
        by_task = [m for m in scope if metric in METRICS_BY_TASK[m.task]]
        if by_task:  # the task has it, the model's `metrics:` list leaves it out
            checker.error((*path, "metric"), f"metric {metric!r} is not computed: "
                          f"{_models_text(by_task)} leaves it out of 'metrics:' (add it there)")
        else:
            allowed = sorted({x for m in scope for x in _computed(m)})
            tasks = "/".join(sorted({m.task for m in scope}))
            hint = difflib.get_close_matches(metric, allowed, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            checker.error((*path, "metric"), f"unknown metric {metric!r} for {tasks} "
                          f"models{extra}; allowed: {', '.join(allowed)}")
    if where is not None:
        return {"metric": metric}
    if "threshold" not in raw and "change" not in raw:
        checker.error(path, "a metric alert needs 'threshold' and/or 'change'")
    out: dict[str, Any] = {"metric": metric}
    if "threshold" in raw:
        out["lower"], out["upper"] = _bounds(checker, (*path, "threshold"), raw["threshold"])
    if "change" in raw:
        out["change"] = _change(checker, (*path, "change"), raw["change"], models, model)
    if "confidence" in raw:
        out["confidence"] = _bool(checker, (*path, "confidence"), raw["confidence"])
        off = [m for m in scope if m.confidence_level is None]
        if out["confidence"] and off:
            checker.error((*path, "confidence"), "confidence: true needs metric intervals, "
                          f"but {_models_text(off)} turns them off ('confidence: false')")
    return out


def _estimated_rule(checker: Checker, path: Path, raw: dict, model: str | None,
                    models: tuple[ModelSpec, ...]) -> dict[str, Any]:
    """``estimated: {metric, threshold}`` (+ the rule's ``confidence``): value thresholds on
    the CBPE estimate of a binary model whose drift profile holds a calibration."""
    for key in ("threshold", "change", "metric"):
        if key in raw:
            checker.error((*path, key), f"{key!r} does not go with 'estimated' (inside: "
                          "estimated: {metric, threshold})", at_key=True)
    where = (*path, "estimated")
    spec = raw["estimated"]
    out: dict[str, Any] = {}
    if checker.mapping(where, spec, ("metric", "threshold"),
                       required=("metric", "threshold")) is None:
        return out
    metric = spec.get("metric")
    if metric not in ESTIMATED:
        checker.error((*where, "metric"), f"unknown estimated metric {metric!r}; allowed: "
                      f"{', '.join(ESTIMATED)}")
    scope = [m for m in _scope(models, model) if m.task == "binary"]
    if not any(m.drift.enabled and m.drift.profile for m in scope):
        checker.error(where, "an 'estimated' alert needs a binary model with a drift profile "
                      "(CBPE is calibrated on the profile's labelled reference)", at_key=True)
    if "threshold" in spec:
        out["lower"], out["upper"] = _bounds(checker, (*where, "threshold"), spec["threshold"])
    if "confidence" in raw:
        out["confidence"] = _bool(checker, (*path, "confidence"), raw["confidence"])
        if out["confidence"] and metric not in ("accuracy", "precision"):
            checker.error((*path, "confidence"), "CBPE gives an interval for accuracy and "
                          f"precision only, not {metric!r}")
    out["metric"] = metric
    return out


_COMPARE_KEYS = ("baseline", "candidate", "metric", "max_drop", "direction")


def _compare_rule(checker: Checker, path: Path, raw: dict, model: str | None,
                  models: tuple[ModelSpec, ...]) -> dict[str, Any]:
    """``compare: {baseline, candidate, metric, max_drop, direction?}`` (+ the rule's
    ``confidence``); the pair is computed for the rule's models (slices.load)."""
    for key in ("threshold", "change", "metric"):
        if key in raw:
            checker.error((*path, key), f"{key!r} does not go with 'compare' (the metric goes "
                          "inside: compare: {baseline, candidate, metric, max_drop})",
                          at_key=True)
    where = (*path, "compare")
    spec = raw["compare"]
    out: dict[str, Any] = {}
    if checker.mapping(where, spec, _COMPARE_KEYS,
                       required=("baseline", "candidate", "metric", "max_drop")) is None:
        return out
    baseline = _name(checker, (*where, "baseline"), spec.get("baseline"), "a version")
    candidate = _name(checker, (*where, "candidate"), spec.get("candidate"), "a version")
    if baseline is not None and baseline == candidate:
        checker.error((*where, "candidate"), f"candidate and baseline are both {baseline!r}: "
                      "compare two different versions")
    metric = _metric_rule(checker, path, {"metric": spec.get("metric"), "threshold": {}},
                          model, models, where=where)["metric"] if "metric" in spec else None
    max_drop = _number(checker, (*where, "max_drop"), spec.get("max_drop"))
    if max_drop is not None and max_drop < 0:
        checker.error((*where, "max_drop"), f"max_drop must be >= 0 (the largest tolerated "
                      f"worsening); got {max_drop:g}")
    direction = spec.get("direction", "higher_is_better")
    if direction not in DIRECTIONS:
        checker.error((*where, "direction"), f"unknown direction {direction!r}; allowed: "
                      f"{', '.join(DIRECTIONS)}")
    scope = _scope(models, model)
    off = [m for m in scope if m.confidence_level is None]
    if off:
        checker.error(where, "a 'compare' alert needs metric intervals, but "
                      f"{_models_text(off)} turns them off ('confidence: false')", at_key=True)
    if "confidence" in raw:
        out["confidence"] = _bool(checker, (*path, "confidence"), raw["confidence"])
    if None in (baseline, candidate, metric, max_drop):
        return out
    out["metric"] = metric
    out["compare"] = CompareRule(str(baseline), str(candidate), str(metric), float(max_drop),
                                 direction)
    return out


def _bounds(checker: Checker, path: Path, raw: Any) -> tuple[float | None, float | None]:
    if checker.mapping(path, raw, ("lower", "upper")) is None:
        return None, None
    lower = _number(checker, (*path, "lower"), raw["lower"]) if "lower" in raw else None
    upper = _number(checker, (*path, "upper"), raw["upper"]) if "upper" in raw else None
    if "lower" not in raw and "upper" not in raw:
        checker.error(path, "a threshold needs 'lower' and/or 'upper'")
    if lower is not None and upper is not None and lower > upper:
        checker.error((*path, "lower"), f"lower ({lower:g}) must be <= upper ({upper:g})")
    return lower, upper


def _change(checker: Checker, path: Path, raw: Any, models: tuple[ModelSpec, ...],
            model: str | None) -> ChangeSpec | None:
    keys = ("baseline", "version", "absolute", "relative", "direction")
    if checker.mapping(path, raw, keys, required=("baseline", "direction")) is None:
        return None
    baseline = raw.get("baseline", "previous")
    if baseline not in BASELINES:
        checker.error((*path, "baseline"), f"unknown baseline {baseline!r}; allowed: "
                      f"{', '.join(BASELINES)}")
    version = None
    if baseline == "version":
        if "version" not in raw:
            checker.error(path, "baseline 'version' needs 'version: <model version>'")
        else:
            version = str(raw["version"])
    elif "version" in raw:
        checker.error((*path, "version"), "'version' only goes with baseline: version",
                      at_key=True)
    direction = raw.get("direction", "higher_is_better")
    if direction not in DIRECTIONS:
        checker.error((*path, "direction"), f"unknown direction {direction!r}; allowed: "
                      f"{', '.join(DIRECTIONS)}")
    absolute = _number(checker, (*path, "absolute"), raw["absolute"]) if "absolute" in raw else None
    relative = _number(checker, (*path, "relative"), raw["relative"]) if "relative" in raw else None
    if "absolute" not in raw and "relative" not in raw:
        checker.error(path, "a change threshold needs 'absolute' and/or 'relative'")
    return ChangeSpec(baseline=baseline, version=version, absolute=absolute, relative=relative,
                      direction=direction)


def _drift_features(checker: Checker, path: Path, raw: Any) -> tuple[str, ...]:
    if raw is True:
        return ()
    if checker.mapping(path, raw, ("features",)) is None:
        return ()
    return tuple(_name(checker, (*path, "features", j), f, "a feature name") or ""
                 for j, f in enumerate(_list(checker, (*path, "features"), raw.get("features"))))


def _quality(checker: Checker, path: Path, raw: Any) -> dict[str, Any]:
    if checker.mapping(path, raw, ("feature", "features", "check", "lower", "upper"),
                       required=("check",)) is None:
        return {}
    check = _check_name(checker, (*path, "check"), raw.get("check"))
    features: tuple[str, ...] = ()
    if "feature" in raw:
        features = ((_name(checker, (*path, "feature"), raw["feature"], "feature") or ""),)
    elif "features" in raw:
        features = tuple(_name(checker, (*path, "features", j), f, "a feature name") or ""
                         for j, f in enumerate(_list(checker, (*path, "features"),
                                                     raw["features"])))
    lower, upper = _bounds(checker, path, {k: raw[k] for k in ("lower", "upper") if k in raw})
    return {"check": check, "features": features, "lower": lower, "upper": upper}


def _check_name(checker: Checker, path: Path, raw: Any) -> str | None:
    """A quality check name; an old name is accepted as its new one, with one warning."""
    check = _name(checker, path, raw, "a quality check name")
    if check in DEPRECATED_QUALITY_CHECKS:
        new = DEPRECATED_QUALITY_CHECKS[check]
        message = (f"quality check {check!r} is deprecated; use {new!r} (the exported metric "
                   f"slicewatch_data_{new})")
        if not any(w.message.endswith(message) for w in checker.warnings):
            checker.warn(path, message)
        return new
    if check is not None and check not in QUALITY_CHECKS:
        hint = difflib.get_close_matches(check, [*QUALITY_CHECKS, *DEPRECATED_QUALITY_CHECKS],
                                         n=1)
        extra = f"; did you mean {DEPRECATED_QUALITY_CHECKS.get(hint[0], hint[0])!r}?" \
            if hint else ""
        checker.error(path, f"unknown quality check {check!r}{extra}; checks: "
                      f"{', '.join(QUALITY_CHECKS)}")
        return None
    return check


def _flapping(checker: Checker, path: Path, raw: Any) -> tuple[int, int]:
    if raw is None:
        return 10, 4
    if raw is False:
        return 10, 0
    if checker.mapping(path, raw, ("window", "changes")) is None:
        return 10, 4
    window = _int(checker, (*path, "window"), raw.get("window", 10), 2) or 10
    changes = _int(checker, (*path, "changes"), raw.get("changes", 4), 2) or 4
    if changes > window - 1:
        checker.error((*path, "changes"), f"changes ({changes}) must be <= window - 1 "
                      f"({window - 1})")
    return window, changes


# ---- receivers


_RECEIVER_FIELDS = {
    "webhook": ("url", "secret", "headers"),
    "slack": ("url",),
    "pagerduty": ("url", "routing_key", "source"),
    "alertmanager": ("url", "resend_interval", "generator_url"),
}
_REQUIRED = {"webhook": ("url",), "slack": ("url",), "pagerduty": ("routing_key",),
             "alertmanager": ("url",)}


def _receivers(checker: Checker, value: Any) -> tuple[ReceiverSpec, ...]:
    out: list[ReceiverSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(_list(checker, ("receivers",), value)):
        path: Path = ("receivers", i)
        if not isinstance(raw, dict):
            checker.error(path, f"expected a mapping, got {type_name(raw)}")
            continue
        rtype = raw.get("type")
        if rtype not in RECEIVER_TYPES:
            checker.error((*path, "type"), f"unknown receiver type {rtype!r}; allowed: "
                          f"{', '.join(RECEIVER_TYPES)}")
            continue
        allowed = ("name", "type", "timeout", "send_resolved", "retry_max_delay",
                   *_RECEIVER_FIELDS[rtype])
        checker.mapping(path, raw, allowed, required=("name", *_REQUIRED[rtype]))
        ok = len(checker.problems)
        name = _name(checker, (*path, "name"), raw.get("name"), "a receiver name") or "?"
        if name in seen:
            checker.error((*path, "name"), f"duplicate receiver name {name!r}")
        seen.add(name)
        kwargs: dict[str, Any] = {}
        for key in ("url", "secret", "routing_key", "source", "generator_url"):
            if key in raw:
                text = _name(checker, (*path, key), raw[key], key)
                if text is not None:
                    _check_env_refs(checker, (*path, key), text, key in EXPANDED_FIELDS)
                    kwargs[key] = text
        if "headers" in raw:
            kwargs["headers"] = _str_map(checker, (*path, "headers"), raw["headers"], False)
            for key, text in kwargs["headers"].items():
                _check_env_refs(checker, (*path, "headers", key), text)
        if "timeout" in raw:
            kwargs["timeout"] = _duration(checker, (*path, "timeout"), raw["timeout"], True)
        if "retry_max_delay" in raw:
            kwargs["retry_max_delay"] = _duration(checker, (*path, "retry_max_delay"),
                                                  raw["retry_max_delay"], True)
        if "resend_interval" in raw:
            kwargs["resend_interval"] = _duration(checker, (*path, "resend_interval"),
                                                  raw["resend_interval"], True)
        if "send_resolved" in raw:
            kwargs["send_resolved"] = _bool(checker, (*path, "send_resolved"),
                                            raw["send_resolved"])
        if rtype == "pagerduty":
            kwargs.setdefault("url", PAGERDUTY_URL)
        if len(checker.problems) == ok and "url" in kwargs:
            out.append(ReceiverSpec(name=name, type=rtype, **kwargs))
    return tuple(out)


def _check_env_refs(checker: Checker, path: Path, text: str, expanded: bool = True) -> None:
    if not expanded and "${" in text:
        checker.error(path, f"${{...}} is expanded only in {', '.join(EXPANDED_FIELDS)} and "
                      f"headers (fields that carry credentials); {path[-1]!r} is sent as "
                      "written")
        return
    for ref in _ENV.findall(text):
        if not _ENV_NAME.match(ref):
            checker.error(path, f"invalid environment reference ${{{ref}}}; expected "
                          "${NAME} with NAME of letters, digits and _")
    if "${" in _ENV.sub("", text):
        checker.error(path, "unterminated ${ in environment reference")


# ---- route


_ROUTE_KEYS = ("receiver", "matchers", "group_by", "group_wait", "group_interval",
               "repeat_interval", "continue", "routes")


def _route(checker: Checker, data: dict, receivers: tuple[ReceiverSpec, ...],
           names: set[str]) -> RouteSpec | None:
    if "route" not in data:
        if len(receivers) == 1:
            return RouteSpec(receiver=receivers[0].name)
        if data.get("alerts"):
            checker.error(("route",) if "receivers" in data else ("alerts",),
                          "alerts need a 'route' (or exactly one receiver to send them to)")
        return None
    parent = RouteSpec(receiver="")
    return _route_node(checker, ("route",), data["route"], parent, names, root=True)


def _route_node(checker: Checker, path: Path, raw: Any, parent: RouteSpec, names: set[str],
                root: bool) -> RouteSpec | None:
    if checker.mapping(path, raw, _ROUTE_KEYS, required=("receiver",) if root else ()) is None:
        return None
    receiver = raw.get("receiver", parent.receiver)
    if "receiver" in raw and _name(checker, (*path, "receiver"), receiver, "receiver") is None:
        receiver = parent.receiver
    elif "receiver" in raw and receiver not in names:
        checker.error((*path, "receiver"), f"unknown receiver {receiver!r}; receivers: "
                      f"{', '.join(sorted(names)) or 'none'}")
    if root and "matchers" in raw:
        checker.error((*path, "matchers"), "the root route matches every alert; it takes no "
                      "matchers", at_key=True)
    matchers = _matchers(checker, (*path, "matchers"), raw.get("matchers", []))
    group_by = parent.group_by
    if "group_by" in raw:
        group_by = tuple(_name(checker, (*path, "group_by", j), g, "a label name") or ""
                         for j, g in enumerate(_list(checker, (*path, "group_by"),
                                                     raw["group_by"])))
        for j, g in enumerate(group_by):
            if g and g != GROUP_BY_ALL and not _LABEL.match(g):
                checker.error((*path, "group_by", j), f"invalid label name {g!r}")
    timing = {}
    for key in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(parent, key)
        if key in raw:
            value = _duration(checker, (*path, key), raw[key], key != "group_wait")
        timing[key] = value if value is not None else getattr(parent, key)
    cont = _bool(checker, (*path, "continue"), raw["continue"]) if "continue" in raw else False
    node = RouteSpec(receiver=receiver, matchers=matchers, group_by=group_by,
                     continue_=cont, **timing)
    built = (_route_node(checker, (*path, "routes", j), c, node, names, False)
             for j, c in enumerate(_list(checker, (*path, "routes"), raw.get("routes"))))
    children = tuple(c for c in built if c is not None)
    return RouteSpec(receiver=receiver, matchers=matchers, group_by=group_by,
                     continue_=cont, routes=children, **timing)


def _matchers(checker: Checker, path: Path, raw: Any) -> tuple[Matcher, ...]:
    """Matchers as a list of ``'label="value"'`` strings or a ``{label: value}`` mapping."""
    if isinstance(raw, dict):
        return tuple(Matcher(k, "=", v) for k, v in
                     _str_map(checker, path, raw, label_keys=True).items())
    out = []
    for j, text in enumerate(_list(checker, path, raw)):
        match = _MATCHER.match(text) if isinstance(text, str) else None
        if match is None:
            checker.error((*path, j), f"invalid matcher {text!r}; expected label=\"value\" "
                          "with one of =, !=, =~, !~")
            continue
        label, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                checker.error((*path, j), f"invalid regular expression {value!r}: {exc}")
                continue
        out.append(Matcher(label, op, value))
    return tuple(out)


def _inhibit_rules(checker: Checker, raw: Any) -> tuple[InhibitRule, ...]:
    out = []
    for i, item in enumerate(_list(checker, ("inhibit_rules",), raw)):
        path: Path = ("inhibit_rules", i)
        if checker.mapping(path, item, ("source_matchers", "target_matchers", "equal"),
                           required=("source_matchers", "target_matchers")) is None:
            continue
        source = _matchers(checker, (*path, "source_matchers"), item.get("source_matchers", []))
        target = _matchers(checker, (*path, "target_matchers"), item.get("target_matchers", []))
        equal = tuple(_name(checker, (*path, "equal", j), e, "a label name") or ""
                      for j, e in enumerate(_list(checker, (*path, "equal"),
                                                  item.get("equal", ["model", "slice"]))))
        out.append(InhibitRule(source=source, target=target, equal=equal))
    return tuple(out)
