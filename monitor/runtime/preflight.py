"""Spec checks that need the runtime, run by ``validate`` and at the start of ``run``.

:func:`check` is a :data:`slices.load.Probe`: the loader calls it with the spec as far as it
loaded, and its problems are reported with the loader's, located in the YAML. It builds what
``run`` builds, with the same functions, so a spec ``validate`` accepts does not fail ``run``
for a spec reason: drift profiles are read (``load_profile``), concept-drift detectors are
constructed (``make_detector``, River), ``source.kafka`` is parsed (``parse_kafka_settings``)
and its librdkafka settings are set on a consumer configuration (``confluent_kafka``) that is
never started, and ``server.listen`` is resolved (``getaddrinfo``, as the server's bind does).
Environment references (``${VAR}``) are not resolved here: the environment belongs to the
run, not to the spec.
"""

from __future__ import annotations

import glob
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from monitor.drift.concept import make_detector
from monitor.drift.errors import DriftError
from monitor.drift.profile import load_profile
from monitor.ingest.file import detect_format
from monitor.ingest.kafka import consumer_config, parse_kafka_settings
from monitor.ingest.source import SourceError
from slices.errors import SlicewatchError
from slices.load import Report
from slices.spec import ModelSpec, Spec

# what reading a profile whose values have the wrong types or ranges raises
_MALFORMED = (TypeError, ValueError, AttributeError, IndexError, KeyError, OverflowError,
              ArithmeticError)

# Set last on the probe configuration: librdkafka refuses it, so a configuration whose other
# settings are all accepted stops there and no client is ever created (no connection).
_SENTINEL = "slicewatch.preflight.sentinel"
_KAFKA_REFUSED = re.compile(r'(No such configuration property|Invalid value for configuration '
                            r'property|Configuration property):? "([^"]+)"(.*)$', re.S)


def check(spec: Spec, report: Report) -> None:
    """Every runtime check of ``spec``; problems go to ``report``."""
    for model in spec.models:
        _profile(model, report)
        _detector(model, report)
    if spec.source.type == "kafka":
        _kafka(spec.source.kafka, report)
    _label_files(spec, report)
    _source_files(spec, report)
    _listen(spec.server.listen, report)


def _source_files(spec: Spec, report: Report) -> None:
    """A file source whose ``path`` matches no file is a warning, not a problem: the files may
    appear before ``run`` (which fails if they have not)."""
    if spec.source.type != "file":
        return
    for pattern in spec.source.paths:
        if pattern != "-" and not glob.glob(pattern):
            report.warn(("source", "path"), f"no file matches {pattern!r} yet: a replay fails "
                        "unless one does when it starts")


def _label_files(spec: Spec, report: Report) -> None:
    """Label files are read by extension, like prediction files (JSONL, CSV, Parquet)."""
    for i, path in enumerate(spec.source.labels):
        try:
            detect_format(path)
        except SourceError as exc:
            report.error(("source", "labels", i) if len(spec.source.labels) > 1
                         else ("source", "labels"), str(exc))


def _profile(model: ModelSpec, report: Report) -> None:
    path = (*report.model(model.name), "drift", "profile")
    if not model.drift.enabled or not model.drift.profile:
        return
    try:
        profile = load_profile(model.drift.profile)
    except SlicewatchError as exc:
        report.error(path, str(exc))
        return
    except _MALFORMED as exc:  # JSON of the right shape, values of the wrong type or range
        report.error(path, f"profile {model.drift.profile!r} is malformed "
                           f"({type(exc).__name__}: {str(exc)[:200]}); rebuild it with "
                           "'slicewatch baseline build'")
        return
    if profile.task != model.task:
        report.error(path, f"profile {model.drift.profile!r} was built for a {profile.task} "
                           f"model; {model.name!r} is {model.task}")
    for feature in model.features:
        if feature.name not in profile.overall:
            continue
        built = profile.overall[feature.name].kind
        if built != feature.type:
            report.error((*report.model(model.name), "features", feature.name),
                         f"declared {feature.type}, but the profile "
                         f"{model.drift.profile!r} summarises {feature.name!r} as {built}: "
                         "its drift tests would compare unlike summaries; fix the "
                         "declaration or rebuild the profile with 'slicewatch baseline build'")


def _detector(model: ModelSpec, report: Report) -> None:
    if not model.drift.enabled or model.drift.concept_detector is None:
        return
    path = (*report.model(model.name), "drift", "concept")
    try:
        make_detector(model.drift.concept_detector, model.drift.concept_params, model.task)
    except DriftError as exc:
        report.error(path, str(exc))


class _AnyEnv(Mapping[str, str]):
    """Every ``${VAR}`` resolves (to a marker the librdkafka check skips)."""

    MARK = "\0env\0"

    def __getitem__(self, key: str) -> str:
        return self.MARK

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _kafka(raw: dict[str, Any], report: Report) -> None:
    base = ("source", "kafka")
    try:
        settings = parse_kafka_settings(raw, env=_AnyEnv())
    except SourceError as exc:
        report.error(*_kafka_place(str(exc), raw))
        return
    conf = {k: v for k, v in consumer_config(settings).items()
            if _AnyEnv.MARK not in str(v)}
    try:
        from confluent_kafka import Consumer, KafkaException
    except ImportError:  # pragma: no cover - confluent_kafka is a dependency
        return
    try:
        Consumer({**conf, _SENTINEL: "1"})
    except KafkaException as exc:
        text = exc.args[0].str() if exc.args else str(exc)
        match = _KAFKA_REFUSED.search(text)
        if match is None or match.group(2) == _SENTINEL:
            return
        name = match.group(2)
        path = (*base, "config", name) if name in settings.config else (*base, "config")
        if match.group(1).startswith("No such"):
            report.error(path, f"unknown librdkafka setting {name!r} (see librdkafka's "
                               "CONFIGURATION.md)", at_key=name in settings.config)
        else:
            why = match.group(3).strip()
            why = f" ({why.removeprefix('value ').split(' ', 1)[-1]})" if why else ""
            report.error(path, f"librdkafka refuses the value {conf.get(name)!r} for "
                               f"{name!r}{why}")
    except (TypeError, ValueError) as exc:
        report.error((*base, "config"), f"librdkafka settings: {exc}")


def _kafka_place(message: str, raw: Any) -> tuple[tuple[str | int, ...], str]:
    """``source.kafka.x.y …`` messages of parse_kafka_settings → (YAML path, message)."""
    path: tuple[str | int, ...] = ("source", "kafka")
    rest = message.removeprefix("source.kafka")
    node = raw
    while rest.startswith(".") and isinstance(node, dict):
        key = next((k for k in sorted(map(str, node), key=len, reverse=True)
                    if rest[1:].startswith(k)), None)
        if key is None:
            break
        path, node, rest = (*path, key), node.get(key), rest[1 + len(key):]
    return path, (path[-1] + rest if len(path) > 2 and not rest.startswith(":")
                  else rest.lstrip(": ") or message)


def _listen(listen: str, report: Report) -> None:
    host, _, port = listen.rpartition(":")
    try:  # what the exporter's HTTP server (IPv4) binds
        socket.getaddrinfo(host or "127.0.0.1", int(port), socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        report.error(("server", "listen"), f"cannot listen on {listen!r}: host {host!r} is "
                                           f"not an IPv4 address or known name ({reason})")
