"""Slice patterns: shell-style globs on the ``slice`` label, with one rule for crosses.

A slice label is one or more ``key=value`` parts joined by ``,`` (``country=US``,
``country=US,device=ios``, ``amount=[0,10)``, ``overall``). A ``,`` starts a new part only
when the text after it, up to the next ``,``, contains ``=`` — so the comma inside a bucket
such as ``amount=[0,10)`` stays in its value.

A pattern is split into parts the same way, and **matches a label with the same number of
parts, each part matching its glob**: ``*`` matches any text within one part, ``?`` one
character, ``[abc]`` / ``[!abc]`` one character of a set. So ``neighbourhood=*`` matches
``neighbourhood=riverside`` and ``neighbourhood=__other__`` but never the cross
``neighbourhood=riverside,property_type=house``; crosses match only patterns of their own
shape (``neighbourhood=*,property_type=*``, or ``*=*,*=*`` for every two-key cross). ``*``
alone matches every single-part label; an empty pattern list (no ``slices:``) every slice.

:func:`slice_regex` is the one definition: a regular expression in the common subset of
Python's ``re`` and RE2, so Prometheus rules (anchored ``=~``) and the alert engine
(:func:`slice_matches`) select exactly the same slices.

>>> slice_matches(("neighbourhood=*",), "neighbourhood=riverside")
True
>>> slice_matches(("neighbourhood=*",), "neighbourhood=riverside,property_type=house")
False
>>> slice_matches(("amount=*",), "amount=[0,10)")
True
>>> slice_regex(["overall", "country=US"])
'overall|country=US'
"""

from __future__ import annotations

import re
from functools import lru_cache

_META = re.compile(r"[\\.^$|?*+()\[\]{}]")
_CLASS_META = re.compile(r"[\\\]\[^-]")
NEVER = r"[^\s\S]"  # matches nothing (RE2 and Python)

# A token: ("lit", c) | ("any",) | ("star",) | ("set", negated, ((lo, hi), ...))
_Token = tuple


def slice_regex(patterns: list[str] | tuple[str, ...]) -> str:
    """A regular expression (RE2 and Python ``re``, to be matched in full) selecting the
    labels any of ``patterns`` matches."""
    return "|".join(_pattern(p) for p in patterns) or NEVER


def slice_matches(patterns: tuple[str, ...] | list[str], label: str) -> bool:
    """Whether ``label`` is selected by ``patterns`` (an empty list selects every label)."""
    return not patterns or _compiled(tuple(patterns)).fullmatch(label) is not None


@lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(slice_regex(patterns))


def regex_escape(text: str) -> str:
    """Escape regex metacharacters (only those: RE2 rejects escaped letters and spaces)."""
    return _META.sub(r"\\\g<0>", text)


def _pattern(pattern: str) -> str:
    parts = []
    for tokens in _parts(_tokens(pattern)):
        regex = _from_first_chunk(tokens, 0)
        if regex is None:
            return NEVER
        parts.append(regex)
    return ",".join(parts)


def _tokens(pattern: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(("star",))
        elif c == "?":
            out.append(("any",))
        elif c == "[":
            j = i + 1 if i < n and pattern[i] == "!" else i
            j = j + 1 if j < n and pattern[j] == "]" else j
            j = pattern.find("]", j)
            if j < 0:
                out.append(("lit", c))
                continue
            body, i = pattern[i:j], j + 1
            negated = body.startswith("!")
            out.append(("set", negated, _ranges(body[1:] if negated else body)))
        else:
            out.append(("lit", c))
    return out


def _ranges(body: str) -> tuple[tuple[str, str], ...]:
    out, k = [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            if body[k] <= body[k + 2]:
                out.append((body[k], body[k + 2]))
            k += 3
        else:
            out.append((body[k], body[k]))
            k += 1
    return tuple(out)


def _parts(tokens: list[_Token]) -> list[list[_Token]]:
    """Split at each literal ``,`` whose following chunk holds a literal ``=``."""
    chunks: list[list[_Token]] = [[]]
    for tok in tokens:
        if tok == ("lit", ","):
            chunks.append([])
        else:
            chunks[-1].append(tok)
    parts = [chunks[0]]
    for chunk in chunks[1:]:
        if ("lit", "=") in chunk:
            parts.append(chunk)
        else:
            parts[-1] = [*parts[-1], ("lit", ","), *chunk]
    return parts


# Inside one part the first chunk (before any ',') may hold anything but ','; after the
# first ',' the rest of the part holds no '=' (else that ',' would start a new part).
# _from_first_chunk(i): tokens[i:] starting in the first chunk; each token either stays in it
# or is the one that matches the first ','.


def _from_first_chunk(tokens: list[_Token], i: int) -> str | None:
    if i == len(tokens):
        return ""
    stay, cross = _in_first(tokens[i]), _first_comma(tokens[i])
    options = []
    if stay is not None and (rest := _from_first_chunk(tokens, i + 1)) is not None:
        options.append(stay + rest)
    if cross is not None and (rest := _after_comma(tokens, i + 1)) is not None:
        options.append(cross + rest)
    if not options:
        return None
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _after_comma(tokens: list[_Token], i: int) -> str | None:
    out = []
    for tok in tokens[i:]:
        regex = _no_equals(tok)
        if regex is None:
            return None
        out.append(regex)
    return "".join(out)


def _in_first(tok: _Token) -> str | None:
    if tok[0] == "lit":
        return None if tok[1] == "," else regex_escape(tok[1])
    if tok[0] == "any":
        return "[^,]"
    if tok[0] == "star":
        return "[^,]*"
    return _set(tok, ",")


def _first_comma(tok: _Token) -> str | None:
    if tok[0] == "lit":
        return "," if tok[1] == "," else None
    if tok[0] == "any":
        return ","
    if tok[0] == "star":
        return "[^,]*,[^=]*"
    return "," if _set_has(tok, ",") else None


def _no_equals(tok: _Token) -> str | None:
    if tok[0] == "lit":
        return None if tok[1] == "=" else regex_escape(tok[1])
    if tok[0] == "any":
        return "[^=]"
    if tok[0] == "star":
        return "[^=]*"
    return _set(tok, "=")


def _set_has(tok: _Token, ch: str) -> bool:
    inside = any(lo <= ch <= hi for lo, hi in tok[2])
    return inside != tok[1]


def _set(tok: _Token, minus: str) -> str | None:
    """The character class of a ``[...]`` token without the character ``minus``."""
    _, negated, ranges = tok
    if negated:
        return "[^" + "".join(_class_range(lo, hi) for lo, hi in ranges) + _class_char(minus) + "]"
    kept: list[tuple[str, str]] = []
    for lo, hi in ranges:
        if lo <= minus <= hi:
            if lo < minus:
                kept.append((lo, chr(ord(minus) - 1)))
            if minus < hi:
                kept.append((chr(ord(minus) + 1), hi))
        else:
            kept.append((lo, hi))
    if not kept:
        return None
    return "[" + "".join(_class_range(lo, hi) for lo, hi in kept) + "]"


def _class_char(c: str) -> str:
    return _CLASS_META.sub(r"\\\g<0>", c)


def _class_range(lo: str, hi: str) -> str:
    return _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
