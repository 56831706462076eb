"""YAML loading that remembers where every value came from, plus a problem collector.

The loader returns plain Python values (dict, list, str, int, float, bool, None) and a
:class:`Positions` map from field paths to ``(line, column)``, so validators work on plain data
and still report ``file:line:column: path: message``.

Bounded: a spec is at most :data:`MAX_BYTES` long, nests at most :data:`MAX_DEPTH` levels and
expands (aliases included) to at most :data:`MAX_NODES` values; an alias may not refer to the
collection it sits in. The bounds are checked on the event stream before anything is built,
so a YAML "billion laughs" or a 5000-deep nesting is a located error, not a memory blow-up or
a ``RecursionError``.

>>> doc = load_text("models:\\n  - name: fraud\\n", "s.yaml")
>>> doc.data["models"][0]["name"]
'fraud'
>>> doc.positions.value(("models", 0, "name"))
(2, 11)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from slices.errors import Problem, SpecError

Path = tuple[str | int, ...]

MAX_BYTES = 1_000_000  # spec text
MAX_DEPTH = 50  # nested mappings/sequences
MAX_NODES = 50_000  # values after alias expansion


def render_path(path: Path) -> str:
    """``("models", 0, "slices", 2, "where")`` → ``models[0].slices[2].where``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


@dataclass
class Positions:
    """Where each value (and each mapping key) starts in the source, 1-based."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def value(self, path: Path) -> tuple[int, int]:
        """Position of the value at ``path``, or of its nearest ancestor that has one."""
        for i in range(len(path), -1, -1):
            pos = self.values.get(path[:i])
            if pos is not None:
                return pos
        return (1, 1)

    def key(self, path: Path) -> tuple[int, int]:
        """Position of the key naming ``path`` (falls back to the value)."""
        return self.keys.get(path) or self.value(path)


@dataclass
class Document:
    """A parsed spec. ``problems`` are those found while building it (duplicate keys, bad
    scalars) that still left a usable tree: validators report them with their own."""

    file: str
    data: Any
    positions: Positions
    problems: list[Problem] = field(default_factory=list)


def load_text(text: str, file: str = "<spec>") -> Document:
    """Parse YAML text. Syntax errors and exceeded bounds raise :class:`SpecError`; duplicate
    keys and unreadable scalars are kept in :attr:`Document.problems`."""
    if len(text) > MAX_BYTES:
        raise SpecError([Problem(file, 1, 1, "<root>", f"spec too large: {len(text)} "
                                 f"characters (at most {MAX_BYTES})")])
    try:
        _check_bounds(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"invalid YAML: {exc.problem or exc.context}"
        raise SpecError([Problem(file, line, col, "<root>", msg)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. NUL)
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        msg = f"invalid YAML: character {char!r} (#x{ord(char):04x}) is not allowed"
        raise SpecError([Problem(file, line, col, "<root>", msg)]) from None
    except yaml.YAMLError as exc:  # anything else without a mark
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError([Problem(file, 1, 1, "<root>", f"invalid YAML: {reason}")]) from None
    positions = Positions()
    problems: list[Problem] = []
    if node is None:
        return Document(file, None, positions)
    constructor = yaml.SafeLoader("")
    data = _build(node, (), positions, problems, file, constructor)
    return Document(file, data, positions, problems)


def read_text(path: str) -> str:
    """The text of a spec file, at most :data:`MAX_BYTES` (more is a :class:`SpecError`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError([Problem(path, 1, 1, "<root>", f"cannot read spec: {reason}")]) from None
    if len(text) > MAX_BYTES:
        raise SpecError([Problem(path, 1, 1, "<root>", f"spec too large: more than "
                                 f"{MAX_BYTES} characters")])
    return text


def _check_bounds(text: str, file: str) -> None:
    """One pass over the YAML events (iterative, nothing built): depth, recursive aliases
    and the expanded size, each reported at the event that exceeds it."""
    total = 0
    open_: list[tuple[str | None, int]] = []  # (anchor, total before) of each open collection
    size: dict[str, int] = {}  # expanded node count of each anchored value

    def fail(event: yaml.Event, message: str) -> SpecError:
        mark = event.start_mark
        return SpecError([Problem(file, mark.line + 1, mark.column + 1, "<root>", message)])

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise fail(event, f"nested too deeply (more than {MAX_DEPTH} levels)")
            open_.append((event.anchor, total))
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_.pop()
            if anchor is not None:
                size[anchor] = total - start
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                size[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise fail(event, f"alias *{event.anchor} refers to a collection that "
                                  "contains it (recursive aliases are not allowed)")
            total += size.get(event.anchor, 1)  # an unknown anchor: the composer names it
        if total > MAX_NODES:
            raise fail(event, f"the spec expands to more than {MAX_NODES} values (aliases "
                              "counted at every use)")


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(node, path, problems, file, constructor):
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        line, col = _mark(node)
        problems.append(Problem(file, line, col, render_path(path),
                                f"cannot read this value: {_reason(exc)}"))
        return node.value if isinstance(node, yaml.ScalarNode) else None  # its text


def _reason(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return str(exc.problem or exc.context)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _build(node, path, positions, problems, file, constructor):
    positions.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, path, problems, file, constructor)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            if key in out:
                line, col = _mark(key_node)
                problems.append(Problem(file, line, col, render_path((*path, key)),
                                        f"duplicate key {key!r}"))
                continue
            positions.keys[(*path, key)] = _mark(key_node)
            out[key] = _build(value_node, (*path, key), positions, problems, file, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, (*path, i), positions, problems, file, constructor)
                for i, v in enumerate(node.value)]
    return _construct(node, path, problems, file, constructor)


class Checker:
    """Collects problems while a validator walks a :class:`Document`.

    Validators never stop at the first problem: they record it with :meth:`error` and go on,
    and :meth:`raise_if_any` raises one :class:`SpecError` with all of them.
    """

    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: list[Problem] = list(doc.problems)
        self.warnings: list[Problem] = []

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        pos = self.doc.positions.key(path) if at_key else self.doc.positions.value(path)
        self.problems.append(Problem(self.doc.file, pos[0], pos[1], render_path(path), message))

    def warn(self, path: Path, message: str, *, at_key: bool = False) -> None:
        """A problem that does not make the spec invalid (e.g. a deprecated name)."""
        pos = self.doc.positions.key(path) if at_key else self.doc.positions.value(path)
        self.warnings.append(Problem(self.doc.file, pos[0], pos[1], render_path(path),
                                     f"warning: {message}"))

    def mapping(self, path: Path, value: Any, allowed: Iterable[str],
                required: Iterable[str] = ()) -> dict | None:
        """Check ``value`` is a mapping with only ``allowed`` keys and every ``required`` one."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type_name(value)}")
            return None
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                extra = (f"; did you mean {hint[0]!r}?" if hint
                         else f"; allowed: {', '.join(allowed)}")
                self.error((*path, key), f"unknown key {key!r}{extra}", at_key=True)
        for key in required:
            if key not in value:
                self.error(path, f"missing required key {key!r}")
        return value

    def raise_if_any(self) -> None:
        if self.problems:
            raise SpecError(self.problems)


def type_name(value: Any) -> str:
    """Name of a YAML value's type as a spec author would say it."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
