"""Errors of the spec layer. Every slicewatch error derives from :class:`SlicewatchError`."""

from __future__ import annotations

from dataclasses import dataclass


class SlicewatchError(Exception):
    """Root of every error slicewatch raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a spec, located at ``file:line:column`` (1-based) and a field path."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return (f"{self.file}:{self.line}:{self.column}: {_clip(self.path, 200)}: "
                f"{_clip(self.message, MAX_MESSAGE)}")


MAX_MESSAGE = 1000  # characters of a problem's message shown (a value may be huge)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class SpecError(SlicewatchError):
    """A spec that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PredicateSyntaxError(SlicewatchError):
    """A ``where:`` predicate that does not parse; ``offset`` is 0-based into the text."""

    def __init__(self, message: str, offset: int = 0):
        self.message = message
        self.offset = offset
        super().__init__(message)
