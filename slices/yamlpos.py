"""YAML loading that remembers where every value came from, plus a problem collector.

The loader returns plain Python values (dict, list, str, int, float, bool, None) and a
:class:`Positions` map from field paths to ``(line, column)``, so validators work on plain data
and still report ``file:line:column: path: message``.

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
    file: str
    data: Any
    positions: Positions


class _Duplicate(Exception):
    pass


def load_text(text: str, file: str = "<spec>") -> Document:
    """Parse YAML text; syntax errors and duplicate keys raise :class:`SpecError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"invalid YAML: {exc.problem or exc.context}"
        raise SpecError([Problem(file, line, col, "<root>", msg)]) from None
    positions = Positions()
    problems: list[Problem] = []
    if node is None:
        return Document(file, None, positions)
    constructor = yaml.SafeLoader("")
    data = _build(node, (), positions, problems, file, constructor)
    if problems:
        raise SpecError(problems)
    return Document(file, data, positions)


def load_file(path: str) -> Document:
    """Read and parse a YAML file; an unreadable file raises :class:`SpecError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        problem = Problem(path, 1, 1, "<root>", f"cannot read spec: {exc.strerror}")
        raise SpecError([problem]) from None
    return load_text(text, path)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node, path, positions, problems, file, constructor):
    positions.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
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
    return constructor.construct_object(node, deep=True)


class Checker:
    """Collects problems while a validator walks a :class:`Document`.

    Validators never stop at the first problem: they record it with :meth:`error` and go on,
    and :meth:`raise_if_any` raises one :class:`SpecError` with all of them.
    """

    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: list[Problem] = []

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        pos = self.doc.positions.key(path) if at_key else self.doc.positions.value(path)
        self.problems.append(Problem(self.doc.file, pos[0], pos[1], render_path(path), message))

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
